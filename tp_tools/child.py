"""Running code in a forked child process, with a wall-clock limit, a memory limit, a file-size
limit, and the first and last bytes of its output kept."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path


KEEP_OUTPUT = 2000      # bytes of a child's output kept from its start and from its end


FILE_LIMIT = 256 << 20  # largest file a child may write


@dataclass
class ChildResult:
    events: list
    end: str            # "exit", "signal" or "timeout"
    code: int           # exit status or signal number
    seconds: float
    output: str         # the first and last KEEP_OUTPUT bytes of stdout + stderr
    output_bytes: int

    def stop_reason(self, timeout: float, memory_mb: int | None) -> str:
        """Why the child stopped before finishing, in words."""
        if self.end == "timeout":
            return f"time-out: still running after {timeout:g} s (an endless loop?)"
        if self.end == "signal":
            name = signal.Signals(self.code).name if self.code in signal.Signals._value2member_map_ else str(self.code)
            why = {"SIGSEGV": "segmentation fault", "SIGABRT": "aborted", "SIGBUS": "bus error",
                   "SIGKILL": "killed, perhaps out of memory", "SIGFPE": "arithmetic error",
                   "SIGILL": "illegal instruction"}.get(name, "killed by a signal")
            return f"the process crashed ({name}: {why})"
        if self.code == 0:
            return "the process ended before its tests did"
        return f"the process exited with status {self.code} (os._exit, or an error outside the tests)"


def _vm_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit_child(memory_mb: int | None):
    import resource

    def cap(kind, value):
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value))

    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_FSIZE, FILE_LIMIT)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, the process goes on
    if memory_mb and hasattr(resource, "RLIMIT_AS"):
        vm = _vm_bytes()
        if vm:
            try:
                cap(resource.RLIMIT_AS, vm + int(memory_mb) * 2 ** 20)
            except (ValueError, OSError):
                pass


def _join_output(head: bytes, tail: bytes, total: int) -> str:
    if total <= len(head):
        text = head
    elif total <= len(head) + len(tail):
        text = head + tail[len(head) + len(tail) - total:]
    else:
        left_out = total - len(head) - len(tail)
        text = head + f"\n[... {left_out:,} bytes left out ...]\n".encode() + tail
    return text.decode("utf-8", "replace")


class Child:
    """``target(emit)`` running in a forked child with the limits; :meth:`poll` until done.

    The child's stdout and stderr go to a pipe of which the first and last ``keep`` bytes are
    kept; it runs in its own process group, killed whole at ``timeout`` seconds and at the end;
    ``emit(dict)`` records an event (a JSON line in a file, so that it survives a crash).
    """

    def __init__(self, target, *, timeout: float, memory_mb: int | None = None, keep: int = KEEP_OUTPUT,
                 threads: int | None = None):
        self.timeout, self.keep = timeout, keep
        self.workdir = Path(tempfile.mkdtemp(prefix="tp-grade-"))
        self.events_path = self.workdir / "events.jsonl"
        read_end, write_end = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self.start = time.monotonic()
        pid = os.fork()
        if pid == 0:  # ------------------------------------------------------------- the child
            code = 0
            try:
                os.setsid()
                os.close(read_end)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(write_end, 1)
                os.dup2(write_end, 2)
                os.close(write_end)
                sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, encoding="utf-8", errors="replace",
                                                   closefd=False)
                sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, encoding="utf-8", errors="replace",
                                                   closefd=False)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _limit_child(memory_mb)
                if threads and "torch" in sys.modules:  # the parent has no thread pool: safe here
                    sys.modules["torch"].set_num_threads(int(threads))
                import faulthandler

                faulthandler.enable(file=sys.stderr)
                os.makedirs(self.workdir / "cwd")
                os.chdir(self.workdir / "cwd")  # files a submission writes land apart from the events
                with open(self.events_path, "w", buffering=1, encoding="utf-8") as events:
                    def emit(event: dict) -> None:
                        events.write(json.dumps(event, default=str) + "\n")
                        events.flush()

                    _ = target(emit)
            except BaseException:  # noqa: B036 - nothing may escape a forked child
                code = 70
                try:
                    traceback.print_exc()
                except BaseException:  # noqa: B036
                    pass
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                except BaseException:  # noqa: B036
                    pass
                os._exit(code)
        # ------------------------------------------------------------------------------ the parent
        self.pid, self.fd = pid, read_end
        os.close(write_end)
        os.set_blocking(read_end, False)
        self.head, self.tail, self.total = bytearray(), bytearray(), 0
        self.eof, self.status, self.end, self._result = False, 0, "exit", None

    def _absorb(self, chunk: bytes):
        self.total += len(chunk)
        if len(self.head) < self.keep:
            self.head.extend(chunk[:self.keep - len(self.head)])
        self.tail = (self.tail + chunk[-self.keep:])[-self.keep:]

    def _read(self, wait: float):
        import select

        if self.eof:
            time.sleep(wait)
            return
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            return
        for _ in range(64):
            try:
                chunk = os.read(self.fd, 1 << 16)
            except (BlockingIOError, InterruptedError):
                return
            if not chunk:
                self.eof = True
                return
            self._absorb(chunk)

    def poll(self, wait: float = 0.1) -> bool:
        """Read output for up to ``wait`` seconds; True once the child has ended (or was killed)."""
        if self._result is not None:
            return True
        self._read(wait)
        done, status = os.waitpid(self.pid, os.WNOHANG)
        if done:
            self.status = status
        elif time.monotonic() > self.start + self.timeout:
            self.end = "timeout"
            _kill_group(self.pid)
            _, self.status = os.waitpid(self.pid, 0)
        else:
            return False
        self._finish()
        return True

    def _finish(self) -> None:
        seconds = time.monotonic() - self.start
        _kill_group(self.pid)  # what the child left running
        self.eof = False
        while not self.eof:
            before = self.total
            self._read(0)
            if self.total == before:
                break
        os.close(self.fd)
        if self.end == "timeout":
            code = -1
        elif os.WIFSIGNALED(self.status):
            self.end, code = "signal", os.WTERMSIG(self.status)
        else:
            code = os.WEXITSTATUS(self.status)
        events = []
        try:
            with open(self.events_path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        pass
        except OSError:
            pass
        shutil.rmtree(self.workdir, ignore_errors=True)
        self._result = ChildResult(events, self.end, code, seconds,
                                   _join_output(bytes(self.head), bytes(self.tail), self.total), self.total)

    def result(self) -> ChildResult:
        while not self.poll():
            pass
        return self._result


def run_in_child(target, **limits) -> ChildResult:
    """Run ``target(emit)`` in a forked child with the limits (see :class:`Child`); wait for it."""
    return Child(target, **limits).result()


def run_many(targets, *, jobs: int = 1, **limits) -> list[ChildResult]:
    """Run the targets in forked children, ``jobs`` at a time; their results in order."""
    results, running, todo = [None] * len(targets), {}, list(enumerate(targets))
    while todo or running:
        while todo and len(running) < max(1, jobs):
            k, target = todo.pop(0)
            running[k] = Child(target, **limits)
        for k, child in list(running.items()):
            if child.poll(0.05 if len(running) > 1 else 0.1):
                results[k] = child.result()
                del running[k]
    return results


def _kill_group(pid: int):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
