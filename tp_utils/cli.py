"""The course command line: ``tp fetch | demo`` (students) and ``tp generate | check | run | figures |
grade | release`` (instructors: parsed here, run by :mod:`tp_tools`, imported only then)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _root() -> Path:
    """The course checkout to act on: the one holding the current folder (so that a second
    clone acts on itself), else the installed package's own checkout."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "solutions").is_dir() and (folder / "tp_utils").is_dir():
            return folder
    return ROOT if (ROOT / "solutions").is_dir() else Path.cwd()


def cmd_fetch(args) -> int:
    from . import assets, models

    print(f"assets folder: {assets.data_dir()}")
    for group in args.only or list(assets.GROUPS):
        paths = assets.fetch_all([group])
        print(f"{group:10s} {len(paths):3d} file(s) present, sha256 checked")
    for name in args.model or []:
        models.load_model(name)
        print(f"{name:28s} torchvision weights in the torch hub cache")
    return 0


def cmd_demo(args) -> int:
    import torch

    from . import class_name, get_device, load_model, preprocess, SAMPLE_IMAGES

    device = get_device(args.device)
    names = ["squeezenet1_0", "efficientnet_lite0"]  # the two offline networks
    models = {}
    for name in names:
        start = time.perf_counter()
        models[name] = load_model(name, device=device)
        print(f"device: {device}; model {name} loaded in {time.perf_counter() - start:.2f} s")
    print(f"{'photo':13s} " + "  ".join(f"{name:28s}" for name in names))
    for photo in SAMPLE_IMAGES:  # the top-1 class only: the top-k is notebook 00's exercise
        x = preprocess(photo).to(device)
        cells = []
        for name in names:
            with torch.no_grad():
                p, best = models[name](x).softmax(dim=1).max(dim=1)
            cells.append(f"{class_name(int(best))} ({float(p):.2f})"[:28])
        print(f"{photo:13s} " + "  ".join(f"{c:28s}" for c in cells))
    return 0


def _instructor(name: str, checkout: bool = True):
    """The instructor tooling (tp_tools) with a course checkout (when ``checkout``), else None
    after one line that says so."""
    import importlib

    root = _root()
    try:
        module = importlib.import_module(f"tp_tools.{name}")
    except ImportError:
        module = None
    if module is None or (checkout and not (root / "solutions").is_dir()):
        print("error: this is an instructor command: it needs the course's checkout (solutions/, tests/, "
              "tp_tools/), which this copy does not have", file=sys.stderr)
        return None
    return module


def _notebook_command(name: str, checkout: bool = True):
    """``tp NAME``: tp_tools.commands.cmd_NAME, imported when the command runs."""
    def run(args) -> int:
        module = _instructor("commands", checkout)
        return 2 if module is None else getattr(module, f"cmd_{name}")(args, _root())

    run.__name__ = f"cmd_{name}"
    return run


cmd_generate = _notebook_command("generate")
cmd_check = _notebook_command("check")
cmd_run = _notebook_command("run", checkout=False)         # a notebook given by path: no solutions/ needed
cmd_figures = _notebook_command("figures", checkout=False)


def cmd_grade(args) -> int:
    module = _instructor("grade")
    return 2 if module is None else module.main_from_args(args, root=_root())


