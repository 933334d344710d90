"""What a student sees in JupyterLab, in a real browser: headless Chromium (Debian's `chromium`)
driven by Playwright against a JupyterLab server started here on 127.0.0.1 with a token.

- notebook 01, exercises filled from the solution, Run All: its explorer renders (slider and
  picture) and moving the channel slider replaces the picture (the PNG's bytes differ);
- notebook 12, exercises filled from the solution, the cells its explorer needs (the export cells,
  the trained network, section 7; the whole notebook would take 2 minutes): moving the mix slider
  replaces the picture;
- notebook 00 untouched: Run All stops at the first exercise with the course's one-line hint.

Screenshots go to $TP_SCREENSHOTS (default: a temporary folder), their names printed. Skipped when
chromium or playwright is missing, unless TP_REQUIRE_BROWSER is set (.ci/run sets it: CI has both).
"""
from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
HINT = "is not written yet: write its `# YOUR CODE HERE` part"


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not os.path.exists(CHROMIUM):
        return "chromium is not installed (apt-get install -y chromium)"
    return None


if _missing() and os.environ.get("TP_REQUIRE_BROWSER"):
    raise RuntimeError(f"TP_REQUIRE_BROWSER is set but {_missing()}")
pytestmark = pytest.mark.skipif(bool(_missing()), reason=f"browser test: {_missing()}")


def solution(nn):
    (path,) = (ROOT / "solutions").glob(f"{nn}_*.ipynb")
    return path


