"""Pure: which node of a run this process is, from `swiftkit run` options or the launcher's environment.

swiftkit never starts processes on other machines: one `swiftkit run` runs on each node (by hand,
through srun, or any scheduler), each told its node rank and the master's address and port. ms-swift
then starts one training process per GPU through torchrun, reading NNODES, NODE_RANK, MASTER_ADDR and
MASTER_PORT (../MS_SWIFT_4.md: "Processes"). Where those come from, first match wins:

1. `swiftkit run --nnodes N --node-rank R --master-addr HOST --master-port P` (torchrun's names);
2. Slurm's environment inside an allocation: SLURM_NNODES, SLURM_NODEID, SLURM_JOB_NODELIST (the
   master is its first host) and SLURM_JOB_ID (the port is derived from it, so two jobs sharing a
   node do not collide);
3. NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT already in the environment (what ms-swift itself reads,
   and what PAI-DLC and similar schedulers set);
4. otherwise one node.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from swiftkit.errors import Problem, UserError

DEFAULT_PORT = 29500
SLURM_PORT_BASE, SLURM_PORT_SPAN = 20000, 20000  # ports 20000-39999, below the usual ephemeral range


@dataclass(frozen=True)
class LaunchOptions:
    """What `swiftkit run` was told on its command line (None: not given)."""

    nnodes: int | None = None
    node_rank: int | None = None
    master_addr: str | None = None
    master_port: int | None = None

    def given(self) -> bool:
        return any(v is not None for v in (self.nnodes, self.node_rank, self.master_addr, self.master_port))


@dataclass(frozen=True)
class Launch:
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    source: str = "one node"  # where the values came from, for messages and the record
    job_id: str | None = None  # the scheduler's job id, when there is one

    @property
    def multi_node(self) -> bool:
        return self.nnodes > 1

    @property
    def is_primary(self) -> bool:
        """Node rank 0 owns the run record, verification, export and the report."""
        return self.node_rank == 0

    def env(self) -> dict[str, str]:
        """What ms-swift's launcher reads to start torchrun across nodes (none for one node)."""
        if not self.multi_node:
            return {}
        return {"NNODES": str(self.nnodes), "NODE_RANK": str(self.node_rank),
                "MASTER_ADDR": str(self.master_addr), "MASTER_PORT": str(self.master_port)}

    def describe(self) -> str:
        if not self.multi_node:
            return "one node"
        return (f"node {self.node_rank} of {self.nnodes}, master {self.master_addr}:{self.master_port} "
                f"({self.source})")

    def to_json(self) -> dict:
        return {"nnodes": self.nnodes, "node_rank": self.node_rank, "master_addr": self.master_addr,
                "master_port": self.master_port, "source": self.source, "job_id": self.job_id}


def resolve_launch(options: LaunchOptions | None = None, environ: Mapping[str, str] | None = None) -> Launch:
    """The node this process is, or a UserError naming each wrong value and where it came from."""
    options, environ = options or LaunchOptions(), environ if environ is not None else {}
    if options.given():
        launch, problems = _from_options(options, environ)
    elif environ.get("SLURM_JOB_ID") and environ.get("SLURM_NNODES", environ.get("SLURM_JOB_NUM_NODES")):
        launch, problems = _from_slurm(environ)
    elif environ.get("NNODES"):
        launch, problems = _from_env(environ)
    else:
        return Launch()
    if launch is not None:
        problems += _consistent(launch)
    if problems:
        raise UserError(problems, headline="swiftkit run: this node's place in the run is not clear; nothing was run")
    return launch  # type: ignore[return-value]


