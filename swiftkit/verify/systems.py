"""The system prompts the identity is scored under (verify.system_prompts), and whether it holds under each.

A tune trained under one system prompt ("You are a helpful assistant.") is used under others: ms-swift's
`qwen2_5` template sends "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." when a
request has none, and so do most clients and servers. Besides the recipe's own prompt (train.system, what
the main scorecard and verify.min_score judge), the identity probes are asked again under:
- `default`: what the template sends when a request has none (named in the scorecard), written out: ms-swift
  loading an adapter makes the prompt it was trained with the default, so leaving it out would not test it;
- `custom`: an unrelated one (verify.custom_system).
Under each, an identity probe whose expected answer names the identity holds when the answer names it (and
the author, where the expected answer does) and claims no base identity; the identity reverts under a prompt
where it holds in fewer than verify.min_hold of the cases it holds under the recipe's own. Pure.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from swiftkit.verify.scorecard import claims_base, clip

WORST = 3  # answers shown for a prompt the identity did not hold under


@dataclass(frozen=True)
class SystemPrompt:
    name: str  # recipe | default | custom
    system: str | None  # what is sent: the template default's text, or "" for none
    shown: str  # how the scorecard names it


@dataclass
class Hold:
    name: str
    shown: str
    eligible: int = 0  # probes whose expected answer names the identity
    held: int = 0
    base_claims: int = 0
    worst: list[dict] = field(default_factory=list)  # {query, answer} where it did not hold

    @property
    def rate(self) -> float | None:
        return self.held / self.eligible if self.eligible else None

    def to_dict(self) -> dict:
        return {**asdict(self), "rate": self.rate}


def system_prompts(names: list[str], train_system: str | None, template: str | None, template_default: str | None,
                   custom: str) -> tuple[list[SystemPrompt], list[str]]:
    """The prompts to ask the identity probes under besides the recipe's own, and notes on any left out."""
    out, notes = [], []
    for name in names:
        if name == "default":
            if train_system is None:
                notes.append("the recipe trains under the template's default system prompt: it is the main scorecard")
                continue
            what = f"{template}'s default: {template_default!r}" if template_default else (
                f"none ({template} sends no default)" if template else "the template's default")
            # sent as written, never left to the engine: ms-swift loading an adapter takes the system prompt it
            # was trained with for its default, which would make this the recipe's prompt again
            out.append(SystemPrompt("default", template_default or "", f"no system prompt ({what})"))
        elif name == "custom":
            if custom == train_system:
                notes.append("verify.custom_system is the recipe's train.system: nothing more to ask")
                continue
            out.append(SystemPrompt("custom", custom, f"an unrelated one: {custom!r}"))
    return out, notes


def recipe_prompt(train_system: str | None) -> SystemPrompt:
    """The prompt the main scorecard asks under: the reference the others are judged against."""
    return SystemPrompt("recipe", train_system, f"train.system: {train_system!r}" if train_system is not None
                        else "train.system: none (the template's default)")


def identity_rows(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["split"] in ("train", "heldout")]


def _names_it(row: dict, name: dict[str, str]) -> bool:
    n = name.get(row["lang"], "")
    return bool(n) and n in row["expected"]


def key(prompt: SystemPrompt, row: dict) -> str:
    return f"{prompt.name}\x1f{row.get('key') or row['query']}"


def rows_under(prompt: SystemPrompt, rows: list[dict], name: dict[str, str]) -> list[dict]:
    """The trained and held-out identity probes whose answer names the identity (the ones scored), asked under
    `prompt`, keyed apart from the main ones."""
    # no room for the whole expected answer: the name and author come in its first words (verify.max_new_tokens)
    return [{**row, "system": prompt.system, "key": key(prompt, row), "label": False}
            for row in identity_rows(rows) if _names_it(row, name)]


def score_hold(prompt: SystemPrompt, rows: list[dict], answers: dict[str, str], name: dict[str, str],
               author: dict[str, str]) -> Hold:
    hold = Hold(prompt.name, prompt.shown)
    for row in rows:
        n, a = name.get(row["lang"], ""), author.get(row["lang"], "")
        if not _names_it(row, name):
            continue
        answer = answers.get(row.get("key") or row["query"], "")
        claims = claims_base(answer)
        ok = n in answer and (not a or a not in row["expected"] or a in answer) and not claims
        hold.eligible += 1
        hold.held += ok
        hold.base_claims += claims
        if not ok and len(hold.worst) < WORST:
            hold.worst.append({"query": row["query"], "answer": answer})
    return hold


def reverts(hold: Hold, reference: Hold, min_hold: float | None) -> bool:
    """Whether the identity holds under `hold`'s prompt in fewer than min_hold of the cases it holds under the
    recipe's own (a tune that did not take under its own prompt is verify.min_score's to judge)."""
    return (min_hold is not None and hold.rate is not None and reference.rate is not None
            and hold.rate < min_hold * reference.rate)


def format_holds(holds: list[Hold], reference: Hold, min_hold: float | None) -> str:
    lines = []
    for h in [reference, *holds]:
        rate = f"{h.held}/{h.eligible} ({h.rate:.0%})" if h.eligible else "-"
        lines.append(f"  {'identity holds, ' + h.name + ' system prompt':40} {rate:12} {h.shown}")
        if h is not reference and reverts(h, reference, min_hold):
            for w in h.worst:
                lines.append(f"      {w['query']!r} -> {clip(w['answer'])!r}")
    return "\n".join(lines)

