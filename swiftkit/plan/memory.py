"""Pure: the peak GPU memory of a training run, predicted before anything loads.

The figure predicted is the one ms-swift reports as `memory(GiB)`: the largest
`torch.cuda.max_memory_reserved()` seen, in GiB, for rank 0. It is the sum of

- weights: every parameter of the base model in its dtype (4-bit: the linear layers at ~0.53 byte);
- trainable state: the adapter's parameters, their gradients and AdamW's two moments, all float32
  (PEFT upcasts bf16 adapters to float32); a full fine-tune: gradients and moments of every weight;
- activations: what autograd keeps for the backward pass of the longest micro-batch, per token and
  layer, from the layer's structure (below); with gradient checkpointing only each layer's input is
  kept, plus one layer's worth while it is recomputed, which lives after the loss's buffers are freed:
  only what it needs beyond them counts;
- logits and loss: ms-swift computes the logits of a micro-batch only from its earliest first label on
  (`logits_to_keep`: the padded length less the shortest prompt, plus one; Setup.logit_tokens, measured
  by plan/rows.py), in bf16, with their float32 copy for the loss, the saved log-softmax and the gradients;
- the allocator: what the kernels and the caching allocator reserve beyond that (a constant).

Activations per token per layer, in bytes, without checkpointing (bf16, sdpa attention, Qwen2/LLaMA
layer): the two RMSNorms keep their float32 input and bf16 output (6 H each), attention keeps q, the
attention output and o_proj's input (6 H) and k, v (4 x kv dim); the MLP keeps gate, silu(gate), up and
their product (8 I). A LoRA module with dropout keeps its dropped input and the mask (3 x its input
width): 3 H for each of q, k, v, o, gate, up and 3 I for down.

Three constants are fitted (ACTIVATION_SCALE, LOGIT_BYTES, ALLOCATOR_GIB; `python bench/memory_fit.py`) on 16
runs (bench/results/gpu-memory, split "fit": Qwen2.5 1.5B/7B/14B shapes and SmolLM2-135M's and Qwen2.5-0.5B's,
an H200, ms-swift 4.6.0, torch 2.11, transformers 5.17), within 3.8 % of them. Held out, 64 runs within 8.8 %,
mean 2.2 % (bench/memory_table.py; tests/plan/test_memory.py holds the plan to each): 1.5B-14B, micro-batch 1-16,
rank 8-64, checkpointing on and off, rows of 43-2035 tokens of one length or many, the presets and `auto` through
`swiftkit run`, real models (Qwen2.5-Coder-0.5B-Instruct, SmolLM2-135M-Instruct) on identity, mixed and replay data.
Three kinds of run are further off, each for a reason measured beside it:
- rows of many lengths on a card with room leave the caching allocator holding blocks it no longer uses: SmolLM2's
  identity rows (42-119 tokens) reserved 3.78 GiB where its tensors peaked at 3.00 (planned 3.19); under a cap
  of 3.3 GiB the same job trained at the same micro-batch (the allocator gives the cache back before it fails);
- an entry's #N of a file is planned on the file's longest row, which the rows ms-swift draws may not hold (+19 %);
- replay rows are planned as their prompt plus max_new_tokens; the answers kept are shorter (+12 %).
The plan is for swiftkit's allocator setting (expandable segments, render.py): without it rows of many lengths
fragment the allocator and the same run reserves up to twice as much.
"""
from __future__ import annotations

from dataclasses import dataclass, field

