"""The sandbox: where a submission's code runs, apart from the grader.

:func:`start` launches ``python -m tp_tools.sandbox`` (the *zygote*) with what the grader may
take away from it:

- when the grader runs as root: a user id of its own (``--uid``, one per grading worker, never 0),
  no supplementary groups, ``PR_SET_NO_NEW_PRIVS``; a new mount namespace whose root is a
  tmpfs holding read-only bind mounts of the system folders, the Python installation, the course
  package (``tp_utils`` and ``tp_tools``, not the checkout: no ``solutions/``, ``tests/``, no
  submissions, no reports) and the data folders, with a fresh ``/tmp``; a new network namespace
  (no interface up: no network);
- as any other user (macOS, a grader without root): none of that is available, and
  :func:`isolation` says so (``tp grade`` prints it);
- always: the zygote's environment is rebuilt (no ``TP_ANSWERS_DIR``), its working folder is its own.

The zygote imports torch and runs the notebook's setup (the solution's export and setup cells
*without* the exercise cells; an exercise function is a :class:`tp_tools.proxy.Remote` to the
trusted process), then, for each (student, exercise), forks a child that runs the student's cells
and serves the trusted process's calls on a socket of its own, within the limits (memory, CPU
time, file size, number of processes), in a fresh working folder. When the child ends the zygote
tells the trusted side how (exit status or signal).
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
from pathlib import Path

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
SYSTEM = ["/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc"]
NEW_ROOT = "/tmp/tp-sandbox-root"


def _compile_cell(source: str, filename: str):
    from tp_tools.cells import _code, _compile

    return _compile(_code(source), filename)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def isolation() -> str:
    """What the sandbox can do here, in words."""
    if not sys.platform.startswith("linux"):
        return "no isolation beyond a separate process (not Linux)"
    if os.geteuid() != 0:
        return ("a separate process only: run `tp grade` as root (e.g. in a container) for a separate "
                "user id, no network and no view of solutions/, tests/, submissions or reports")
    return "separate user id, no network, a file system without solutions/, tests/, submissions or reports"


def _bind(libc, src: str, dst: str, writable: bool = False):
    os.makedirs(dst, exist_ok=True) if os.path.isdir(src) else None
    if not os.path.isdir(src):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    _check(libc.mount(src.encode(), dst.encode(), None, MS_BIND | MS_REC, None), f"bind {src}")
    if not writable:
        libc.mount(None, dst.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_REC, None)


def enter(uid: int, visible: list[str], package_dirs: list[str]):
    """(As root, in the child before exec.) New mount + network namespaces, a root that shows only
    ``SYSTEM``, ``visible`` and the package folders (bound under /opt/tp), then drop to ``uid``."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    root = NEW_ROOT
    os.makedirs(root, exist_ok=True)
    _check(libc.mount(b"tmpfs", root.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=512m,mode=755"), "tmpfs")
    for d in ("/tmp", "/work"):
        os.makedirs(root + d, exist_ok=True)
        _check(libc.mount(b"tmpfs", (root + d).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=1g,mode=1777"), d)
    for path in SYSTEM + visible:
        if os.path.exists(path) and not os.path.islink(path):
            _bind(libc, path, root + path)
        elif os.path.islink(path):
            os.makedirs(os.path.dirname(root + path), exist_ok=True)
            if not os.path.lexists(root + path):
                os.symlink(os.readlink(path), root + path)
    for d in package_dirs:
        _bind(libc, d, f"{root}/opt/tp/{os.path.basename(d)}")
    os.makedirs(root + "/dev", exist_ok=True)
    for dev in ("null", "zero", "urandom", "random"):
        _bind(libc, "/dev/" + dev, f"{root}/dev/{dev}", writable=True)
    os.makedirs(root + "/proc", exist_ok=True)
    libc.mount(b"proc", (root + "/proc").encode(), b"proc", MS_NOSUID | MS_NODEV, None)  # may fail: fine
    os.chroot(root)
    os.chdir("/work")
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def start(uid: int | None, visible: list[str], package_dirs: list[str], env: dict):
    """Launch the zygote; returns ``(process, socket to it)``."""
    import subprocess

    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    isolated = uid is not None and os.geteuid() == 0 and sys.platform.startswith("linux")
    preexec = (lambda: enter(uid, visible, package_dirs)) if isolated else None
    env = dict(env)
    if isolated:
        env["PYTHONPATH"] = "/opt/tp"
        env["HOME"] = "/work"
    proc = subprocess.Popen([sys.executable, "-m", "tp_tools.sandbox", str(child.fileno())],
                            pass_fds=[child.fileno()], preexec_fn=preexec, env=env,
                            stdin=subprocess.DEVNULL, cwd="/" if isolated else None,
                            start_new_session=True)
    child.close()
    return proc, parent


# ------------------------------------------------------------------------------ inside the zygote

def _limits(memory_mb, timeout, nproc: int = 64):
    import resource

    def cap(kind, value):
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):
            pass

    from tp_tools.child import FILE_LIMIT, _vm_bytes as vm_bytes

    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_FSIZE, FILE_LIMIT)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if timeout:
        cap(resource.RLIMIT_CPU, int(timeout) + 5)
    if os.geteuid() != 0 and os.getuid() != 0 and os.environ.get("TP_SANDBOX_ISOLATED") == "1":
        cap(resource.RLIMIT_NPROC, nproc)
    if memory_mb:
        vm = vm_bytes()
        if vm:
            cap(resource.RLIMIT_AS, vm + int(memory_mb) * 2 ** 20)


def _job(ctl: socket.socket, ns: dict, names: dict, remote_names: list, msg: dict, sock: socket.socket, out_fd: int):
    """The forked child: one student's exercise."""
    import tempfile

    from tp_tools import proxy
    from tp_tools.cells import _code

    ctl.close()
    os.setsid()
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    _limits(msg.get("memory"), msg.get("timeout"))
    import faulthandler

    faulthandler.enable(file=sys.stderr)
    os.chdir(tempfile.mkdtemp(prefix="exercise-", dir="/tmp" if os.path.isdir("/tmp") else None))
    peer = proxy.Peer(sock, names=names)
    peer.codec.classes = {k: v for k, v in ns.items() if isinstance(v, type) and issubclass(v, __import__("torch").nn.Module)}
    for value in list(ns.values()):  # what the setup got from the door now asks through this socket
        if isinstance(value, proxy.Remote):
            value._peer = peer
    for name in remote_names:  # the other exercises: the reference, called in the trusted process
        ns[name] = proxy.Remote(peer, name, name)
    _door(peer)
    fatal = None
    for label, source, tolerant in msg["cells"]:
        try:
            exec(_compile_cell(source, f"<submission {label}>"), ns)
        except BaseException as err:  # noqa: B036
            from tp_tools.checking import describe

            if tolerant:
                print(f"[grader] {label} of the submission failed: {describe(err)}")
            else:
                fatal = f"its cell fails to run: {describe(err)}"
                break
    if fatal is None:
        missing = [f for f in msg["functions"] if not callable(ns.get(f))]
        if missing:
            fatal = f"its cell does not define {', '.join(missing)}"
    for f in msg["functions"]:
        peer.functions[f] = ns.get(f)
    signatures = {f: proxy.describe_signature(peer.codec, ns[f]) for f in msg["functions"]
                  if fatal is None and callable(ns.get(f))}
    proxy._send(sock, {"op": "ready", "fatal": fatal, "signatures": signatures}, [])
    if fatal is None:
        peer.serve_forever()
    sys.stdout.flush()
    os._exit(0)


def _door(peer):
    """Earlier notebooks' answers come from the trusted process (the sandbox cannot read them)."""
    from tp_tools import proxy
    from tp_utils import answers

    def earlier(name, folder=None):
        return proxy.Remote(peer, f"earlier:{name}", name)

    answers.earlier = earlier


def zygote(fd: int) -> int:
    from tp_tools import proxy
    from tp_tools.cells import _code

    ctl = socket.socket(fileno=fd)
    msg, _ = proxy._recv(ctl)  # the setup
    import types

    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import torch

    torch.set_num_threads(1)
    import tp_utils

    tp_utils.get_device = lambda prefer=None: torch.device("cpu")
    from tp_utils import device as _device

    _device.get_device = tp_utils.get_device
    module = types.ModuleType(msg["stem"])
    ns = module.__dict__
    peer = proxy.Peer(ctl, names=ns)
    peer.codec.classes = ns  # read at call time: the setup's classes as they are defined
    _door(peer)
    remote_names = list(msg["remote"])
    for name in remote_names:
        ns[name] = proxy.Remote(peer, name, name)
    import contextlib
    import io

    tp_utils.seed_everything(0)
    error = None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for label, source in msg["cells"]:
                exec(_compile_cell(source, f"<setup {label}>"), ns)
                import matplotlib.pyplot as plt

                plt.close("all")
    except BaseException as err:  # noqa: B036
        error = f"{type(err).__name__}: {err}"[:500]
    for name in remote_names:
        ns[name] = None
    proxy._send(ctl, {"op": "setup_done", "error": error}, [])
    if error:
        return 1
    names = {k: v for k, v in ns.items() if not k.startswith("__") and not isinstance(v, types.ModuleType)
             and not callable(v) or isinstance(v, torch.nn.Module)}
    while True:
        try:
            msg, _, fds = _recv_with_fds(ctl)
        except (proxy.Closed, OSError):
            return 0
        if msg.get("op") != "job" or len(fds) != 2:
            for f in fds:
                os.close(f)
            continue
        sock_fd, out_fd = fds
        sock = socket.socket(fileno=sock_fd)
        pid = os.fork()
        if pid == 0:
            try:
                _job(ctl, dict(ns), names, remote_names, msg, sock, out_fd)
            except BaseException:  # noqa: B036 - say why, in the student's output
                import traceback

                traceback.print_exc()
            finally:
                os._exit(70)
        os.close(out_fd)
        try:
            proxy._send(ctl, {"op": "started", "pid": pid}, [])
        except OSError:
            pass
        _, status = os.waitpid(pid, 0)
        how = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"exit": os.WEXITSTATUS(status)}
        try:
            proxy._send(sock, {"op": "status", **how}, [])
        except OSError:
            pass
        sock.close()


def _recv_with_fds(ctl: socket.socket):
    """A job message and the two descriptors that come with it (socket.recv_fds)."""
    import json
    import struct

    data, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 4)
    if not data:
        raise OSError("closed")
    head_len, _ = struct.unpack("<II", data[:8])
    body = data[8:]
    while len(body) < head_len:
        more = ctl.recv(head_len - len(body))
        if not more:
            raise OSError("closed")
        body += more
    return json.loads(body[:head_len]), [], fds


def send_job(ctl: socket.socket, msg: dict, fds: list[int]) -> None:
    import json
    import struct

    head = json.dumps(msg).encode()
    data = struct.pack("<II", len(head), 0) + head
    socket.send_fds(ctl, [data[:1 << 15]], fds)
    if len(data) > 1 << 15:
        ctl.sendall(data[1 << 15:])


if __name__ == "__main__":
    os.environ["TP_SANDBOX_ISOLATED"] = "1" if os.getuid() != 0 and os.environ.get("TP_SANDBOX_UID") else "0"
    sys.exit(zygote(int(sys.argv[1])))