def filled(nn: str):
    """The student notebook with every exercise cell replaced by the solution's cell."""
    sol = nbformat.read(solution(nn), as_version=4)
    student = nbformat.read(ROOT / "notebooks" / solution(nn).name, as_version=4)
    assert len(sol.cells) == len(student.cells)
    for s, c in zip(sol.cells, student.cells):
        if c.cell_type == "code" and "### BEGIN SOLUTION" in s.source:
            c.source = s.source
    return student


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("lab")
    nbformat.write(filled("01"), work / solution("01").name)
    nb12 = filled("12")  # the explorer's cells only (see the docstring)
    keep = [i for i, c in enumerate(nb12.cells) if "export" in c.metadata.get("tags", [])
            or "loss_network(device" in c.source or "transformer_net.load(" in c.source
            or "def path_weights" in c.source or "tp.widgets.explorer(" in c.source]
    assert len(keep) >= 6, keep
    nb12.cells = [nb12.cells[i] for i in keep]
    nbformat.write(nb12, work / solution("12").name)
    for nn in ("09", "10"):  # 12's door takes 09's TV loss and 10's Gram matrix from this folder
        shutil.copy(solution(nn), work)
    shutil.copy(ROOT / "notebooks" / solution("00").name, work)
    settings = work / ".settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)  # every cell in the page (no virtual scrolling), no news popup
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    (work / ".settings" / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (work / ".settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "tp-browser-test"
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(work / ".settings"), TQDM_DISABLE="1",
               JUPYTER_CONFIG_DIR=str(work / ".config"), PYTHONPATH=os.pathsep.join(
                   [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    log = open(work / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                               f"--port={port}", f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={work}", "--LabApp.news_url=None", "--allow-root"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if server.poll() is not None:
                break
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("JupyterLab did not start: " + (work / "server.log").read_text()[-2000:])
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield {"browser": browser, "url": url, "token": token, "work": work}
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    assert server.poll() is not None  # the server is stopped


@pytest.fixture(scope="module")
def shots():
    folder = Path(os.environ.get("TP_SCREENSHOTS") or Path(os.environ.get("TMPDIR", "/tmp")) / "tp-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


ALL_RUN = ("() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent);"
           " return p.length > 0 && p.every(t => /\\[\\d+\\]/.test(t))"
           " && document.querySelector(\".jp-Notebook-ExecutionIndicator[data-status='idle']\") !== null; }")


def open_and_run_all(lab, name: str, done: str = ALL_RUN, timeout_s: float = 150):
    page = lab["browser"].new_context(viewport={"width": 1400, "height": 1000}).new_page()
    workspace = name.split("_")[0]  # its own workspace, reset: only this notebook is open
    page.goto(f"{lab['url']}/lab/workspaces/nb{workspace}/tree/{name}?reset&token={lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    start = time.perf_counter()
    page.wait_for_timeout(1000)
    try:
        page.wait_for_function(done, timeout=timeout_s * 1000, polling=500)
    except Exception:
        page.screenshot(path=f"/tmp/tp-browser-{name}.png", full_page=True)
        raise
    return page, time.perf_counter() - start


def explorer_png(cell) -> bytes:
    src = cell.locator(".jp-OutputArea-output img").last.get_attribute("src")
    assert src.startswith("data:image/png;base64,")
    return base64.b64decode(src.split(",", 1)[1])


def move_slider_and_compare(page, shots: Path, stem: str, slider_label: str):
    cell = page.locator(".jp-CodeCell", has_text="tp.widgets.explorer(").first
    try:
        cell.scroll_into_view_if_needed()
    except Exception:
        page.screenshot(path=str(shots / f"{stem}-failed.png"), full_page=True)
        raise
    slider = cell.locator(".widget-slider", has_text=slider_label)
    try:
        slider.wait_for(timeout=30_000)  # the widget rendered (ipywidgets' JupyterLab manager)
    except Exception:
        page.screenshot(path=str(shots / f"{stem}-failed.png"), full_page=True)
        print(cell.inner_html()[-3000:])
        raise
    before = explorer_png(cell)
    value = slider.locator(".widget-readout").inner_text()
    cell.screenshot(path=str(shots / f"{stem}-explorer-before.png"))
    handle = slider.locator(".noUi-handle")
    handle.focus()
    handle.press("ArrowRight")
    page.wait_for_function("([el, v]) => el.textContent.trim() !== v",
                           arg=[slider.locator(".widget-readout").element_handle(), value], timeout=10_000)
    deadline = time.time() + 60
    after = explorer_png(cell)
    while after == before and time.time() < deadline:
        page.wait_for_timeout(300)
        after = explorer_png(cell)
    cell.screenshot(path=str(shots / f"{stem}-explorer-after.png"))
    assert after != before, f"moving {slider_label} from {value} did not change the picture"
    return value, slider.locator(".widget-readout").inner_text()


def test_notebook01_explorer_renders_and_its_slider_changes_the_picture(lab, shots):
    page, seconds = open_and_run_all(lab, solution("01").name)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']", has_text="Error")
    assert errors.count() == 0, errors.first.inner_text()
    moved = move_slider_and_compare(page, shots, "01", "channel")
    page.screenshot(path=str(shots / "01-page.png"))
    print(f"\n01: Run All in {seconds:.0f} s, channel {moved[0]} -> {moved[1]}; screenshots in {shots}")
    page.context.close()


def test_notebook12_explorer_slider_changes_the_picture(lab, shots):
    page, seconds = open_and_run_all(lab, solution("12").name)
    moved = move_slider_and_compare(page, shots, "12", "percent")
    print(f"\n12 (explorer cells): Run All in {seconds:.0f} s, percent {moved[0]} -> {moved[1]}")
    page.context.close()


def test_unfinished_exercise_shows_the_one_line_hint(lab, shots):
    page, seconds = open_and_run_all(lab, solution("00").name, done=(
        "() => [...document.querySelectorAll('.jp-OutputArea-output')].some(e => e.textContent.includes(%r))"
        " && document.querySelector(\".jp-Notebook-ExecutionIndicator[data-status='idle']\") !== null" % HINT))
    cell = page.locator(".jp-CodeCell", has_text=HINT).first
    text = cell.locator(".jp-OutputArea").inner_text()
    line = next(ln for ln in text.splitlines() if HINT in ln)
    assert line.startswith("➜ `") and "NotImplementedError" in text, text[-500:]  # under the traceback
    assert page.locator(".jp-OutputArea-output", has_text=HINT).count() == 1  # Run All stopped there
    cell.scroll_into_view_if_needed()
    cell.screenshot(path=str(shots / "00-hint.png"))
    print(f"\n00 untouched: stopped after {seconds:.0f} s with: {line}")
    page.context.close()