GIB = 2**30
ACTIVATION_SCALE = 0.81  # fitted: the structural count above overstates what autograd keeps by ~19 %
LOGIT_BYTES = 15.55  # fitted: bytes per kept position per vocabulary entry (bf16 logits, their float32 copy, log-softmax, its gradient and the bf16 one: 16)
ALLOCATOR_GIB = 0.11  # fitted: what the kernels and the allocator reserve beyond the tensors counted
# The largest error on runs not used to fit, and the margin `auto` keeps below the card because of it.
PLAN_ERROR = 0.09  # the largest error on runs not used to fit (8.8 %: 1.5B, checkpointing, 8 x 2035 tokens), rounded up
AUTO_MARGIN = 0.09
CUDA_CONTEXT_GIB = 0.6  # the CUDA context and driver, outside the allocator's figure (a cap excludes it)
LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class Shape:
    """A decoder-only transformer's shape, from its config.json."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    model_type: str = ""

    @classmethod
    def from_config(cls, config: dict) -> "Shape":
        """KeyError naming the missing key when the config is not a decoder-only transformer's."""
        cfg = config.get("text_config", config) if "hidden_size" not in config else config
        heads = cfg["num_attention_heads"]
        return cls(hidden=cfg["hidden_size"], intermediate=cfg["intermediate_size"],
                   layers=cfg["num_hidden_layers"], heads=heads, kv_heads=cfg.get("num_key_value_heads") or heads,
                   vocab=cfg["vocab_size"], tied=bool(config.get("tie_word_embeddings", cfg.get("tie_word_embeddings"))),
                   model_type=config.get("model_type", ""))

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * (self.hidden // self.heads)

    def module_widths(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer of one transformer block."""
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.module_widths().values())

    def params(self) -> int:
        h = self.hidden
        biases = self.layers * (h + 2 * self.kv_dim) if self.model_type.startswith("qwen2") else 0
        norms = self.layers * 2 * h + h
        return self.linear_params() + biases + norms + self.vocab * h * (1 if self.tied else 2)


@dataclass(frozen=True)
class Setup:
    """The settings of one run that move its peak."""

    micro_batch: int
    tokens: int  # the longest padded row a micro-batch can hold (its length after the chat template)
    logit_tokens: int | None = None  # positions of such a row whose logits ms-swift keeps; None: all `tokens`
    tuner: str = "lora"  # lora | full
    rank: int = 8
    targets: tuple[str, ...] = ("all-linear",)
    dropout: float = 0.05
    gradient_checkpointing: bool = True
    dtype: str = "bfloat16"
    quant_bits: int | None = None
    liger: bool = False

    def targeted(self) -> list[str]:
        if self.tuner == "full":
            return []
        if "all-linear" in self.targets:
            return list(LINEAR_MODULES)
        return [m for m in LINEAR_MODULES if m in self.targets]


@dataclass
class MemoryPlan:
    peak_gib: float
    breakdown: dict[str, float]  # GiB per part, summing to peak_gib
    estimate_only: list[str] = field(default_factory=list)  # settings outside what was measured

    def fits(self, limit_gib: float) -> bool:
        return self.peak_gib <= limit_gib


def trainable_params(shape: Shape, setup: Setup) -> int:
    if setup.tuner == "full":
        return shape.params()
    widths = shape.module_widths()
    return shape.layers * setup.rank * sum(sum(widths[m]) for m in setup.targeted())


def activation_bytes_per_layer_token(shape: Shape, setup: Setup) -> float:
    h, i = shape.hidden, shape.intermediate
    kept = 12 * h + 6 * h + 4 * shape.kv_dim + 8 * i  # norms, attention, MLP
    if setup.dropout > 0:
        kept += sum(3 * shape.module_widths()[m][0] for m in setup.targeted())
    return kept


def plan_memory(shape: Shape, setup: Setup) -> MemoryPlan:
    bytes_ = DTYPE_BYTES[setup.dtype]
    notes = []
    if setup.quant_bits:
        other = shape.params() - shape.linear_params()
        weights = shape.linear_params() * (setup.quant_bits / 8 + 0.03) + other * bytes_
        notes.append(f"{setup.quant_bits}-bit weights (not measured: no bitsandbytes on the GPU host)")
    else:
        weights = shape.params() * bytes_
    n = trainable_params(shape, setup)
    if setup.tuner == "full":
        trainable = n * (bytes_ + 2 * bytes_)  # gradients and AdamW's moments in the weights' dtype
        notes.append("a full fine-tune (not measured)")
    else:
        trainable = n * 16  # float32 parameter, gradient, two AdamW moments
        if setup.tuner != "lora":
            notes.append(f"the {setup.tuner} tuner, planned as LoRA of the same rank (not measured)")
    tokens = setup.micro_batch * setup.tokens
    per_layer = activation_bytes_per_layer_token(shape, setup) * ACTIVATION_SCALE
    logits = setup.micro_batch * min(setup.logit_tokens or setup.tokens, setup.tokens) * shape.vocab * LOGIT_BYTES
    if setup.liger:
        logits = tokens * shape.hidden * 8  # fused linear cross-entropy: the logits are never whole
        notes.append("liger kernels (not measured for the plan)")
    if setup.gradient_checkpointing:  # the recomputed layer lives after the loss's buffers are freed: the larger counts
        activations = tokens * shape.layers * 2 * shape.hidden + max(0.0, tokens * per_layer - logits)
    else:
        activations = tokens * shape.layers * per_layer
    if setup.dtype == "float32":
        activations, logits = activations * 2, logits * 1.3
        notes.append("float32 training (not measured)")
    parts = {"weights": weights / GIB, "trainable_state": trainable / GIB, "activations": activations / GIB,
             "logits_and_loss": logits / GIB, "allocator": ALLOCATOR_GIB}
    parts = {k: round(v, 3) for k, v in parts.items()}
    return MemoryPlan(round(sum(parts.values()), 2), parts, notes)


def usable_gib(card_gib: float, *, capped: bool) -> float:
    """What the allocator may reserve on a card: all of a cap (the context is outside it), else the
    card less the CUDA context."""
    return card_gib if capped else card_gib - CUDA_CONTEXT_GIB


def choose(shape: Shape, setup: Setup, per_gpu_batch: int, limit_gib: float, *,
           micro_batch_auto: bool, checkpointing_auto: bool) -> tuple[Setup, str]:
    """The fastest setup whose plan, with AUTO_MARGIN, fits limit_gib: the largest micro-batch that
    divides the per-GPU batch (so the effective batch stays exact), checkpointing off where that fits
    at the same micro-batch. (setup, why); the smallest setup and why when nothing fits."""
    from dataclasses import replace

    micro_options = ([d for d in range(per_gpu_batch, 0, -1) if per_gpu_batch % d == 0] if micro_batch_auto
                     else [setup.micro_batch])
    gc_options = [False, True] if checkpointing_auto else [setup.gradient_checkpointing]
    budget = limit_gib / (1 + AUTO_MARGIN)
    for micro in micro_options:
        for gc in gc_options:
            candidate = replace(setup, micro_batch=micro, gradient_checkpointing=gc)
            peak = plan_memory(shape, candidate).peak_gib
            if peak <= budget:
                what = []
                if micro_batch_auto:
                    what.append(f"micro-batch {micro}" + (" (the whole per-GPU batch)" if micro == per_gpu_batch
                                                          else f" (the largest divisor of {per_gpu_batch} that fits)"))
                if checkpointing_auto:
                    what.append("gradient checkpointing " + ("off: it fits without" if not gc
                                                             else "on: off does not fit"))
                return candidate, (f"{', '.join(what)}; planned {peak:.1f} GiB + {AUTO_MARGIN:.0%} margin "
                                   f"<= {limit_gib:.1f} GiB")
    smallest = replace(setup, micro_batch=micro_options[-1], gradient_checkpointing=gc_options[-1])
    return smallest, (f"nothing fits {limit_gib:.1f} GiB with the {AUTO_MARGIN:.0%} margin; the smallest is "
                      f"{plan_memory(shape, smallest).peak_gib:.1f} GiB")