def cmd_release(args) -> int:
    module = _instructor("release")
    return 2 if module is None else module.main_from_args(args, root=_root())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tp", description="The course's command line: fetch the assets, check the install, "
        "generate and check the student notebooks, run the solutions.",
        epilog="Run `tp COMMAND --help` for a command's options. Assets are read from $TP_DATA_DIR "
        "when it is set (a classroom share, a USB stick), else from the user cache.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func, text):
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.set_defaults(func=func)
        return p

    p = command("fetch", cmd_fetch, "download the assets ahead of an offline class")
    p.add_argument("--only", action="append", metavar="GROUP",
                   help="fetch one group only: model, paintings, photos or imagenet (repeat it for "
                        "several; without it: every group)")
    p.add_argument("--model", action="append", metavar="NAME",
                   help="also fetch a torchvision model's weights, e.g. vgg16 (repeatable)")
    p = command("demo", cmd_demo, "classify the sample photos headless, to check the install")
    p.add_argument("--device", help="cpu, cuda or mps (without it: the best one available)")
    command("generate", cmd_generate, "write notebooks/ from solutions/ (and the solutions' nbgrader "
            "metadata)")
    command("check", cmd_check, "check notebooks/ against solutions/ (in sync, no outputs, no "
            "solution line) and that tp_utils holds no exercise's answer")
    p = command("run", cmd_run, "run notebooks headless and time them")
    p.add_argument("notebooks", nargs="*", help="the notebooks to run (without them: every notebook "
                   "of solutions/)")
    p.add_argument("--inplace", action="store_true", help="write the new outputs back into the notebooks")
    p.add_argument("--timeout", type=int, default=600, metavar="SECONDS",
                   help="time limit of one cell (default: 600)")
    p = command("figures", cmd_figures, "save the figures stored in a notebook as PNG files, to review them")
    p.add_argument("notebook", help="the notebook whose stored figures to save")
    p.add_argument("out", nargs="?", default="figures", help="the folder to write to (default: figures)")
    p = sub.add_parser("grade", help="grade a folder of submissions, each exercise in its own process",
                       description=(
        "Grade a folder of submissions: for each student, notebook and exercise, run the exercise's\n"
        'self-checks (taken from the solution notebook) and its hidden tests (the tests of tests/ that call\n'
        'its functions) in a separate process with a time and a memory limit. Writes to --out: grades.csv\n'
        'and grades.md (points per student and exercise, and the reason for each lost point),\n'
        'details.csv and details.json (every check and test), answers.md (the written answers, for a\n'
        'person to grade).\n'
        '\n'
        'Layouts of SUBMISSIONS (a notebook is recognized by its number, NN_anything.ipynb):\n'
        '  alice/00_setup_and_tour.ipynb       one folder per student, any depth inside it\n'
        "  alice/tp/03_patches_and_occlusion.ipynb   (e.g. nbgrader's submitted/ folder)\n"
        "  alice_00_setup_and_tour.ipynb       one file per student and notebook: the student's name,\n"
        "  bob-03_patches_and_occlusion.ipynb  then _ - . or a space, then the notebook's file name\n"
        '\n'
        'A crash, an endless loop, a huge output or a syntax error costs the exercise concerned only.\n'
        'Grading runs on the CPU; needs Linux or macOS (on Windows: WSL).\n'),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("submissions", help="folder of submissions (layouts above)")
    p.add_argument("--out", default="grades", help="folder for the reports (default: grades)")
    p.add_argument("--timeout", type=float, default=600,
                   help="seconds one exercise's tests may run, per student (default: 600)")
    p.add_argument("--memory", type=int, default=4096,
                   help="MB one exercise may allocate beyond the grader's own (default: 4096; 0: no limit)")
    p.add_argument("--notebooks", nargs="+", metavar="NN",
                   help="grade only these notebooks, e.g. 00 03 (default: every notebook submitted)")
    p.add_argument("--jobs", type=int, default=1, help="processes grading at the same time (default: 1)")
    p.add_argument("--no-hidden", action="store_true",
                   help="run the self-checks only, not the hidden tests of tests/ (faster)")
    p.add_argument("--quick", action="store_true",
                   help="hidden tests of tests/mutations/ only: seconds per student instead of minutes "
                        "(leaves out the comparisons with captum and scikit-learn)")
    p.add_argument("--unsandboxed", action="store_true",
                   help="run the submissions in the grader's own processes (for trusted code only: "
                        "a submission can then read the answers and change its grade)")
    p.add_argument("--solutions", help="the reference notebooks (default: solutions/ of the course)")
    p.add_argument("--tests", help="the hidden tests' folder (default: tests/ of the course)")
    p.set_defaults(func=cmd_grade)
    p = command("release", cmd_release, "write the students' copy of the course (notebooks/, tp_utils, data/, "
                "a README; no solutions/, no tests/, no instructor tools) and scan it for answers")
    p.add_argument("out", help="the folder to write (must not exist or be empty)")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as err:  # one clear line, not a traceback, for expected failures
        from .assets import AssetError
        from .models import WeightsUnavailableError

        if isinstance(err, (AssetError, WeightsUnavailableError)):
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
