"""`swiftkit plan RECIPE`: will it fit, and how long will it take, before anything loads."""
from __future__ import annotations

import json

import click

from swiftkit.checks.collect import check
from swiftkit.errors import EXIT_OK, EXIT_USAGE, Problem, UserError, choice_fix, did_you_mean
from swiftkit.plan.cards import CARDS, find_card
from swiftkit.plan.sizing import CannotPlan, Sizing, size


def plan(recipe: str, *, overrides: list[str] | None = None, gpu_memory_gb: float | None = None,
         gpu_name: str | None = None, as_json: bool = False) -> int:
    if gpu_name is not None:
        _known_card(gpu_name)
    checked = check(recipe, overrides=overrides)
    try:
        sizing = size(checked, gpu_memory_gb=gpu_memory_gb, gpu_name=gpu_name)
    except CannotPlan as why:
        raise UserError([Problem(str(why), file=str(checked.loaded.path), key="model.id",
                                 fix="give model.id as a local dir with config.json and the tokenizer")],
                        headline=f"{recipe}: no memory plan") from None
    if as_json:
        click.echo(json.dumps(sizing.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(render(sizing, checked.loaded.recipe.gpu.count))
    return EXIT_OK if sizing.fits is not False else EXIT_USAGE


def _known_card(name: str) -> None:
    # An unknown name would plan against no card at all and say nothing of the typo
    if find_card(name) is None:
        known = "known cards: " + ", ".join(CARDS) + "; or give --gpu-memory-gb N"
        guess = choice_fix(name, CARDS) if did_you_mean(name, CARDS) else None
        raise UserError([Problem(f"{name!r} is not a card swiftkit knows", file=f"--gpu {name}",
                                 fix=f"{guess} K{known[1:]}" if guess else known)])


def _kept(s: Sizing) -> str:
    kept = s.setup.logit_tokens
    if kept is None or kept >= s.longest:
        return ""
    return f"; logits kept for its last {kept} (ms-swift keeps them from the batch's earliest label on)"


def render(s: Sizing, gpus: int) -> str:
    shape = s.shape
    lines = [s.line(),
             f"  model: {shape.params() / 1e9:.2f} B parameters ({shape.layers} layers, hidden {shape.hidden}, "
             f"vocab {shape.vocab}), {s.setup.dtype}" + (f", {s.setup.quant_bits}-bit" if s.setup.quant_bits else ""),
             f"  longest row: {s.longest} tokens ({s.longest_from})" + _kept(s),
             f"  per GPU: micro-batch {s.setup.micro_batch} x accumulation {s.per_gpu_batch // s.setup.micro_batch}"
             + (f" x {gpus} GPUs" if gpus > 1 else ""),
             "  where the memory goes (GiB):"]
    width = max(len(k) for k in s.plan.breakdown)
    for part, gib in s.plan.breakdown.items():
        lines.append(f"    {part.replace('_', ' '):<{width}}  {gib:7.2f}")
    lines.append(f"    {'peak':<{width}}  {s.plan.peak_gib:7.2f}")
    if s.choice:
        lines.append(f"  auto: {s.choice}")
    if s.step_s is not None:
        total = f", {s.steps} steps: about {s.total_s / 60:.1f} min of training" if s.total_s else ""
        lines.append(f"  time (estimate, {s.card.name}): about {s.step_s:.2f} s a step{total}")
    for note in s.plan.estimate_only:
        lines.append(f"  estimate only: {note}")
    for note in s.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)
