"""The memory plan of a checked recipe, and what `auto` chooses from it.

Gathers what plan/memory.py's arithmetic needs: the model's shape and the longest row of the recipe's data
(plan/rows.py), the card (given, capped, declared or found), and the recipe's settings. `size(checked)` plans; `apply(checked, sizing)` puts the choices into the plan that
renders the command. Nothing here loads weights.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from swiftkit.checks.collect import Checked
from swiftkit.errors import UserError
from swiftkit.plan import memory as memplan
from swiftkit.plan.cards import find_card
from swiftkit.plan.memory import MemoryPlan, Setup, Shape
from swiftkit.plan.rows import CannotPlan, longest_row, model_facts, training_rows  # noqa: F401 (CannotPlan: re-exported)
from swiftkit.recipe.models import Recipe
from swiftkit.render import processes

# Step time, an estimate: a LoRA pass (forward and backward of one micro-batch) over short rows is bound by the
# launch and Python overhead of its kernels, which grows with the layers, not by arithmetic. Fitted on three
# runs on an H200 of Qwen2.5-7B's shape (28 layers, rows of 41-62 tokens; bench/results/gpu-whole-job):
# micro-batch 16 x 1 with checkpointing 0.43 s a step, 8 x 2 without 0.53 s, 1 x 16 with 5.32 s.
PASS_OVERHEAD_S = 0.23  # per pass of a 28-layer model, checkpointing off
RECOMPUTE_OVERHEAD = 1.4  # checkpointing's second forward, on the overhead
MFU = 0.4  # share of the card's dense bf16 peak a LoRA step reaches in its matmuls (estimate)


@dataclass
class Card:
    gib: float
    capped: bool  # an allocator cap (gpu.emulate_memory_gb): all of it is usable
    source: str  # where the figure came from, for the user
    name: str | None = None
    tflops: float | None = None

    @property
    def limit_gib(self) -> float:
        return memplan.usable_gib(self.gib, capped=self.capped)


@dataclass
class Sizing:
    plan: MemoryPlan
    setup: Setup
    shape: Shape
    longest: int  # tokens: the longest row ms-swift keeps, after the chat template
    longest_from: str  # which data it is in, or why it is assumed
    per_gpu_batch: int
    card: Card | None
    choice: str | None = None  # what auto chose and why
    step_s: float | None = None
    total_s: float | None = None
    steps: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool | None:
        return None if self.card is None else self.plan.fits(self.card.limit_gib)

    @property
    def margin_gib(self) -> float | None:
        return None if self.card is None else round(self.card.limit_gib - self.plan.peak_gib, 2)

    def line(self) -> str:
        s = self.setup
        what = (f"micro-batch {s.micro_batch} x {s.tokens} tokens, checkpointing "
                f"{'on' if s.gradient_checkpointing else 'off'}")
        head = f"plan: peak {self.plan.peak_gib:.1f} GiB ({what})"
        if self.card is None:
            return head + "; no card to compare with (set gpu.memory_gb)"
        verdict = "fits" if self.fits else "does NOT fit"
        return (f"{head}; {verdict} {self.card.limit_gib:.1f} GiB usable ({self.card.source}), "
                f"margin {self.margin_gib:+.1f} GiB")

    def to_json(self) -> dict:
        out = {"peak_memory_gib": self.plan.peak_gib, "micro_batch_size": self.setup.micro_batch,
               "gradient_checkpointing": self.setup.gradient_checkpointing, "fits": self.fits,
               "breakdown": self.plan.breakdown, "longest_row_tokens": self.longest,
               "longest_row_from": self.longest_from, "per_gpu_batch": self.per_gpu_batch,
               "gradient_accumulation": self.per_gpu_batch // self.setup.micro_batch,
               "margin_gib": self.margin_gib, "choice": self.choice, "estimate_only": self.plan.estimate_only,
               "notes": self.notes, "step_seconds_estimate": self.step_s, "steps": self.steps,
               "train_seconds_estimate": self.total_s,
               "setup": asdict(self.setup), "model": asdict(self.shape)}
        out["card"] = asdict(self.card) | {"limit_gib": round(self.card.limit_gib, 2)} if self.card else None
        return out


# -- the card ----------------------------------------------------------------------------------------

def find_gpu(checked: Checked, gpu_memory_gb: float | None, gpu_name: str | None) -> Card | None:
    gpu = checked.loaded.recipe.gpu
    named = find_card(gpu_name) if gpu_name else None
    if gpu_memory_gb:
        return Card(gpu_memory_gb, False, "--gpu-memory-gb", *(named[::2] if named else (None, None)))
    if gpu.emulate_memory_gb:
        return Card(gpu.emulate_memory_gb, True, "the allocator cap gpu.emulate_memory_gb",
                    *(named[::2] if named else (None, None)))
    if named:
        return Card(named[1], False, named[0], named[0], named[2])
    if gpu.memory_gb:
        return Card(gpu.memory_gb, False, "gpu.memory_gb")
    from swiftkit.launch.host import gpus

    found = gpus()
    if found:
        first = found[0]
        card = find_card(first["name"])
        return Card(float(first["memory_mib"]) / 1024, False, f"{first['name']}, found", first["name"],
                    card[2] if card else None)
    return None


# -- the plan ----------------------------------------------------------------------------------------

def base_setup(checked: Checked, longest: int, logit_tokens: int | None = None) -> Setup:
    r = checked.loaded.recipe
    gc = r.train.gradient_checkpointing
    return Setup(micro_batch=checked.plan.micro_batch, tokens=longest, logit_tokens=logit_tokens, tuner=r.lora.tuner,
                 rank=r.lora.rank, targets=tuple(r.lora.target_modules), dropout=r.lora.dropout,
                 gradient_checkpointing=True if gc == "auto" else gc, dtype=r.model.dtype,
                 quant_bits=r.lora.quant_bits, liger=bool(r.swift.get("use_liger_kernel")))


def per_gpu_batch(checked: Checked) -> int:
    """The micro-batch x accumulation one GPU processes per optimizer step (what auto may split)."""
    return checked.plan.micro_batch * checked.plan.grad_accum


def size(checked: Checked, *, gpu_memory_gb: float | None = None, gpu_name: str | None = None,
         card: Card | None = None) -> Sizing:
    """The plan for a checked recipe, `auto` resolved against the card (given, or found from the options
    and the recipe). CannotPlan when the model's shape is unknown."""
    model = model_facts(checked)
    try:
        shape = Shape.from_config(model.config)
    except KeyError as err:
        raise CannotPlan(f"the model's config.json has no {err}: not a decoder-only transformer swiftkit can plan") \
            from None
    rows = longest_row(checked, model)
    r, notes = checked.loaded.recipe, rows.notes
    setup = base_setup(checked, rows.longest, rows.logit_tokens)
    batch = per_gpu_batch(checked)
    card = card or find_gpu(checked, gpu_memory_gb, gpu_name)
    choice = None
    micro_auto, gc_auto = r.train.micro_batch_size == "auto", r.train.gradient_checkpointing == "auto"
    if (micro_auto or gc_auto) and card is not None:
        setup, choice = memplan.choose(shape, setup, batch, card.limit_gib, micro_batch_auto=micro_auto,
                                       checkpointing_auto=gc_auto)
    elif micro_auto or gc_auto:
        choice = "no card to plan against: the whole per-GPU batch in one step, checkpointing on"
    plan = memplan.plan_memory(shape, setup)
    if r.distributed.deepspeed is not None or r.distributed.fsdp is not None:
        notes.append("DeepSpeed and FSDP are not modelled: this is the plan of plain data parallelism "
                     "(on 2 H200s ZeRO-2 peaked within 1 % of it, ZeRO-3 above it)")
    sizing = Sizing(plan, setup, shape, rows.longest, rows.where, batch, card, choice, notes=notes)
    estimate_time(sizing, checked, rows.kept)
    if not micro_auto and (idle := idle_card(sizing)):
        notes.append(idle)
    return sizing


