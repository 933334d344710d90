"""The trusted runner: the checks and hidden tests run here, the submission runs in the sandbox.

:class:`Zygote` starts the notebook's sandbox (:mod:`tp_tools.sandbox`) and answers its setup's
calls; :func:`sandboxed_target` is what a forked *trusted* child runs for one student and
exercise: it hands the student's cells to the zygote (which forks the student's process), puts a
:class:`tp_tools.proxy.Remote` in place of each function of the exercise, and runs the self-check
cells and the hidden tests, which call the student's code through it. The student's other
exercises stay the reference, here. The verdict (the events) is written only by this process,
into a folder the sandbox cannot see.
"""
from __future__ import annotations

import os
import signal
import sys
import types
from pathlib import Path

from tp_tools import proxy, sandbox

UID_BASE = 61000  # the sandboxes' user ids: UID_BASE + the worker's number


def setup_names(ns: dict) -> dict:
    """The setup objects that cross the sandbox by name (models, ..., not data nor functions)."""
    import torch

    return {k: v for k, v in ns.items() if not k.startswith("__") and not isinstance(v, types.ModuleType)
            and (isinstance(v, torch.nn.Module) or not callable(v))}


def setup_classes(ns: dict) -> dict:
    """The module classes the setup defines (a module of such a class crosses as data)."""
    import torch

    return {k: v for k, v in ns.items() if isinstance(v, type) and issubclass(v, torch.nn.Module)}


def _visible() -> list[str]:
    """Folders the sandbox sees (read-only): the Python installation, the data, the weights' cache."""
    import torch

    out = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    for var in ("TP_DATA_DIR", "TORCH_HOME"):
        if os.environ.get(var):
            out.add(os.environ[var])
    out.add(torch.hub.get_dir())
    for site in sys.path:  # site-packages outside the prefix (a user install)
        if "site-packages" in site or "dist-packages" in site:
            out.add(site)
    return sorted(p for p in out if p and os.path.exists(p) and not p.startswith("/usr"))


class Zygote:
    """The notebook's sandbox process, set up, waiting for jobs."""

    def __init__(self, p, module: types.ModuleType, worker_id: int, door=None) -> None:
        import tp_tools
        import tp_utils

        ns = module.__dict__
        exercise_cells = {ex.cell for ex in p.exercises}
        cells = [(f"cell {i}", src) for i, src in p.exports + p.setup if i not in exercise_cells]
        functions = [f for ex in p.exercises for f in ex.functions]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TP_DATA_DIR", "TORCH_HOME")}
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", TQDM_DISABLE="1",
                   MPLBACKEND="Agg", CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1",
                   MPLCONFIGDIR="/tmp/mpl", TP_SANDBOX_UID=str(UID_BASE + worker_id))
        if "TORCH_HOME" not in env:
            import torch

            env["TORCH_HOME"] = str(Path(torch.hub.get_dir()).parent)
        self.uid = UID_BASE + worker_id if os.geteuid() == 0 else None
        if self.uid is None:
            env["PYTHONPATH"] = os.pathsep.join([str(Path(tp_utils.__file__).parents[1]),
                                                 str(Path(tp_tools.__file__).parents[1])])
        self.proc, self.ctl = sandbox.start(self.uid, _visible(),
                                            [str(Path(tp_utils.__file__).parent), str(Path(tp_tools.__file__).parent)],
                                            env)
        self.ns = ns
        peer = proxy.Peer(self.ctl, names=setup_names(ns), functions={f: ns.get(f) for f in functions})
        peer.door = door
        peer.codec.classes = setup_classes(ns)
        proxy._send(self.ctl, {"op": "setup", "stem": p.stem, "cells": cells, "remote": functions}, [])
        while True:
            msg, buf = proxy._recv(self.ctl)
            if msg.get("op") == "setup_done":
                if msg.get("error"):
                    raise RuntimeError(f"the sandbox's setup failed: {msg['error']}")
                break
            if msg.get("op") in ("call", "backward"):
                peer._serve_one(msg, buf)

    def sweep(self) -> None:
        """Kill whatever the last job left running under the sandbox's user id (not the zygote)."""
        if self.uid is None:
            return
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.proc.pid:
                continue
            try:
                with open(f"/proc/{entry}/status") as f:
                    uid = next((int(line.split()[1]) for line in f if line.startswith("Uid:")), None)
                if uid == self.uid:
                    os.kill(int(entry), signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        try:
            self.ctl.close()
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
            self.sweep()


def student_cells(p, exercise, notebook: str):
    """``(cells, reason)``: the student's cells to run in the sandbox (label, source, tolerant):
    the context cells (export cells, untagged cells of definitions only), then the exercise's cell."""
    from tp_tools.checking import context_cells, submission_cells

    cells, target, reason = submission_cells(notebook, exercise)
    if reason:
        return None, reason
    out = [(f"cell {i}", cell.source, True) for i, cell, _ in context_cells(cells, target)]
    out.append((f"cell {target}", cells[target].source, False))
    return out, None


def _death(how: dict, timeout: float, memory_mb) -> str:
    from tp_tools.child import ChildResult

    if "signal" in how:
        return ChildResult([], "signal", int(how["signal"]), 0, "", 0).stop_reason(timeout, memory_mb)
    return ChildResult([], "exit", int(how.get("exit", 0)), 0, "", 0).stop_reason(timeout, memory_mb)


def sandboxed_target(module, p, exercise, notebook: str, zygote: Zygote, *, hidden: bool, timeout: float,
                     memory_mb, door=None):
    """What a trusted child runs for one student and exercise (see the module's docstring)."""
    from tp_tools import checking

    def target(emit) -> None:
        cells, reason = student_cells(p, exercise, notebook)
        if reason:
            emit({"fatal": reason})
            return
        ns = module.__dict__
        import socket

        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sandbox.send_job(zygote.ctl, {"op": "job", "cells": cells, "functions": exercise.functions,
                                      "memory": memory_mb, "timeout": timeout}, [theirs.fileno(), 1])
        theirs.close()
        started, _ = proxy._recv(zygote.ctl)
        emit({"sandbox_pid": started.get("pid")})
        others = {f: ns.get(f) for ex in p.exercises if ex is not exercise for f in ex.functions}

        def died(msg):
            raise proxy.SandboxDied(_death(msg, timeout, memory_mb))

        peer = proxy.Peer(mine, names=setup_names(ns), functions=others, on_status=died)
        peer.door = door
        peer.codec.classes = setup_classes(ns)
        try:
            while True:
                msg, buf = proxy._recv(mine)
                if msg.get("op") == "ready":
                    break
                if msg.get("op") == "status":
                    died(msg)
                if msg.get("op") in ("call", "backward"):
                    peer._serve_one(msg, buf)
        except (proxy.SandboxDied, proxy.Closed) as err:
            emit({"fatal": f"its cells stop the process: {err}"})
            return
        if msg.get("fatal"):
            emit({"fatal": msg["fatal"]})
            return
        for f in exercise.functions:
            ns[f] = proxy.Remote(peer, f, f)
            sig = proxy.make_signature(peer.codec, (msg.get("signatures") or {}).get(f))
            if sig is not None:
                ns[f].__signature__ = sig  # inspect.signature(f) works on the student's function
        try:
            ok = checking.run_checks(ns, exercise, emit)
            if hidden and exercise.hidden:
                checking.run_hidden(module, p, exercise, emit)
        except (proxy.SandboxDied, proxy.Closed) as err:
            emit({"stopped": str(err)})
            return
        del ok
    return target
