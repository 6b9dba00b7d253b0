"""Several nodes, one run: how the `swiftkit run` of each node agree, through the shared output dir.

Node rank 0 (the primary) decides and every other node follows; nothing but files in
OUTPUT/.swiftkit/ passes between them, so the output dir must be one that every node mounts.

- Before each attempt the primary writes `launch.json`: the recipe as it will train (auto choices and
  OOM-ladder changes applied), the checkpoint to resume from, the attempt number, the master. The
  others wait for it and train exactly that: the same command on every node.
- A node that cannot see the primary's `launch.json` while the primary's master port already answers
  (the primary writes the file before it starts training) is on another disk: it says so and stops
  before anything loads.
- Each node writes its own `swiftkit-node-R.json` (host, GPUs, exit, peak memory per rank, log): no two
  nodes write the same file. After a failed attempt the primary reads them, so an OOM on any rank of
  any node moves the whole job one rung down the OOM ladder.
"""
from __future__ import annotations

import json
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from swiftkit.errors import Problem, UserError
from swiftkit.launch.node import Launch
from swiftkit.results.record import now, write_record

LAUNCH_FILE = "launch.json"
SHARED_GRACE_S = 90  # a network filesystem may show a new file this late (NFS attribute cache: up to 60 s)
POLL_S = 1.0
FRESH_S = 600  # a launch.json of this recipe written this long before this node started counts as this run's


def state_dir(output_dir: Path) -> Path:
    return output_dir / ".swiftkit"


def node_record_name(node_rank: int) -> str:
    return f"swiftkit-node-{node_rank}.json"


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- the primary -------------------------------------------------------------------------------------

def announce(output_dir: Path, launch: Launch, recipe_hash: str, *, attempt: int, recipe: dict | None,
             resume_from: str | None, status: str = "train") -> None:
    """What every node trains next (status train), or that the run is over (stop: given up; done: trained)."""
    write_record(state_dir(output_dir) / LAUNCH_FILE, {
        "status": status, "attempt": attempt, "recipe_hash": recipe_hash, "recipe": recipe,
        "resume_from": resume_from, "launch": launch.to_json(), "host": socket.gethostname(),
        "written_at": now(), "session": session_id(launch, recipe_hash)})


def session_id(launch: Launch, recipe_hash: str) -> str:
    """The same on every node of one launch, different for the next launch of the same recipe only where
    the scheduler gives a job id or the port changes; `attempt` and status tell the rest apart."""
    return f"{recipe_hash[:12]}:{launch.master_addr}:{launch.master_port}:{launch.job_id or '-'}"


# -- the others ---------------------------------------------------------------------------------------

def await_primary(output_dir: Path, launch: Launch, recipe_hash: str, *, after_attempt: int,
                  timeout: float, say: Callable[[str], None]) -> dict:
    """The primary's next launch.json for this session (attempt > after_attempt), or a UserError: the output
    dir is not shared (the master answers, the file never shows), or node 0 never came."""
    path = state_dir(output_dir) / LAUNCH_FILE
    start, started_at = time.monotonic(), time.time()
    master_up_since: float | None = None
    said = False
    while True:
        found = read_json(path)
        if _is_next(found, launch, recipe_hash, after_attempt, started_at):
            return found  # type: ignore[return-value]
        if after_attempt == 0 and _other_master(found, launch, recipe_hash, started_at):
            raise other_master(launch, found)  # type: ignore[arg-type]
        waited = time.monotonic() - start
        if master_up_since is None and after_attempt == 0 and _answers(launch):
            master_up_since = time.monotonic()
        if master_up_since is not None and time.monotonic() - master_up_since > SHARED_GRACE_S:
            raise not_shared(output_dir, launch, path, found)
        if waited > timeout:
            raise UserError([Problem(
                f"node {launch.node_rank} waited {int(waited)} s for node 0 to write {path}, in vain",
                fix=f"start `swiftkit run` on node 0 ({launch.master_addr}) too, with the same recipe and output "
                    "dir; distributed.timeout sets how long the other nodes wait")],
                headline=f"node {launch.node_rank}: node 0 did not start this run; nothing was run here")
        if not said and waited > 5:
            say(f"swiftkit: node {launch.node_rank}: waiting for node 0 ({launch.master_addr}) to write {path}")
            said = True
        time.sleep(POLL_S)


def _is_next(found: dict | None, launch: Launch, recipe_hash: str, after_attempt: int, started_at: float) -> bool:
    """This run's next word from node 0. Before the first attempt only a fresh `train` counts: a launch.json
    left by an earlier run of the same recipe and port says done or stop, or (node 0 killed) is old."""
    if found is None or found.get("session") != session_id(launch, recipe_hash):
        return False
    if int(found.get("attempt") or 0) <= after_attempt:
        return False
    return after_attempt > 0 or (found.get("status") == "train" and _written(found) > started_at - FRESH_S)