def idle_card(sizing: Sizing) -> str | None:
    """A note when the recipe fixes a micro-batch smaller than the card holds (the blog post's 1 x 16 on a
    24 GB card): every micro-batch is a pass with its own overhead, so 1 x 16 spent 5.32 s a step where
    16 x 1 spent 0.43 s, the same rows and loss (H200, bench/results/gpu-whole-job)."""
    s, card, batch = sizing.setup, sizing.card, sizing.per_gpu_batch
    if card is None:
        return None
    larger, _ = memplan.choose(sizing.shape, s, batch, card.limit_gib, micro_batch_auto=True,
                               checkpointing_auto=False)
    peak = memplan.plan_memory(sizing.shape, larger).peak_gib
    if larger.micro_batch <= s.micro_batch or peak * (1 + memplan.AUTO_MARGIN) > card.limit_gib:
        return None
    now, then = f"{s.micro_batch} x {batch // s.micro_batch}", f"{larger.micro_batch} x {batch // larger.micro_batch}"
    if card.tflops:
        faster = (f"about {step_seconds(sizing.shape, larger, batch, card.tflops):.2f} s a step against "
                  f"{step_seconds(sizing.shape, s, batch, card.tflops):.2f} s (estimate, {card.name or card.source})")
    else:
        passes = batch // larger.micro_batch
        faster = f"{passes} pass{'es' if passes > 1 else ''} a step instead of {batch // s.micro_batch}"
    return (f"micro-batch {now} leaves the card idle: {then} plans {peak:.1f} GiB and fits, {faster}, for the same "
            f"effective batch. Set train.micro_batch_size: {larger.micro_batch} (or auto)")


