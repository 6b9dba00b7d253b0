"""Proof that it worked: ask the trained model, score the answers.

Probes come from the rendered identity data (trained rows and held-out paraphrases) and
from `verify.probes` in the recipe. swift infer answers them (greedy, non-interactive);
this module prepares its input and scores its output. Pure apart from reading and
writing those two files.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from swiftkit.recipe.models import Probe

# Words that only the base model's own identity uses; the identity template never contains them.
BASE_IDENTITY_MARKERS = ("Qwen", "qwen", "通义", "千问", "Alibaba", "阿里", "Tongyi")


def claims_base(answer: str) -> bool:
    return any(m in answer for m in BASE_IDENTITY_MARKERS)


def clip(text: str, n: int = 90) -> str:
    """An answer on one line, cut to n characters, for a table."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class ProbeResult:
    id: str
    split: str  # train | heldout | challenge | custom
    lang: str
    query: str
    expected: str
    answer: str
    exact: bool
    name_hit: bool | None
    author_hit: bool | None
    claims_base: bool
    passed: bool
    base_answer: str | None = None  # the base model's answer to the same prompt, where it was asked


@dataclass
class Scorecard:
    trained: int = 0
    trained_exact: int = 0
    heldout: int = 0
    heldout_name: int = 0
    heldout_name_hits: int = 0
    heldout_author: int = 0
    heldout_author_hits: int = 0
    answered: int = 0
    base_claims: int = 0
    challenge: int = 0  # the user insists on another identity, or asks after unrelated turns
    challenge_held: int = 0
    custom: int = 0
    custom_passed: int = 0
    missing: int = 0
    results: list[ProbeResult] = field(default_factory=list)

    @property
    def exact_rate(self) -> float | None:
        return self.trained_exact / self.trained if self.trained else None

    @property
    def score(self) -> float | None:
        """What verify.min_score is compared with: exact answers on trained probes, else custom passes."""
        if self.trained:
            return self.exact_rate
        return self.custom_passed / self.custom if self.custom else None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["exact_rate"], data["score"] = self.exact_rate, self.score
        data["base_claim_rate"] = self.base_claims / self.answered if self.answered else None
        return data


def probe_rows(identity_probes: Path | None, custom: list[Probe]) -> list[dict]:
    rows: list[dict] = []
    if identity_probes is not None and identity_probes.is_file():
        for line in identity_probes.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append({"id": row["id"], "split": row["split"], "lang": row["lang"], "query": row["query"],
                             "expected": row["response"], "expect": [], "reject": []})
    for i, probe in enumerate(custom):
        rows.append({"id": f"custom-{i}", "split": "custom", "lang": "", "query": probe.question, "expected": "",
                     "expect": probe.expect, "reject": probe.reject})
    return rows


def _norm(text: str) -> str:
    return " ".join(text.split())


def score(rows: list[dict], answers: dict[str, str], name: dict[str, str], author: dict[str, str],
          base: dict[str, str] | None = None) -> Scorecard:
    """`base`: the base model's answers by the same keys, kept beside each result (the report shows both)."""
    card = Scorecard()
    for row in rows:
        key = row.get("key") or row["query"]
        answer = answers.get(key)
        if answer is None:
            card.missing += 1
            answer = ""
        else:
            card.answered += 1
        card.results.append(_score_one(card, row, answer, name, author))
        card.results[-1].base_answer = (base or {}).get(key)
    return card


def _score_one(card: Scorecard, row: dict, answer: str, name: dict, author: dict) -> ProbeResult:
    expected, split, lang = row["expected"], row["split"], row["lang"]
    exact = bool(expected) and _norm(answer) == _norm(expected)
    claims = claims_base(answer)
    card.base_claims += claims
    name_hit = author_hit = None
    n, a = name.get(lang, ""), author.get(lang, "")
    if split == "train":
        card.trained += 1
        card.trained_exact += exact
        passed = exact
    elif split == "heldout":
        card.heldout += 1
        if n and n in expected:
            name_hit = n in answer
            card.heldout_name += 1
            card.heldout_name_hits += name_hit
        if a and a in expected:
            author_hit = a in answer
            card.heldout_author += 1
            card.heldout_author_hits += author_hit
        passed = name_hit is not False and author_hit is not False and not claims
    elif split == "challenge":
        card.challenge += 1
        name_hit = bool(n) and n in answer
        passed = name_hit and not claims
        card.challenge_held += passed
    else:
        card.custom += 1
        passed = all(s in answer for s in row["expect"]) and not any(s in answer for s in row["reject"])
        card.custom_passed += passed
    return ProbeResult(row["id"], split, lang, row["query"], expected, answer, exact, name_hit, author_hit,
                       claims, passed)


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} ({hits / total:.0%})" if total else "-"


def format_table(card: Scorecard) -> str:
    lines = ["verification", f"  {'exact answers, trained probes':40} {_rate(card.trained_exact, card.trained)}",
             f"  {'name in answer, held-out probes':40} {_rate(card.heldout_name_hits, card.heldout_name)}",
             f"  {'author in answer, held-out probes':40} {_rate(card.heldout_author_hits, card.heldout_author)}",
             f"  {'answers claiming the base identity':40} {_rate(card.base_claims, card.answered)}"]
    if card.challenge:
        lines.append(f"  {'identity holds, challenges + later turns':40} {_rate(card.challenge_held, card.challenge)}")
    if card.custom:
        lines.append(f"  {'recipe probes passed':40} {_rate(card.custom_passed, card.custom)}")
    if card.missing:
        lines.append(f"  {'probes with no answer':40} {card.missing}")
    return "\n".join(lines)
