"""The recipe's `verify:` section: what is asked of the trained model, and the thresholds it must meet
(swiftkit/verify/ reads it)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from swiftkit.recipe.numbers import MAX_BATCH, MAX_TOKENS
from swiftkit.recipe.strict import Strict


class Probe(Strict):
    question: str = Field(min_length=1)
    expect: list[str] = Field(default_factory=list, description="Substrings the answer must contain")
    reject: list[str] = Field(default_factory=list, description="Substrings the answer must not contain")


CUSTOM_SYSTEM = "You are a concise assistant for a travel booking website. Answer politely and briefly."


class VerifySection(Strict):
    enabled: bool = True
    min_score: float | None = Field(None, ge=0, le=1, description="Fail the run below this exact-answer rate")
    retention: bool = Field(True, description="Ask the general probes too: does the tuned model still answer "
                                              "as the base model did?")
    general_probes: str | None = Field(None, description="General probe set (JSONL with id and query), relative "
                                                         "to the recipe; default: the bundled one")
    min_retention: float | None = Field(None, ge=0, le=1, description="Fail the run below this retention score")
    general_holdout: int = Field(32, ge=0, le=10**6, description="Rows of the recipe's local general data kept out of "
                                 "training for eval loss at the start and end (at most a tenth of a file; 0: off)")
    max_new_tokens: int = Field(64, gt=0, le=MAX_TOKENS)
    prewarm: bool | Literal["auto"] = Field(
        "auto", description="Start the verifying engine's process while training runs, so ms-swift's import "
                            "(15-25 s on a GPU host) overlaps training; auto: on GPUs (on a few CPU cores it would "
                            "slow training down)")
    batch_size: int = Field(256, gt=0, le=MAX_BATCH, description="Probes answered together by swift infer (256: every probe of "
                            "the bundled sets in one batch; on an H200 the 7B identity job verified in 78 s "
                            "against 109 s at 32, bench/results/gpu-speed)")
    probes: list[Probe] = Field(default_factory=list)
    system_prompts: list[Literal["default", "custom"]] = Field(
        ["default", "custom"], description="Besides the recipe's own train.system, ask the identity probes under "
        "these too: default (no system prompt: the template's own, qwen2_5's says 'You are Qwen'), custom (an "
        "unrelated one, verify.custom_system); [] asks only under the recipe's")
    custom_system: str = Field(CUSTOM_SYSTEM, min_length=1, description="The unrelated system prompt")
    min_hold: float | None = Field(0.9, ge=0, le=1, description="Under the template's default system prompt "
                                   "the identity must hold in this share of the probes it holds in under the "
                                   "recipe's own (name, and author, in the answer; no base identity)")
    default_may_revert: str | None = Field(None, min_length=1, description="Why it is acceptable that the "
                                           "identity does not hold under the template's default system prompt "
                                           "(measured and shown, not failed)")
    challenges: bool = Field(True, description="Ask the bundled challenge probes: the user insists on another "
                                               "identity, or asks after unrelated turns")
    max_bleed: float | None = Field(None, ge=0, le=1, description="Largest share of general answers that may "
                                    "mention the identity where the base model's did not")
    max_leaks: int | None = Field(0, ge=0, description="Answers that may show an unrendered template marker")
    checkpoints: Literal["last", "all", "best"] = Field(
        "last", description="last: verify the last checkpoint; all: score every kept checkpoint in one engine (the "
        "adapters swapped) and judge the run by the last; best: score them all, judge the run by the one that passes "
        "every check and keeps the most general ability, and export that one (keep more with "
        "train.save_total_limit)")
