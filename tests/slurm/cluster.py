"""A real one-host Slurm cluster in a temp dir, for tests: a private munged, slurmctld and one slurmd per node.

Needs the Debian packages slurm-wlm (slurmctld, slurmd, the client commands) and munge, and root (slurmd
starts jobs as their user). Nothing system-wide is touched: the munge key and socket, the config, the
state, the logs and the pid files all live under `root`, and the ports are free ones picked at start.
Every daemon is stopped by the pid it wrote (`stop`).

Several nodes (`Cluster(root, nodes=2)`) are several slurmd on this one host, each started as `slurmd -N NAME`
with its own Port (Slurm's "multiple slurmd" mode; works with Debian's slurm-wlm 22.05.8). Node 0 is named
after this host (socket.gethostname(), e.g. `vm`) and the others HOST-1, HOST-2, ...: the first host of
SLURM_JOB_NODELIST, which a multi-node job takes as its master address, then resolves to this machine with no
change to /etc/hosts; the other names are only Slurm's (every node has NodeAddr=127.0.0.1). Not `localhost`:
a first node named localhost makes Slurm 22.05 refuse the next one (nodes localhost and node1: "slurmd: fatal:
Duplicated NodeHostName node1 in config file"). One node is `localhost`, as before. Each node gets an equal
share of this host's CPUs and half its memory.

    python tests/slurm/cluster.py start DIR [NODES]    # prints `export SLURM_CONF=...` for a shell
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
    def __init__(self, root: Path, nodes: int = 1):
        if nodes < 1:
            raise ValueError(f"{nodes} nodes")
        self.root = Path(root)
        self.host = socket.gethostname() if nodes > 1 else "localhost"
        self.nodes = [self.host, *(f"{self.host}-{i}" for i in range(1, nodes))]
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
        if len(self.nodes) > 1:
            self._check_host_name()
        for sub in ("state", "spool", "munge"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.munge_dir.chmod(0o700)
        try:
            self._start_munge()
            self._write_conf()
            self._run(_cmd("slurmctld"), "-f", str(self.conf), "-c", "-i")
            for name in self.nodes:
                self._run(_cmd("slurmd"), "-f", str(self.conf), "-N", name)
            self._wait_idle(timeout)
        except BaseException:
            self.stop()  # whatever did start
            raise
        return self

    def _check_host_name(self) -> None:
        """Node 0's name (this host's) must reach this machine: a job's master address is that name."""
        if self.host == "localhost" or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", self.host):
            raise ClusterUnavailable(f"this host's name {self.host!r} cannot name node 0 of several")
        try:
            address = socket.gethostbyname(self.host)
        except OSError as err:
            raise ClusterUnavailable(f"this host's name {self.host!r} does not resolve ({err}); node 0 is named "
                                     "after it, and a multi-node job's master address is that name") from None
        with socket.socket() as s:
            try:
                s.bind((address, 0))
            except OSError as err:
                raise ClusterUnavailable(f"this host's name {self.host!r} resolves to {address}, not an address "
                                         f"of this machine ({err})") from None

    def stop(self) -> None:
        """Each daemon this cluster started, by its pid file: TERM, then KILL after 10 s (every slurmd-NAME.pid
        here, so `stop DIR` needs no node count)."""
        for pid_file in (*sorted(self.root.glob("slurmd-*.pid")), self.root / "slurmctld.pid",
                         self.munge_dir / "munged.pid"):
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
        cpus = max(1, (os.cpu_count() or 1) // len(self.nodes))
        memory_mb = max(256, memory_mb // 2 // len(self.nodes))
        node_lines = "\n".join(f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={_free_port()} "
                                f"CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN" for name in self.nodes)
        text = (HERE / "slurm.conf.in").read_text(encoding="utf-8").format(
            root=self.root, user=getpass.getuser(), munge_socket=self.munge_socket, ctld_port=_free_port(),
            slurmd_port=_free_port(), node_lines=node_lines, node_names=",".join(self.nodes))
        self.conf.write_text(text, encoding="utf-8")

    def _wait_idle(self, timeout: float) -> None:
        """Every node idle (each slurmd registered with slurmctld), else ClusterUnavailable with the logs."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            out = subprocess.run([_cmd("sinfo"), "-h", "-N", "-o", "%N %T"], env=self.env, capture_output=True,
                                 text=True)
            state = (out.stdout or out.stderr).strip()
            states = dict(line.split()[:2] for line in out.stdout.splitlines() if len(line.split()) >= 2)
            if out.returncode == 0 and set(states) == set(self.nodes) and all(
                    s.startswith("idle") for s in states.values()):
                return
            time.sleep(0.5)
        several = f" ({len(self.nodes)} slurmd on this host, `slurmd -N NAME`)" if len(self.nodes) > 1 else ""
        logs = "\n".join(f"{name}:\n{self.log_tail(name)}" for name in
                         ("slurmctld.log", *(f"slurmd-{node}.log" for node in self.nodes)))
        raise ClusterUnavailable(f"not every node became idle within {timeout:.0f} s{several} (sinfo: {state!r}); "
                                 f"{logs}")

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
    cluster = Cluster(where, int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    if verb == "start":
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