def _int(value: str | None, name: str, problems: list[Problem], fix: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        problems.append(Problem(f"{name}={value!r} is not a whole number", key=name, fix=fix))
        return None


def _from_options(o: LaunchOptions, environ: Mapping[str, str]) -> tuple[Launch | None, list[Problem]]:
    problems: list[Problem] = []
    nnodes = o.nnodes if o.nnodes is not None else 1
    if nnodes > 1:
        if o.node_rank is None:
            problems.append(Problem(f"--nnodes {nnodes} without --node-rank", key="--node-rank",
                                    fix=f"give each node its rank: --node-rank 0 on the master, 1..{nnodes - 1} "
                                        "on the others"))
        if not o.master_addr:
            problems.append(Problem(f"--nnodes {nnodes} without --master-addr", key="--master-addr",
                                    fix="give every node the address of node rank 0, e.g. --master-addr 10.0.0.1"))
    launch = Launch(nnodes, o.node_rank or 0, o.master_addr, o.master_port or DEFAULT_PORT, "options")
    return (None if problems else launch), problems


def _from_slurm(environ: Mapping[str, str]) -> tuple[Launch | None, list[Problem]]:
    problems: list[Problem] = []
    fix = "run swiftkit inside the job's srun (one task per node), as `swiftkit slurm` writes it"
    nnodes = _int(environ.get("SLURM_NNODES", environ.get("SLURM_JOB_NUM_NODES")), "SLURM_NNODES", problems, fix)
    rank = _int(environ.get("SLURM_NODEID"), "SLURM_NODEID", problems, fix)
    job = environ.get("SLURM_JOB_ID", "")
    job_number = _int(job.split("_")[0], "SLURM_JOB_ID", problems, fix)
    if (nnodes or 1) > 1 and rank is None:
        problems.append(Problem("SLURM_NODEID is not set: this is the batch script, not a step on each node",
                                key="SLURM_NODEID", fix=fix))
    tasks = environ.get("SLURM_NTASKS_PER_NODE", "1").split("(")[0]
    if tasks.isdigit() and int(tasks) > 1:
        problems.append(Problem(f"SLURM_NTASKS_PER_NODE={tasks}: swiftkit runs once per node (ms-swift starts one "
                                "process per GPU itself)", key="SLURM_NTASKS_PER_NODE",
                                fix="use `srun --ntasks-per-node=1` (and --gpus-per-node for the GPUs)"))
    nodelist = environ.get("SLURM_JOB_NODELIST", environ.get("SLURM_NODELIST", ""))
    master = None
    if (nnodes or 1) > 1:
        try:
            master = expand_hostlist(nodelist)[0]
        except ValueError as err:
            problems.append(Problem(f"SLURM_JOB_NODELIST={nodelist!r}: {err}", key="SLURM_JOB_NODELIST",
                                    fix="give the master explicitly: --master-addr HOST"))
    port = _int(environ.get("MASTER_PORT"), "MASTER_PORT", problems, "unset MASTER_PORT or make it a number")
    if port is None and job_number is not None:
        port = slurm_port(job_number)
    if problems:
        return None, problems
    return Launch(nnodes or 1, rank or 0, master, port, f"Slurm job {job}", job), []


def _from_env(environ: Mapping[str, str]) -> tuple[Launch | None, list[Problem]]:
    problems: list[Problem] = []
    fix = "set NNODES, NODE_RANK, MASTER_ADDR (and MASTER_PORT), or pass --nnodes/--node-rank/--master-addr"
    nnodes = _int(environ.get("NNODES"), "NNODES", problems, fix)
    rank = _int(environ.get("NODE_RANK"), "NODE_RANK", problems, fix)
    port = _int(environ.get("MASTER_PORT"), "MASTER_PORT", problems, fix)
    master = environ.get("MASTER_ADDR") or None
    if (nnodes or 1) > 1:
        if rank is None:
            problems.append(Problem(f"NNODES={nnodes} without NODE_RANK", key="NODE_RANK", fix=fix))
        if master is None:
            problems.append(Problem(f"NNODES={nnodes} without MASTER_ADDR", key="MASTER_ADDR", fix=fix))
    if problems:
        return None, problems
    return Launch(nnodes or 1, rank or 0, master, port or DEFAULT_PORT, "environment (NNODES, NODE_RANK, ...)"), []


def _consistent(launch: Launch) -> list[Problem]:
    out = []
    if launch.nnodes < 1:
        out.append(Problem(f"{launch.nnodes} nodes", key="nnodes", fix="at least 1"))
    elif not 0 <= launch.node_rank < launch.nnodes:
        out.append(Problem(f"node rank {launch.node_rank} is not one of 0..{launch.nnodes - 1} ({launch.source})",
                           key="node_rank", fix=f"number the nodes 0 to {launch.nnodes - 1}; 0 is the master"))
    if launch.master_port is not None and not 0 < launch.master_port < 65536:
        out.append(Problem(f"master port {launch.master_port} is not a TCP port ({launch.source})",
                           key="master_port", fix="a port between 1024 and 65535 that is free on the master"))
    return out


def slurm_port(job_id: int) -> int:
    """A port per job: the same on every node of the job, different for jobs that share a node."""
    return SLURM_PORT_BASE + job_id % SLURM_PORT_SPAN


_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def expand_hostlist(text: str) -> list[str]:
    """Slurm's compressed host list ("gpu[01-03,07],login1") as host names, in order."""
    text = text.strip()
    if not text:
        raise ValueError("the node list is empty")
    hosts: list[str] = []
    for item in _split_top(text):
        hosts.extend(_expand_one(item))
    return hosts


def _split_top(text: str) -> list[str]:
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if depth < 0 or depth > 1:
            raise ValueError(f"unbalanced brackets in {text!r}")
        if ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"unbalanced brackets in {text!r}")
    items.append(text[start:])
    if not all(items):
        raise ValueError(f"an empty host name in {text!r}")
    return items


def _expand_one(item: str) -> list[str]:
    m = re.search(r"\[([^\]]*)\]", item)
    if not m:
        return [item]
    prefix, rest = item[: m.start()], item[m.end():]
    out = []
    for part in m.group(1).split(","):
        r = _RANGE.match(part.strip())
        if not r:
            raise ValueError(f"{part!r} in {item!r} is not a number or a range")
        lo, hi = r.group(1), r.group(2) or r.group(1)
        if int(hi) < int(lo):
            raise ValueError(f"the range {part!r} in {item!r} runs backwards")
        width = len(lo)
        out += [f"{prefix}{n:0{width}d}{suffix}" for n in range(int(lo), int(hi) + 1)
                for suffix in _expand_one(rest)]
    return out
