"""The only module that starts processes.

`capture` runs short helpers to completion. `supervise` runs ms-swift: argv list, no shell,
its own process group (so a signal reaches torchrun and every rank), every output line
teed to a log file as it comes, a bounded tail kept for the failure report, and Ctrl-C /
SIGTERM forwarded to the group, then a kill after a grace period so no orphan is left.
"""
from __future__ import annotations

import collections
import json
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

TAIL_LINES = 300
GRACE_SECONDS = 20.0


@dataclass(frozen=True)
class Captured:
    returncode: int
    stdout: str
    stderr: str


def capture(argv: list[str], *, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: float | None = 600) -> Captured:
    """Run a short helper command to completion and capture its output (no shell)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(argv, env=full_env, input=stdin, capture_output=True, text=True, timeout=timeout,
                          check=False)
    return Captured(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Finished:
    returncode: int
    tail: list[str]
    log_path: Path
    wall_seconds: float
    interrupted_by: int | None = None  # the signal we forwarded, if the user stopped the run
    pid: int = 0
    stalled_after: float | None = None  # seconds of silence after which swiftkit stopped a hung child


def child_env(env: dict[str, str]) -> dict[str, str]:
    """The parent's environment, the recipe's variables, and unbuffered Python output."""
    merged = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    if "PYTHONPATH" in env and os.environ.get("PYTHONPATH"):  # add to the user's path, never replace it
        merged["PYTHONPATH"] = env["PYTHONPATH"] + os.pathsep + os.environ["PYTHONPATH"]
    return merged


def _split_lines(buffer: bytes) -> tuple[list[bytes], bytes]:
    # tqdm redraws with '\r'; treat it as a line end so dict lines after a bar are seen at once.
    parts = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return parts[:-1], parts[-1]


def supervise(argv: list[str], env: dict[str, str], log_path: Path, on_line: Callable[[str], None],
              *, cwd: Path | None = None, grace: float = GRACE_SECONDS, stall_timeout: float | None = None,
              keep_fds: tuple[int, ...] = (), on_start: Callable[[int], None] | None = None) -> Finished:
    """Run argv in its own process group, every output line to the log and to on_line. A child that
    prints nothing for stall_timeout seconds is taken as hung and stopped (its group: SIGTERM, then
    SIGKILL after `grace`). keep_fds: descriptors the child inherits (the run lock). on_start: told the child's
    pid (its process group) once it runs, for a watcher that may stop it (`stop_group`)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    start = time.monotonic()
    with _Log(log_path) as log:
        log.write(f"$ {shlex.join(argv)}\n".encode())
        proc = subprocess.Popen(argv, env=child_env(env), cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                pass_fds=keep_fds)
        stopper = _Stopper(proc, grace)
        if on_start is not None:
            on_start(proc.pid)
        watchdog = _Watchdog(proc, stall_timeout, grace) if stall_timeout else None
        with stopper.installed():
            _pump(proc, log, tail, on_line, watchdog)
            returncode = proc.wait()
        _kill_group(proc.pid)  # grandchildren (torchrun ranks, workers) must not outlive the run
    return Finished(returncode, list(tail), log_path, time.monotonic() - start, stopper.signal, proc.pid,
                    watchdog.fired if watchdog else None)


class _Log:
    """The child's log file, that a full disk cannot crash: a failed write stops the logging (the output
    still reaches the parser and the tail, which is what a diagnosis needs) instead of the supervision."""

    def __init__(self, path: Path):
        self.file = open(path, "ab")  # noqa: SIM115 - closed in __exit__
        self.error: OSError | None = None

    def __enter__(self):
        return self

    def write(self, data: bytes) -> None:
        if self.error is None:
            try:
                self.file.write(data)
                self.file.flush()
            except OSError as err:
                self.error = err

    def flush(self) -> None:
        pass  # every write is flushed

    def __exit__(self, *exc):
        try:
            self.file.close()
        except OSError as err:
            self.error = self.error or err
        return False


