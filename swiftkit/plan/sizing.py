"""The memory plan of a checked recipe, and what `auto` chooses from it.

Gathers what plan/memory.py's arithmetic needs: the model's shape (its config.json, or the known hub
configs), the longest row of the recipe's data as ms-swift's own template encodes it (a child process,
child/token_lengths.py, cached by content), the card (given, capped, declared or found), and the
recipe's settings. `size(checked)` plans; `apply(checked, sizing)` puts the choices into the plan that
renders the command. Nothing here loads weights.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from swiftkit import datasets as ds
from swiftkit.checks.collect import Checked
from swiftkit.checks.data import replay_prompt_rows
from swiftkit.errors import UserError
from swiftkit.paths import cache_dir
from swiftkit.plan import memory as memplan
from swiftkit.plan.cards import find_card
from swiftkit.plan.known_models import known_config, qwen25_tokenizer_dir
from swiftkit.plan.memory import MemoryPlan, Setup, Shape
from swiftkit.process import capture
from swiftkit.recipe.models import Recipe
from swiftkit.render import CHILD_DIR, processes

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


class CannotPlan(Exception):
    """The plan cannot be made (no config.json to read): why, for a note or an error."""


# -- the model -------------------------------------------------------------------------------------

@dataclass
class ModelFacts:
    config: dict  # config.json
    tokenizer_dir: Path | None  # a dir ms-swift can load the tokenizer from
    model_type: str | None
    template: str | None


def model_facts(checked: Checked) -> ModelFacts:
    """The recipe's model as the plan needs it; CannotPlan when neither the model dir nor the known
    hub configs have its config.json."""
    plan = checked.plan
    if checked.gguf is not None and not checked.gguf.converted:  # the shape from the GGUF header; rows unmeasured
        return ModelFacts(checked.gguf.config, None, plan.model_type, plan.template)
    if plan.model_is_local:
        path = Path(plan.model) / "config.json"
        try:
            return ModelFacts(json.loads(path.read_text(encoding="utf-8")), Path(plan.model), plan.model_type,
                              plan.template)
        except (OSError, ValueError) as err:
            raise CannotPlan(f"cannot read {path}: {err}") from None
    config = known_config(plan.model)
    if config is None:
        raise CannotPlan(f"{plan.model} is a hub id whose shape swiftkit does not know offline; "
                         "download the model (or just its config.json and tokenizer) and give the local dir")
    model_type, template = plan.model_type or "qwen2", plan.template or "qwen2_5"
    tokenizer = qwen25_tokenizer_dir()
    if tokenizer is None:
        return ModelFacts(config, None, model_type, template)
    staged = cache_dir() / "shapes" / plan.model.replace("/", "--")
    staged.mkdir(parents=True, exist_ok=True)
    (staged / "config.json").write_text(json.dumps(config), encoding="utf-8")
    for f in tokenizer.iterdir():
        if not (staged / f.name).exists():
            (staged / f.name).symlink_to(f)
    return ModelFacts(config, staged, model_type, template)


# -- the data --------------------------------------------------------------------------------------

def conversations(checked: Checked) -> tuple[list[list[dict]], list[str], list[int]]:
    """Every usable row of the recipe's local data as messages (the identity rows rendered as a run
    renders them), notes on data that cannot be read offline, and tokens to add to each row's measured length
    (a replay row before its answer exists: the prompt with a one-character answer, plus max_new_tokens)."""
    rows: list[list[dict]] = []
    notes: list[str] = []
    pads: list[int] = []
    r = checked.loaded.recipe
    for i, entry in enumerate(r.datasets):
        before = len(rows)
        if entry.identity and r.identity is not None and checked.identity_template is not None:
            with tempfile.TemporaryDirectory() as tmp:
                files = ds.render_identity(checked.identity_template, Path(tmp), name=r.identity.name.model_dump(),
                                           author=r.identity.author.model_dump())
                rows += ds.conversations(files.train_path)
        elif entry.path:
            rows += ds.conversations(checked.loaded.paths.datasets[i])
        elif entry.replay:
            rows += replay_prompt_rows(checked.loaded, i)
            notes.append(f"replay rows are planned as their prompts plus max_new_tokens {entry.replay.max_new_tokens} "
                         "(the answers are generated at the start of the run; most are shorter)")
            pads += [entry.replay.max_new_tokens] * (len(rows) - before)
            continue
        elif entry.hub:
            notes.append(f"{entry.hub}: a hub dataset cannot be measured offline; its rows are assumed as long "
                         f"as max_length {r.train.max_length}")
        pads += [0] * (len(rows) - before)
    return rows, notes, pads


def _lengths_key(rows: list[list[dict]], model: ModelFacts, system: str | None) -> str:
    h = hashlib.sha256()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        f = model.tokenizer_dir / name
        if f.exists():
            h.update(f.read_bytes())
    h.update(json.dumps([model.model_type, model.template, system, rows], ensure_ascii=False).encode())
    return h.hexdigest()[:32]


def row_lengths(checked: Checked, rows: list[list[dict]], model: ModelFacts) -> list[int | None]:
    """Each row's length as ms-swift's template encodes it for training (cached by content)."""
    system = checked.loaded.recipe.train.system
    key = _lengths_key(rows, model, system)
    cached = cache_dir() / "lengths" / f"{key}.json"
    if cached.is_file():
        try:
            return json.loads(cached.read_text(encoding="utf-8"))
        except ValueError:
            pass
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", delete=False) as f:
        f.writelines(json.dumps(m, ensure_ascii=False) + "\n" for m in rows)
    spec = {"model": str(model.tokenizer_dir), "model_type": model.model_type, "template": model.template,
            "system": system, "conversations": f.name}
    try:
        done = capture([sys.executable, str(CHILD_DIR / "token_lengths.py"), json.dumps(spec)], timeout=900)
    finally:
        Path(f.name).unlink(missing_ok=True)
    last = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    if not last:
        raise CannotPlan("ms-swift could not encode the rows to measure them: "
                         + (done.stderr.strip().splitlines() or ["(no output)"])[-1])
    lengths = json.loads(last[0])["lengths"]
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(lengths), encoding="utf-8")
    return lengths


def longest_row(checked: Checked, model: ModelFacts) -> tuple[int, str, int, list[str]]:
    """(longest kept row in tokens, where from, rows kept, notes). Rows over max_length are dropped
    by ms-swift, so they do not count; hub data and a missing tokenizer count as max_length."""
    max_length = checked.loaded.recipe.train.max_length
    rows, notes, pads = conversations(checked)
    if model.tokenizer_dir is None:
        notes.append(f"no tokenizer to measure the rows with: assuming rows of max_length {max_length}")
        return max_length, "assumed: max_length", len(rows), notes
    measured = row_lengths(checked, rows, model) if rows else []
    lengths = [n + pad for n, pad in zip(measured, pads) if n is not None]
    kept = [n for n in lengths if n <= max_length]
    if len(kept) < len(lengths):
        notes.append(f"{len(lengths) - len(kept)} row(s) longer than max_length {max_length} are dropped by ms-swift")
    if any("hub dataset" in n for n in notes) or not kept:
        return max_length, "assumed: max_length (hub data)", len(kept), notes
    return max(kept), f"measured: {len(kept)} rows, ms-swift's {model.template or 'default'} template", \
        len(kept), notes


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

def base_setup(checked: Checked, longest: int) -> Setup:
    r = checked.loaded.recipe
    gc = r.train.gradient_checkpointing
    return Setup(micro_batch=checked.plan.micro_batch, tokens=longest, tuner=r.lora.tuner, rank=r.lora.rank,
                 targets=tuple(r.lora.target_modules), dropout=r.lora.dropout,
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
    longest, where, kept_rows, notes = longest_row(checked, model)
    r = checked.loaded.recipe
    setup = base_setup(checked, longest)
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
    sizing = Sizing(plan, setup, shape, longest, where, batch, card, choice, notes=notes)
    estimate_time(sizing, checked, kept_rows)
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
    if sizing.card is None or sizing.card.tflops is None:
        return
    t = checked.loaded.recipe.train
    sizing.step_s = round(step_seconds(sizing.shape, sizing.setup, sizing.per_gpu_batch, sizing.card.tflops), 2)
    eff = t.effective_batch_size or sizing.per_gpu_batch * processes(checked.loaded.recipe)
    sizing.steps = t.max_steps or (math.ceil(rows / eff) * math.ceil(t.epochs or 1) if rows else None)
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
