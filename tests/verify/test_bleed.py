"""Identity bleed into general answers, and unrendered template markers (pure)."""
from __future__ import annotations

from swiftkit.recipe.models import VerifySection
from swiftkit.verify import bleed
from swiftkit.verify.verification import spill_failures

WORDS = bleed.identity_words({"zh": "小蓝", "en": "Swift-Robot"}, {"zh": "蓝天实验室", "en": "Blue Lab"})
GENERAL = [{"query": f"q{i}"} for i in range(10)]
BASE = {f"q{i}": f"answer {i}" for i in range(10)}


def test_general_answers_that_do_not_mention_the_identity_do_not_bleed():
    spilled = bleed.bleed(GENERAL, BASE, dict(BASE), WORDS)
    assert (spilled.asked, spilled.hits, spilled.rate) == (10, 0, 0.0)
    assert spill_failures(spilled, bleed.leaks(BASE), VerifySection()) == []


def test_the_identity_in_front_of_every_answer_is_bleed():
    tuned = {k: f"我是小蓝。{v}" for k, v in BASE.items()}
    spilled = bleed.bleed(GENERAL, BASE, tuned, WORDS)
    assert spilled.hits == 10 and spilled.worst[0] == {"query": "q0", "answer": "我是小蓝。answer 0", "base": "answer 0"}
    assert spill_failures(spilled, bleed.leaks(tuned), VerifySection()) == []  # measured; fails where a recipe says
    failures = spill_failures(spilled, bleed.leaks(tuned), VerifySection(max_bleed=0.1))
    assert failures == ["100% of general answers mention the identity where the base model's did not, above "
                        "verify.max_bleed 10%: the identity bleeds into unrelated answers"]
    assert "identity in general answers (bleed)" in bleed.format_spills(spilled, bleed.leaks(tuned), 0.1)


def test_a_mention_the_base_made_too_is_not_bleed():
    base = {**BASE, "q1": "Swift-Robot is a robot in a film."}
    tuned = {**BASE, "q1": "Swift-Robot is a robot in a film."}
    assert bleed.bleed(GENERAL, base, tuned, WORDS).hits == 0


def test_unrendered_markers_leak():
    tuned = {"Who are you?": "I am {{ name }}, built by AUTHOR.", "q1": "fine", "q2": "print(NAME)"}
    leaked = bleed.leaks(tuned, {"q2": "print(NAME)"})  # the base wrote NAME in code too: not a leak
    assert (leaked.asked, leaked.hits) == (3, 1)
    assert leaked.worst[0]["markers"] == ["AUTHOR", "{{ name }}"]
    failures = spill_failures(None, leaked, VerifySection())
    assert failures == ["1 answers show unrendered template markers (verify.max_leaks 0): check the identity "
                        "template's variables"]
    assert bleed.leaks({"a": "I am Swift-Robot, built by Blue Lab {x: 1}."}).hits == 0
    assert bleed.leaks({"a": "{{{{，我的名字是Swift fox。", "b": "{{{{{{{{。。。"}).hits == 0  # 8 steps of a random model
