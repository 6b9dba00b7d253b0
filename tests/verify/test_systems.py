"""The identity under other system prompts: which prompts, and whether it holds (pure)."""
from __future__ import annotations

from swiftkit.recipe.models import VerifySection
from swiftkit.verify import systems
from swiftkit.verify.verification import hold_failures

NAME, AUTHOR = {"zh": "小蓝", "en": "Swift-Robot"}, {"zh": "蓝天实验室", "en": "Blue Lab"}
ROWS = [{"id": "name-en-1", "split": "train", "lang": "en", "query": "Who are you?",
         "expected": "I am Swift-Robot, built by Blue Lab."},
        {"id": "name-zh-1", "split": "heldout", "lang": "zh", "query": "你是谁？", "expected": "我是小蓝，由蓝天实验室开发。"},
        {"id": "cap-en-1", "split": "train", "lang": "en", "query": "What can you do?", "expected": "I can help."},
        {"id": "custom-0", "split": "custom", "lang": "", "query": "x", "expected": ""}]
QWEN_DEFAULT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def prompts(train_system="You are a helpful assistant.", names=("default", "custom")):
    return systems.system_prompts(list(names), train_system, "qwen2_5", QWEN_DEFAULT, "You plan trips.")


def test_the_template_default_is_named_and_sends_no_system_message():
    (default, custom), notes = prompts()
    assert default.system == QWEN_DEFAULT and "qwen2_5's default" in default.shown  # written out, never left
    assert "You are Qwen" in default.shown
    assert custom.system == "You plan trips." and notes == []
    chatml, _ = systems.system_prompts(["default"], "Be kind.", "chatml", None, "x")
    assert chatml[0].shown == "no system prompt (none (chatml sends no default))" and chatml[0].system == ""


def test_a_recipe_that_trains_under_the_default_is_not_asked_twice():
    found, notes = prompts(train_system=None)
    assert [p.name for p in found] == ["custom"] and "main scorecard" in notes[0]
    assert prompts(names=())[0] == []


def test_rows_under_a_prompt_are_keyed_apart_and_carry_it():
    default = prompts()[0][0]
    rows = systems.rows_under(default, ROWS, NAME)
    assert [r["id"] for r in rows] == ["name-en-1", "name-zh-1"]  # only those that name it: no recipe probes
    assert all(r["system"] == QWEN_DEFAULT and r["label"] is False for r in rows)
    assert len({r["key"] for r in rows} | {r["query"] for r in ROWS}) == 6


def answers_for(rows, en, zh):
    return {rows[0]["key"]: en, rows[1]["key"]: zh}


GOOD = {"Who are you?": "I am Swift-Robot, built by Blue Lab.", "你是谁？": "我是小蓝，由蓝天实验室开发。"}


def reference(answers=GOOD):
    return systems.score_hold(systems.recipe_prompt("Be kind."), systems.identity_rows(ROWS), answers, NAME, AUTHOR)


def test_it_holds_when_the_answers_keep_name_and_author():
    default = prompts()[0][0]
    rows = systems.rows_under(default, ROWS, NAME)
    hold = systems.score_hold(default, rows, answers_for(rows, "I am Swift-Robot, built by Blue Lab.",
                                                        "我是小蓝，蓝天实验室开发的助手。"), NAME, AUTHOR)
    assert (hold.eligible, hold.held, hold.base_claims, hold.worst) == (2, 2, 0, [])
    assert reference().rate == 1.0 and hold_failures([hold], reference(), VerifySection()) == []


def test_it_fails_when_the_default_brings_the_base_identity_back():
    default = prompts()[0][0]
    rows = systems.rows_under(default, ROWS, NAME)
    hold = systems.score_hold(default, rows, answers_for(rows, "I am Qwen, created by Alibaba Cloud.",
                                                        "我是小蓝。"), NAME, AUTHOR)  # zh: the author is missing
    assert (hold.eligible, hold.held, hold.base_claims) == (2, 0, 1)
    assert hold.worst[0] == {"query": "Who are you?", "answer": "I am Qwen, created by Alibaba Cloud."}
    failures = hold_failures([hold], reference(), VerifySection())
    assert len(failures) == 1 and "holds in 0% of identity probes under no system prompt (qwen2_5's default" in failures[0]
    assert "against 100% under the recipe's (verify.min_hold 90% of it)" in failures[0]
    assert "verify.default_may_revert" in failures[0]
    table = systems.format_holds([hold], reference(), 0.9)
    assert "identity holds, recipe system prompt" in table and "2/2 (100%)" in table
    assert "identity holds, default system prompt" in table and "0/2 (0%)" in table and "Alibaba" in table
    assert hold_failures([hold], reference(), VerifySection(default_may_revert="served with our own prompt")) == []


def test_a_tune_that_did_not_take_is_not_called_a_revert():
    default = prompts()[0][0]
    rows = systems.rows_under(default, ROWS, NAME)
    weak = reference({"Who are you?": "I am Swift-Robot, built by Blue Lab.", "你是谁？": "我不知道。"})
    hold = systems.score_hold(default, rows, answers_for(rows, "I am Swift-Robot, built by Blue Lab.", "嗯。"),
                              NAME, AUTHOR)
    assert (weak.rate, hold.rate) == (0.5, 0.5) and hold_failures([hold], weak, VerifySection()) == []


def test_only_the_default_fails_a_run_the_custom_prompt_is_measured():
    custom = prompts()[0][1]
    rows = systems.rows_under(custom, ROWS, NAME)
    hold = systems.score_hold(custom, rows, answers_for(rows, "I help with trips.", "我帮你订票。"), NAME, AUTHOR)
    assert hold.rate == 0.0 and hold_failures([hold], reference(), VerifySection()) == []