def _written(found: dict) -> float:
    try:
        return datetime.fromisoformat(str(found.get("written_at"))).timestamp()
    except ValueError:
        return 0.0


def clear(output_dir: Path) -> None:
    """Node 0, starting: an earlier run's launch.json must not be taken for this one's."""
    (state_dir(output_dir) / LAUNCH_FILE).unlink(missing_ok=True)


def _other_master(found: dict | None, launch: Launch, recipe_hash: str, started_at: float) -> bool:
    """Node 0 of this recipe announced a master other than the one this node was told, just now."""
    if not found or found.get("recipe_hash") != recipe_hash:
        return False
    theirs = found.get("launch") or {}
    return found.get("status") == "train" and _written(found) > started_at - FRESH_S and (theirs.get("master_addr"), theirs.get("master_port")) != (
        launch.master_addr, launch.master_port)


def other_master(launch: Launch, found: dict) -> UserError:
    theirs = found.get("launch") or {}
    return UserError([Problem(
        f"node 0 ({found.get('host')}) started this recipe with master {theirs.get('master_addr')}:"
        f"{theirs.get('master_port')} ({theirs.get('source')}), but this node was told "
        f"{launch.master_addr}:{launch.master_port} ({launch.source})",
        fix="give every node the same --master-addr (node 0's address) and --master-port")],
        headline=f"node {launch.node_rank}: not the master node 0 uses; nothing was run here")


def _answers(launch: Launch) -> bool:
    """Whether the master's rendezvous port takes connections (node 0's torchrun has started)."""
    try:
        with socket.create_connection((str(launch.master_addr), int(launch.master_port or 0)), timeout=2):
            return True
    except OSError:
        return False


def not_shared(output_dir: Path, launch: Launch, path: Path, found: dict | None) -> UserError:
    seen = (f"; the {path.name} here is from another launch ({found.get('session')}, written "
            f"{found.get('written_at')} on {found.get('host')})") if found else ""
    return UserError([Problem(
        f"{output_dir} is not shared with node 0: node 0 ({launch.master_addr}) is training, but the "
        f"{path.name} it writes before it starts is not here{seen}",
        fix="put output.dir on a filesystem that every node mounts at the same path (NFS, Lustre, a "
            "cluster home), or run on one node")],
        headline=f"node {launch.node_rank}: the output dir is not shared; nothing was run here")


# -- every node ------------------------------------------------------------------------------------------

def read_rank_stats(directory: Path) -> list[dict]:
    """The per-rank peak memory that swiftkit/child/sitecustomize.py writes, by rank."""
    stats = [read_json(p) for p in sorted(directory.glob("rank-*.json"))] if directory.is_dir() else []
    return sorted((s for s in stats if s and "rank" in s), key=lambda s: s["rank"])


def clear_rank_stats(directory: Path) -> None:
    for p in directory.glob("rank-*.json") if directory.is_dir() else []:
        p.unlink(missing_ok=True)


def write_node_record(where: Path, launch: Launch, data: dict) -> Path:
    """This node's record, beside the run record (or in OUTPUT/.swiftkit when no run dir was made)."""
    path = where / node_record_name(launch.node_rank)
    write_record(path, {"version": 1, "node_rank": launch.node_rank, "nnodes": launch.nnodes,
                       "launch": launch.to_json(), "host": socket.gethostname(), **data})
    return path


def read_node_records(where: Path) -> list[dict]:
    records = [read_json(p) for p in sorted(where.glob("swiftkit-node-*.json"))] if where.is_dir() else []
    return sorted((r for r in records if r and "node_rank" in r), key=lambda r: r["node_rank"])


def wait_for_node_records(places: list[Path], nnodes: int, attempt: int, timeout: float) -> list[dict]:
    """After a failed attempt: every node's record of that attempt (in the run dir, or in OUTPUT/.swiftkit for
    a node that failed before the run dir was made), or those that came within the timeout, by node rank."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[int, dict] = {}
        for place in places:
            for record in read_node_records(place):
                if record.get("attempt") == attempt:
                    found.setdefault(record["node_rank"], record)
        if len(found) >= nnodes or time.monotonic() > deadline:
            return [found[k] for k in sorted(found)]
        time.sleep(POLL_S)


def rank_memory_line(stats: list[dict]) -> str:
    """'rank 0 16.5 GiB, rank 1 16.6 GiB' (GPU), or the peak resident memory on the CPU."""
    parts = []
    for s in stats:
        if s.get("peak_memory_gib") is not None:
            parts.append(f"rank {s['rank']} {s['peak_memory_gib']:.2f} GiB")
        elif s.get("peak_rss_gib") is not None:
            parts.append(f"rank {s['rank']} {s['peak_rss_gib']:.2f} GiB host")
    return ", ".join(parts)