def estimate_time(sizing: Sizing, checked: Checked, rows: int) -> None:
    """The step count (any card), and the time a step and the run take (a card whose throughput is known)."""
    t = checked.loaded.recipe.train
    eff = t.effective_batch_size or sizing.per_gpu_batch * processes(checked.loaded.recipe)
    notes: list[str] = []
    rows = training_rows(checked, rows, notes)
    sizing.steps = t.max_steps or (math.ceil(rows / eff) * math.ceil(t.epochs or 1) if rows else None)
    if sizing.card is None or sizing.card.tflops is None:
        return
    sizing.notes.extend(notes)
    sizing.step_s = round(step_seconds(sizing.shape, sizing.setup, sizing.per_gpu_batch, sizing.card.tflops), 2)
    if sizing.steps:
        sizing.total_s = round(sizing.step_s * sizing.steps, 1)


def step_seconds(shape: Shape, setup: Setup, per_gpu_batch: int, tflops: float) -> float:
    """Seconds an optimizer step takes: one pass per micro-batch, each its overhead plus its arithmetic."""
    checkpointing = setup.gradient_checkpointing
    overhead = PASS_OVERHEAD_S * shape.layers / 28 * (RECOMPUTE_OVERHEAD if checkpointing else 1.0)
    per_token = shape.params() * (6 if checkpointing else 4)  # forward, input grads, recompute
    arithmetic = setup.micro_batch * setup.tokens * per_token / (tflops * 1e12 * MFU)
    return (per_gpu_batch // setup.micro_batch) * (overhead + arithmetic)


def with_choices(recipe: Recipe, sizing: Sizing) -> Recipe:
    """The recipe with the plan's micro-batch, accumulation and checkpointing written in."""
    s = sizing.setup
    train = recipe.train.model_copy(update={"micro_batch_size": s.micro_batch,
                                            "gradient_accumulation": sizing.per_gpu_batch // s.micro_batch,
                                            "gradient_checkpointing": s.gradient_checkpointing})
    return recipe.model_copy(update={"train": train})


def apply(checked: Checked, sizing: Sizing) -> None:
    """Put the plan's choices into the recipe that renders (the loaded recipe, and its hash, stay)."""
    checked.plan = checked.plan.with_recipe(with_choices(checked.plan.recipe, sizing), checked.plan.resume_from)


def refusal(checked: Checked, sizing: Sizing) -> UserError | None:
    """An error when the plan is over the card by more than the plan's own error: it cannot fit, and
    the settings that would (the OOM ladder stays the net for the cases in between)."""
    if sizing.card is None or sizing.plan.peak_gib <= sizing.card.limit_gib * (1 + memplan.PLAN_ERROR):
        return None
    fitting, why = memplan.choose(sizing.shape, sizing.setup, sizing.per_gpu_batch, sizing.card.limit_gib,
                                  micro_batch_auto=True, checkpointing_auto=True)
    if memplan.plan_memory(sizing.shape, fitting).peak_gib * (1 + memplan.AUTO_MARGIN) > sizing.card.limit_gib:
        fix = (f"even micro-batch 1 with checkpointing on plans {memplan.plan_memory(sizing.shape, fitting).peak_gib:.1f}"
               " GiB: shorten train.max_length, use lora.quant_bits: 4, or a card with more memory")
    else:
        fix = (f"set train.micro_batch_size: {fitting.micro_batch} and gradient_checkpointing: "
               f"{'true' if fitting.gradient_checkpointing else 'false'} (or both auto): {why}")
    where = checked.loaded.problem(f"planned peak {sizing.plan.peak_gib:.1f} GiB does not fit "
                                   f"{sizing.card.limit_gib:.1f} GiB usable ({sizing.card.source}); "
                                   f"{sizing.line()}", ("train", "micro_batch_size"), fix)
    return UserError([where], headline=f"{checked.loaded.path}: the run cannot fit the card; nothing was run")


def plan_for_run(checked: Checked) -> Sizing | None:
    """What validate and run do: plan when the run is on a GPU whose memory is known (given, capped,
    declared or found), put auto's choices into the plan, and refuse a run that cannot fit. None (and
    a note) when there is nothing to plan against."""
    r = checked.loaded.recipe
    if r.gpu.count == 0:
        return None
    card = find_gpu(checked, None, None)
    if card is None:
        checked.notes.append("no memory plan: no card to plan against (set gpu.memory_gb, or run "
                             "`swiftkit plan RECIPE --gpu-memory-gb N`)")
        return None
    try:
        sizing = size(checked, card=card)
    except CannotPlan as why:
        checked.notes.append(f"no memory plan: {why}")
        return None
    checked.notes.extend(sizing.notes)
    if not sizing.longest_from.startswith("assumed"):
        refused = refusal(checked, sizing)
        if refused is not None:
            raise refused
    apply(checked, sizing)
    return sizing
