"""A real one-host Slurm cluster in a temp dir, for tests: a private munged, slurmctld and slurmd.

Needs the Debian packages slurm-wlm (slurmctld, slurmd, the client commands) and munge, and root (slurmd
starts jobs as their user). Nothing system-wide is touched: the munge key and socket, the config, the
state, the logs and the pid files all live under `root`, and the ports are free ones picked at start.
Every daemon is stopped by the pid it wrote (`stop`).

    python tests/slurm/cluster.py start DIR    # prints `export SLURM_CONF=...` for a shell
    python tests/slurm/cluster.py stop DIR
"""
from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DAEMONS = ("slurmctld", "slurmd", "munged", "mungekey", "sbatch", "scontrol")


class ClusterUnavailable(Exception):
    """Why no cluster could be started here (the test skips with this message)."""


def missing_commands() -> list[str]:
    return [c for c in DAEMONS if shutil.which(c) is None and not Path("/usr/sbin", c).exists()]


def _cmd(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class Cluster:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.munge_dir = self.root / "munge"

    @property
    def env(self) -> dict[str, str]:
        """This process's environment (sbatch passes it on to the job) pointed at this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    # -- start / stop ----------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> "Cluster":
        missing = missing_commands()
        if missing:
            raise ClusterUnavailable(f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)")
        if os.geteuid() != 0:
            raise ClusterUnavailable("slurmd must run as root to start jobs")
        for sub in ("state", "spool", "munge"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.munge_dir.chmod(0o700)
        try:
            self._start_munge()
            self._write_conf()
            self._run(_cmd("slurmctld"), "-f", str(self.conf), "-c", "-i")
            self._run(_cmd("slurmd"), "-f", str(self.conf), "-N", "localhost")
            self._wait_idle(timeout)
        except BaseException:
            self.stop()  # whatever did start
            raise
        return self

    def stop(self) -> None:
        """Each daemon this cluster started, by its pid file: TERM, then KILL after 10 s."""
        for name in ("slurmd", "slurmctld", "munge/munged"):
            pid_file = self.root / f"{name}.pid"
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            _terminate(pid)

    def _start_munge(self) -> None:
        key = self.munge_dir / "munge.key"
        if not key.exists():
            self._run(_cmd("mungekey"), "--create", f"--keyfile={key}")
        # --force: the socket's directory is not world-searchable (a pytest temp dir is 0700)
        self._run(_cmd("munged"), "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
                  f"--log-file={self.munge_dir / 'munged.log'}", f"--pid-file={self.munge_dir / 'munged.pid'}",
                  f"--seed-file={self.munge_dir / 'munged.seed'}")

    @property
    def munge_socket(self) -> Path:
        return self.munge_dir / "munge.socket"

    def _write_conf(self) -> None:
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        text = (HERE / "slurm.conf.in").read_text(encoding="utf-8").format(
            root=self.root, user=getpass.getuser(), munge_socket=self.munge_socket, ctld_port=_free_port(),
            slurmd_port=_free_port(), cpus=os.cpu_count() or 1, memory_mb=max(256, memory_mb // 2))
        self.conf.write_text(text, encoding="utf-8")

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            out = subprocess.run([_cmd("sinfo"), "-h", "-N", "-o", "%T"], env=self.env, capture_output=True,
                                 text=True)
            state = (out.stdout or out.stderr).strip()
            if out.returncode == 0 and state.startswith("idle"):
                return
            time.sleep(0.5)
        raise ClusterUnavailable(f"the node did not become idle within {timeout:.0f} s (sinfo: {state!r}); "
                                 f"slurmctld.log:\n{self.log_tail('slurmctld.log')}\nslurmd.log:\n"
                                 f"{self.log_tail('slurmd.log')}")

    def _run(self, *argv: str) -> None:
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise ClusterUnavailable(f"{' '.join(argv)} failed ({done.returncode}): "
                                     f"{(done.stderr or done.stdout).strip()}")

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.root / name
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"

    # -- jobs -----------------------------------------------------------------------------------

    def sbatch(self, script: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([_cmd("sbatch"), *args, str(script)], env=self.env, capture_output=True, text=True,
                              cwd=cwd, timeout=60)

    def submit(self, script: Path, cwd: Path | None = None) -> int:
        done = self.sbatch(script, "--parsable", cwd=cwd)
        if done.returncode != 0:
            raise AssertionError(f"sbatch refused the script: {done.stderr.strip()}")
        return int(done.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, ExitCode, ...); {} once Slurm forgot the job."""
        out = subprocess.run([_cmd("scontrol"), "-o", "show", "job", str(job_id)], env=self.env,
                             capture_output=True, text=True)
        return dict(re.findall(r"(\w+)=(\S*)", out.stdout)) if out.returncode == 0 else {}

    def wait(self, job_id: int, timeout: float) -> dict[str, str]:
        """Poll until the job leaves PENDING/RUNNING/COMPLETING; returns its last `scontrol` fields."""
        deadline = time.monotonic() + timeout
        info: dict[str, str] = {}
        while time.monotonic() < deadline:
            info = self.job(job_id) or info
            if info.get("JobState") not in (None, "PENDING", "RUNNING", "COMPLETING", "CONFIGURING"):
                return info
            time.sleep(2)
        raise TimeoutError(f"job {job_id} still {info.get('JobState')} after {timeout:.0f} s")


def _terminate(pid: int, grace: float = 10) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    verb, where = sys.argv[1], Path(sys.argv[2]).resolve()
    cluster = Cluster(where)
    if verb == "start":
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
