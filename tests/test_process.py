"""process.supervise on real child processes: tee, tail, exit codes, signals, no orphans."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from swiftkit.process import supervise

CHILD = """
import sys, time, os, subprocess
print("hello", flush=True)
sys.stdout.write("bar 1\\rbar 2\\r{'loss': '1.0'}\\n"); sys.stdout.flush()
print("to stderr", file=sys.stderr, flush=True)
if len(sys.argv) > 1 and sys.argv[1] == "sleep":
    # a grandchild in the same process group, as torchrun ranks are
    # it ignores SIGINT, like a rank stuck in a collective: only the kill after the grace period ends it
    subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"])
    print("ready", flush=True)
    time.sleep(60)
sys.exit(int(os.environ.get("CODE", "0")))
"""


def test_tee_tail_and_exit_code(tmp_path):
    seen = []
    fin = supervise([sys.executable, "-c", CHILD], {"CODE": "3"}, tmp_path / "log.txt", seen.append)
    assert fin.returncode == 3
    assert seen == ["hello", "bar 1", "bar 2", "{'loss': '1.0'}", "to stderr"]
    assert fin.tail == seen
    log = (tmp_path / "log.txt").read_bytes()
    assert b"hello" in log and b"to stderr" in log and b"bar 1\rbar 2" in log  # the log keeps the raw bytes


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_is_forwarded_and_nothing_is_left(tmp_path, sig):
    seen = []

    def on_line(line):
        seen.append(line)
        if line == "ready":
            os.kill(os.getpid(), sig)  # Ctrl-C in swiftkit's terminal, or a scheduler's SIGTERM

    def watch():
        while "ready" not in seen:
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    start = time.monotonic()
    fin = supervise([sys.executable, "-c", CHILD, "sleep"], {}, tmp_path / "log.txt", on_line, grace=2)
    assert time.monotonic() - start < 20
    assert fin.interrupted_by == sig
    assert fin.returncode != 0
    time.sleep(0.3)
    assert _live_members(fin.pid) == [], "the child's process group must be gone (no orphan grandchild)"


def _live_members(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies awaiting a reaper do not count)."""
    live = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(entry))
    return live


def test_a_workers_tail_can_be_read_after_it_is_closed(tmp_path):
    """chat reads the tail of an engine that died after closing it: the log must still be readable."""
    import sys

    from swiftkit.process import Worker

    worker = Worker([sys.executable, "-c", "import sys; print('not json'); print('boom', file=sys.stderr)"], {},
                    tmp_path / "w.log")
    assert list(worker.replies()) == []  # a line that is not JSON is not a reply, and no crash
    worker.close()
    assert worker.tail()[-1] == "boom"
