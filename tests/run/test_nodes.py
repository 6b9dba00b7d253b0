"""run/nodes.py: how the nodes of one run agree through the shared output dir."""
from __future__ import annotations

import re
import socket

import pytest

from swiftkit.errors import UserError
from swiftkit.launch.node import Launch
from swiftkit.run import nodes

PRIMARY = Launch(2, 0, "127.0.0.1", 29999, "options")
FOLLOWER = Launch(2, 1, "127.0.0.1", 29999, "options")


def test_a_follower_trains_what_node_0_announced(tmp_path):
    nodes.announce(tmp_path, PRIMARY, "abc", attempt=1, recipe={"k": 1}, resume_from=None)
    order = nodes.await_primary(tmp_path, FOLLOWER, "abc", after_attempt=0, timeout=5, say=print)
    assert (order["attempt"], order["recipe"], order["status"]) == (1, {"k": 1}, "train")


def test_another_launch_is_not_taken_for_this_one(tmp_path, monkeypatch):
    """A launch.json left by another recipe (or port) is not this run's: the follower waits, then says why."""
    nodes.announce(tmp_path, PRIMARY, "other-recipe", attempt=1, recipe={}, resume_from=None)
    with pytest.raises(UserError) as err:
        nodes.await_primary(tmp_path, FOLLOWER, "abc", after_attempt=0, timeout=1.5, say=lambda _: None)
    text = err.value.format()
    assert re.search(r"node 1 waited \d+ s for node 0 to write", text) and "start `swiftkit run` on node 0 (127.0.0.1)" in text


def test_not_shared_when_the_master_answers_but_its_file_never_shows(tmp_path, monkeypatch):
    monkeypatch.setattr(nodes, "SHARED_GRACE_S", 0.5)
    with socket.socket() as server:  # node 0's rendezvous port, up: node 0 started (and wrote its file elsewhere)
        server.bind(("127.0.0.1", 0))
        server.listen()
        launch = Launch(2, 1, "127.0.0.1", server.getsockname()[1], "options")
        with pytest.raises(UserError) as err:
            nodes.await_primary(tmp_path, launch, "abc", after_attempt=0, timeout=30, say=lambda _: None)
    text = err.value.format()
    assert f"{tmp_path} is not shared with node 0" in text and "launch.json it writes before it starts" in text
    assert "filesystem that every node mounts" in text and "nothing was run here" in text


def test_node_records_are_gathered_from_the_run_dir_and_the_state_dir(tmp_path):
    run_dir, state = tmp_path / "v0", tmp_path / ".swiftkit"
    nodes.write_node_record(run_dir, PRIMARY, {"attempt": 1, "diagnosis": {"kind": "distributed"}})
    nodes.write_node_record(state, FOLLOWER, {"attempt": 1, "diagnosis": {"kind": "cuda_oom"}})
    nodes.write_node_record(state, Launch(3, 2, "m", 1), {"attempt": 2})  # another attempt: not this one's
    found = nodes.wait_for_node_records([run_dir, state], 2, 1, timeout=5)
    assert [(r["node_rank"], r["diagnosis"]["kind"]) for r in found] == [(0, "distributed"), (1, "cuda_oom")]
    assert nodes.wait_for_node_records([run_dir], 2, 1, timeout=0.2) == found[:1]  # what came in time


def test_rank_stats(tmp_path):
    for rank, gib in ((1, 16.6), (0, 16.5)):
        (tmp_path / f"rank-{rank}.json").write_text(f'{{"rank": {rank}, "peak_memory_gib": {gib}}}')
    (tmp_path / "rank-9.json").write_text("{half written")
    stats = nodes.read_rank_stats(tmp_path)
    assert nodes.rank_memory_line(stats) == "rank 0 16.50 GiB, rank 1 16.60 GiB"
    nodes.clear_rank_stats(tmp_path)
    assert nodes.read_rank_stats(tmp_path) == []


def test_a_follower_told_another_master_says_so_at_once(tmp_path):
    nodes.announce(tmp_path, PRIMARY, "abc", attempt=1, recipe={}, resume_from=None)
    told = Launch(2, 1, "10.0.0.9", 29999, "options")
    with pytest.raises(UserError) as err:
        nodes.await_primary(tmp_path, told, "abc", after_attempt=0, timeout=30, say=lambda _: None)
    text = err.value.format()
    assert "started this recipe with master 127.0.0.1:29999 (options), but this node was told 10.0.0.9:29999" in text
    assert "same --master-addr" in text


@pytest.mark.parametrize("status", ["done", "stop"])
def test_an_earlier_runs_last_word_is_not_taken_for_this_run(tmp_path, status):
    """The same recipe and port ran before: its launch.json says done (or stop); a follower waits for node 0."""
    nodes.announce(tmp_path, PRIMARY, "abc", attempt=2, recipe={}, resume_from=None, status=status)
    with pytest.raises(UserError, match="waited"):
        nodes.await_primary(tmp_path, FOLLOWER, "abc", after_attempt=0, timeout=1.5, say=lambda _: None)
    # after a failed attempt, node 0's stop is this run's answer
    assert nodes.await_primary(tmp_path, FOLLOWER, "abc", after_attempt=1, timeout=5, say=print)["status"] == status


def test_node_0_clears_the_last_word_when_it_starts(tmp_path):
    nodes.announce(tmp_path, PRIMARY, "abc", attempt=1, recipe={}, resume_from=None)
    nodes.clear(tmp_path)
    assert not (tmp_path / ".swiftkit" / "launch.json").exists()
