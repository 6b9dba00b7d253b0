"""What an identity tune spills where it does not belong. Pure.

- Bleed: general-probe answers (a recipe, a sum, some code) that mention the identity's name or author where
  the base model's answer to the same question did not: "我是Swift-Robot..." in front of every answer.
- Placeholder leak: template markers that were never rendered ({{ name }}, {% ... %}, {name}, NAME, AUTHOR) in
  any answer the tuned model gave: a template rendered wrong, or a model trained on unrendered rows. A
  marker counts in a general answer only where the base model's answer lacked it (code can say NAME).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from swiftkit.verify.scorecard import clip

WORST = 3
# a placeholder whole ({{ name }}, {% if %}, {author}), never a lone brace: a barely trained model babbles "{{{{"
MARKERS = re.compile(r"\{\{\s*\w+\s*\}\}|\{%[^%]*%\}|\{\s*(?:name|author)\s*\}|\b(?:NAME|AUTHOR)\b|<(?:name|author)>")


@dataclass
class Spill:
    asked: int = 0
    hits: int = 0
    worst: list[dict] = field(default_factory=list)  # {query, answer} (and the base's, for bleed)

    @property
    def rate(self) -> float | None:
        return self.hits / self.asked if self.asked else None

    def to_dict(self) -> dict:
        return {**asdict(self), "rate": self.rate}


def _mentions(text: str, words: list[str]) -> bool:
    return any(w and w in text for w in words)


def identity_words(name: dict[str, str], author: dict[str, str]) -> list[str]:
    return sorted({w for w in [*name.values(), *author.values()] if w})


def bleed(general: list[dict], base: dict[str, str], tuned: dict[str, str], words: list[str]) -> Spill:
    """The share of general probes whose tuned answer mentions the identity where the base answer did not."""
    out = Spill()
    for row in general:
        key = row.get("key") or row["query"]
        if key not in tuned or key not in base:
            continue
        out.asked += 1
        if _mentions(tuned[key], words) and not _mentions(base[key], words):
            out.hits += 1
            if len(out.worst) < WORST:
                out.worst.append({"query": row["query"], "answer": tuned[key], "base": base[key]})
    return out


def leaks(tuned: dict[str, str], base: dict[str, str] | None = None) -> Spill:
    """Answers with an unrendered template marker; where the base answered the same prompt, only markers it
    did not write."""
    out = Spill()
    base = base or {}
    for key, answer in tuned.items():
        out.asked += 1
        found = set(m.group(0) for m in MARKERS.finditer(answer))
        found -= set(m.group(0) for m in MARKERS.finditer(base.get(key, "")))
        if found:
            out.hits += 1
            if len(out.worst) < WORST:
                out.worst.append({"query": key.split("\x1f")[-1], "answer": answer, "markers": sorted(found)})
    return out


def format_spills(bled: Spill | None, leaked: Spill, max_bleed: float | None) -> str:
    lines = []
    if bled is not None and bled.asked:
        lines.append(f"  {'identity in general answers (bleed)':40} {bled.hits}/{bled.asked} ({bled.rate:.0%})")
        if bled.hits and (max_bleed is None or (bled.rate or 0) > max_bleed):
            lines += [f"      {w['query']!r} -> {clip(w['answer'])!r}" for w in bled.worst]
    lines.append(f"  {'unrendered template markers':40} {leaked.hits}/{leaked.asked}")
    lines += [f"      {' '.join(w['markers'])} in {clip(w['answer'])!r}" for w in leaked.worst]
    return "\n".join(lines)