class _Watchdog:
    """Stops a child whose output has been silent for `timeout` seconds (a hang: a dataloader deadlock,
    a collective that waits for a rank that is gone)."""

    def __init__(self, proc: subprocess.Popen, timeout: float, grace: float):
        self.proc, self.timeout, self.grace = proc, timeout, grace
        self.last = time.monotonic()
        self.fired: float | None = None
        threading.Thread(target=self._watch, daemon=True).start()

    def heard(self) -> None:
        self.last = time.monotonic()

    def _watch(self) -> None:
        while self.proc.poll() is None:
            silent = time.monotonic() - self.last
            if silent >= self.timeout:
                self.fired = round(silent, 1)
                try:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    return
                deadline = time.monotonic() + self.grace
                while time.monotonic() < deadline and self.proc.poll() is None:
                    time.sleep(0.2)
                _kill_group(self.proc.pid)
                return
            time.sleep(min(1.0, self.timeout / 4))


def _pump(proc: subprocess.Popen, log, tail, on_line, watchdog: _Watchdog | None = None) -> None:
    pending = b""
    assert proc.stdout is not None
    while True:
        chunk = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
        if not chunk:
            break
        if watchdog is not None:
            watchdog.heard()
        log.write(chunk)
        lines, pending = _split_lines(pending + chunk)
        for raw in lines:
            _emit(raw, tail, on_line)
    if pending:
        _emit(pending, tail, on_line)


def _emit(raw: bytes, tail, on_line) -> None:
    line = raw.decode("utf-8", errors="replace")
    if line.strip():
        tail.append(line)
        on_line(line)


def stop_group(pgid: int, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM a child's process group, then SIGKILL what is left after `grace` seconds (from another thread
    than the one supervising it: supervise then returns)."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.1)
    _kill_group(pgid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Stopper:
    """Forwards SIGINT/SIGTERM to the child's process group; kills it if it lingers."""

    def __init__(self, proc: subprocess.Popen, grace: float):
        self.proc, self.grace, self.signal = proc, grace, None
        self._old: dict[int, object] = {}

    def installed(self):
        stopper = self

        class _Ctx:
            def __enter__(self):
                if threading.current_thread() is threading.main_thread():
                    for sig in (signal.SIGINT, signal.SIGTERM):
                        stopper._old[sig] = signal.signal(sig, stopper._handle)
                return stopper

            def __exit__(self, *exc):
                for sig, old in stopper._old.items():
                    signal.signal(sig, old)
                return False

        return _Ctx()

    def _handle(self, signum, _frame) -> None:
        first = self.signal is None
        self.signal = self.signal or signum
        try:
            os.killpg(self.proc.pid, signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)
        except ProcessLookupError:
            return
        if first:
            threading.Thread(target=self._kill_later, daemon=True).start()

    def _kill_later(self) -> None:
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        _kill_group(self.proc.pid)  # the leader may be gone while ranks or workers linger


class Worker:
    """A long-lived child that speaks JSON lines: requests on its stdin, replies on its stdout.

    Its stderr (library logs) goes to `log_path`. Own process group, like `supervise`; `close`
    ends the group, so nothing outlives the conversation."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self._log.write(f"$ {shlex.join(argv)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(argv, env=child_env(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, start_new_session=True, text=True, encoding="utf-8",
                                     bufsize=1)

    def send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()

    def replies(self):
        """Reply objects as they come; ends when the child closes its stdout (it exited)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:  # a library printed to stdout: not a reply
                    continue

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        if not self._log.closed:  # close() closes it: the tail of a child that died is read after
            self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [x for x in text.replace("\r", "\n").splitlines() if x.strip()][-lines:]

    def close(self, timeout: float = 5.0) -> int | None:
        """Let the child finish on end of input, then end its group whatever it did."""
        try:
            if self.proc.stdin and not self.proc.stdin.closed:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(self.proc.pid)
        code = self.proc.wait()
        self._log.close()
        return code
