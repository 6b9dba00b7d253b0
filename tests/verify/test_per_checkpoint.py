"""verify.checkpoints: each kept checkpoint judged from its answers, the one to ship chosen, and why (pure)."""
from __future__ import annotations

from pathlib import Path

from swiftkit.recipe.models import Identity, VerifySection
from swiftkit.report.checkpoint_scores import checkpoint_scores
from swiftkit.verify.per_checkpoint import Checkpoints, Scored, choose, format_table
from swiftkit.verify.verification import Probes, judge

IDENTITY = Identity.model_validate({"name": "Swift-Robot", "author": "Blue Lab"})
TRAINED = [{"id": f"t{i}", "split": "train", "lang": "en", "query": f"Who are you, {i}?",
            "expected": "I am Swift-Robot, built by Blue Lab."} for i in range(4)]
GENERAL = [{"id": f"g{i}", "query": f"What is {i} + {i}?", "category": "arithmetic"} for i in range(4)]
BASE = {g["query"]: f"{2 * int(g['id'][1:])}, of course, as anyone with a calculator can check" for g in GENERAL}
SETTINGS = VerifySection(min_score=0.75, system_prompts=[], challenges=False)


def answers(exact: int, kept: int) -> dict[str, str]:
    """`exact` of the 4 identity answers right, `kept` of the 4 general answers as the base model gave them."""
    out = {t["query"]: t["expected"] if i < exact else "I am a language model." for i, t in enumerate(TRAINED)}
    out.update({g["query"]: BASE[g["query"]] if i < kept else "zzz" for i, g in enumerate(GENERAL)})
    return out


def scored(name: str, step: int, exact: int, kept: int) -> Scored:
    probes = Probes(identity=list(TRAINED), general=list(GENERAL))
    return Scored(name, step, 1.0 / step, judge(probes, "You are a helpful assistant.", answers(exact, kept), BASE,
                                                settings=SETTINGS, identity=IDENTITY), Path(f"/x/answers-{name}.jsonl"))


def test_an_earlier_checkpoint_that_kept_more_general_answers_is_shipped_and_the_reason_says_so():
    ckpts = [scored("checkpoint-10", 10, 1, 4), scored("checkpoint-20", 20, 4, 3), scored("checkpoint-30", 30, 4, 1)]
    assert ckpts[0].judged.failures and not ckpts[1].judged.failures  # 1/4 exact is below min_score 0.75
    best, why = choose(ckpts)
    assert best.checkpoint == "checkpoint-20"
    assert "keeps more general ability than the last, checkpoint-30" in why
    assert f"retention {ckpts[1].judged.retention.score:.2f} against {ckpts[2].judged.retention.score:.2f}" in why


def test_the_last_is_shipped_when_nothing_earlier_is_better():
    best, why = choose([scored("checkpoint-10", 10, 2, 4), scored("checkpoint-20", 20, 4, 4)])
    assert best.checkpoint == "checkpoint-20" and why.startswith("the last checkpoint passes every check")


def test_a_last_checkpoint_that_fails_loses_to_one_that_passes_and_the_failure_is_named():
    best, why = choose([scored("checkpoint-10", 10, 4, 2), scored("checkpoint-20", 20, 1, 4)])
    assert best.checkpoint == "checkpoint-10"
    assert "the last, checkpoint-20, fails: verification score 25% is below verify.min_score 75%" in why


def test_when_none_passes_the_fewest_failures_win():
    best, why = choose([scored("checkpoint-10", 10, 0, 4), scored("checkpoint-20", 20, 2, 4)])
    assert why.startswith("no checkpoint passes every check")
    assert best.checkpoint == "checkpoint-20"  # both fail min_score; same retention, more exact answers


def test_a_retention_difference_below_a_hundredth_is_a_tie_that_the_identity_breaks():
    a, b = scored("checkpoint-10", 10, 4, 2), scored("checkpoint-20", 20, 3, 2)
    b.judged.retention.score = a.judged.retention.score + 0.004  # noise, not general ability kept
    best, why = choose([a, b])
    assert best is a and "with more exact identity answers (100% against 75%)" in why


def test_the_table_marks_the_chosen_checkpoint_and_the_report_charts_them_all():
    ckpts = [scored("checkpoint-10", 10, 1, 4), scored("checkpoint-20", 20, 4, 3), scored("checkpoint-30", 30, 4, 1)]
    best, why = choose(ckpts)
    best.chosen = True
    text = format_table(ckpts, "best")
    assert "* checkpoint-20" in text and "  checkpoint-30" in text and "1 failed" in text
    scores = Checkpoints(ckpts, best, why, best, None, 1.0).to_dict("best")  # type: ignore[arg-type]
    assert [s["chosen"] for s in scores["scores"]] == [False, True, False]
    html = checkpoint_scores({"checkpoint_scores": scores})
    assert 'id="sk-ckpt-retention"' in html and 'id="sk-ckpt-score"' in html and 'id="sk-ckpt-loss"' in html
    assert "checkpoint-20</code><span class=\"tag\">chosen</span>" in html and "keeps more general ability" in html
    assert checkpoint_scores({}) == "" and checkpoint_scores({"checkpoint_scores": {"scores": "x"}}) == ""
