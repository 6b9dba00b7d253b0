"""Pure: a checked recipe (a Plan) -> Invocation(argv, env) for swift sft / infer / export.

Flags are spelled for the installed ms-swift (`Catalog.spell`), never through a shell;
`display()` is one copy-pasteable command quoted with shlex.
"""
from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swiftkit.flags.catalog import Catalog
from swiftkit.launch.node import Launch
from swiftkit.recipe.models import Recipe, looks_like_hub_id
from swiftkit.render_env import CHILD_DIR, OFFLINE_ENV, device_env  # noqa: F401 (imported from here too)

KeyPath = tuple


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # flag -> the recipe key it came from, so a rejected flag can be traced to a line
    sources: dict[str, KeyPath] = field(default_factory=dict, compare=False)
    # flag -> a value of its list that ms-swift's parser would read as a flag (checks refuse it at the key)
    flag_like: dict[str, str] = field(default_factory=dict, compare=False)

    def display(self) -> str:
        return shlex.join([f"{k}={v}" for k, v in self.env.items()] + self.argv)

    def to_json(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "env": dict(self.env)}


@dataclass(frozen=True)
class Plan:
    """Everything rendering needs that is not in the recipe itself (resolved by checks/collect.py)."""

    recipe: Recipe
    model: str  # absolute local dir or hub id
    model_is_local: bool
    model_type: str | None
    template: str | None
    datasets: list[str]  # dataset arguments, already resolved (absolute paths, #N)
    output_dir: Path
    data_dir: Path  # where swiftkit writes rendered data (the identity file)
    micro_batch: int
    grad_accum: int
    resume_from: Path | None = None  # a complete checkpoint to continue from
    val_dataset: Path | None = None  # held-out general rows, evaluated at the start and end (datasets/holdout.py)
    launch: Launch = Launch()  # which node this is (launch/node.py); one node unless told otherwise
    deepspeed_config: Path | None = None  # distributed.deepspeed resolved to a file (recipe.RecipePaths)
    fsdp_config: Path | None = None

    def with_recipe(self, recipe: Recipe, resume_from: Path | None = None) -> "Plan":
        """The same plan for a changed recipe (the OOM ladder), batch re-resolved."""
        from dataclasses import replace

        micro, accum = resolve_batch(recipe)  # type: ignore[misc]  (ladder steps keep it resolvable)
        return replace(self, recipe=recipe, micro_batch=micro, grad_accum=accum, resume_from=resume_from)


def processes(recipe: Recipe) -> int:
    """Training processes of the whole run: one per GPU (one per node on the CPU), on every node."""
    return max(recipe.gpu.count, 1) * recipe.gpu.nodes


def world_text(recipe: Recipe) -> str:
    gpus = f"{max(recipe.gpu.count, 1)} GPU(s)" if recipe.gpu.count or recipe.gpu.nodes == 1 else "1 CPU process"
    return gpus if recipe.gpu.nodes == 1 else f"{gpus} x {recipe.gpu.nodes} nodes"


def resolve_batch(recipe: Recipe) -> tuple[int, int] | str:
    """(micro-batch, accumulation) honouring effective = micro x accum x GPUs per node x nodes, or why not."""
    t, gpus, world = recipe.train, processes(recipe), world_text(recipe)
    eff, micro, accum = t.effective_batch_size, t.micro_batch_size, t.gradient_accumulation
    if eff is None:
        if micro == "auto":
            return "micro_batch_size: auto needs effective_batch_size"
        return micro, accum or 1
    if micro == "auto":
        micro = eff // (gpus * (accum or 1)) if eff % (gpus * (accum or 1)) == 0 else 0
        if micro == 0:
            return f"effective batch {eff} is not divisible by {accum or 1} accumulation step(s) x {world}"
        return micro, accum or 1
    if accum is None:
        if eff % (micro * gpus):
            return _not_divisible(eff, micro, gpus, world)
        return micro, eff // (micro * gpus)
    if micro * accum * gpus != eff:
        return (f"effective batch {eff} != micro-batch {micro} x accumulation {accum} x {world} "
                f"= {micro * accum * gpus}")
    return micro, accum


def _not_divisible(eff: int, micro: int, gpus: int, world: str) -> str:
    per_gpu = eff // gpus if eff % gpus == 0 else None
    options = [d for d in range(1, (per_gpu or 0) + 1) if per_gpu and per_gpu % d == 0]
    lower, upper = (eff // (micro * gpus)) * micro * gpus, (eff // (micro * gpus) + 1) * micro * gpus
    hint = f"micro_batch_size {', '.join(map(str, options))}" if options else "another micro_batch_size"
    return (f"effective batch {eff} is not divisible by micro-batch {micro} x {world}; "
            f"use {hint}, or effective_batch_size {' or '.join(str(x) for x in (lower, upper) if x)}")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


class _Args:
    def __init__(self, catalog: Catalog, verb: str):
        self.catalog, self.verb = catalog, verb
        self.items: list[tuple[str, list[str], KeyPath]] = []

    def add(self, canonical: str, value: Any, source: KeyPath = ()) -> None:
        if value is None:
            return
        values = [_fmt(v) for v in value] if isinstance(value, (list, tuple)) else [_fmt(value)]
        self.items.append((self.catalog.spell(canonical), values, source))

    def switch(self, name: str, source: KeyPath) -> None:
        self.items.append((name, [], source))

    def invocation(self, head: list[str], env: dict[str, str]) -> Invocation:
        argv = list(head) + [self.verb]
        sources: dict[str, KeyPath] = {}
        flag_like: dict[str, str] = {}
        for name, values, source in self.items:
            argv += words(f"--{name}", values)
            sources.setdefault(f"--{name}", source)  # a duplicate (an error) keeps the recipe key
            if len(values) > 1 and (odd := next((v for v in values if reads_as_flag(v)), None)) is not None:
                flag_like.setdefault(f"--{name}", odd)
        return Invocation(argv, env, sources, flag_like)


# argparse reads a word that starts with '-' as an option unless it looks like a negative number (and the
# parser has no option that does, as ms-swift's has none): argparse's own _negative_number_matcher
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


def reads_as_flag(value: str) -> bool:
    """Whether ms-swift's parser would take this word for a flag rather than a value (`-x`, `--x`, `-1e-4`)."""
    return value.startswith("-") and not _NEGATIVE_NUMBER.match(value)


def words(flag: str, values: list[str]) -> list[str]:
    """`--flag v1 v2`; a lone value that would read as a flag is joined to it, `--system=-x`, which ms-swift's
    HfArgumentParser reads as the value (checked with its parser, tests/test_hostile_flags.py). In a list
    the joined form carries the first value only: such a list is refused by checks (`flag_like`)."""
    if len(values) == 1 and values[0].startswith("-"):
        return [f"{flag}={values[0]}"]
    return [flag, *values]


def env_for(plan: Plan) -> dict[str, str]:
    """The environment of infer and export (one process) and the base of sft's."""
    env = device_env(plan.recipe.gpu)
    if plan.model_is_local and not any(d.hub for d in plan.recipe.datasets):
        env.update(OFFLINE_ENV)  # nothing to fetch: keep the hub libraries from probing the network
    return env


def training_env(recipe: Recipe) -> dict[str, str]:
    """What swiftkit/child/sitecustomize.py does in the training process beyond the device, so that the
    tokenizer is not pickled before training: the rows are encoded in the training process rather than in
    a pool of one worker, and datasets names its cache files without hashing the encode function, unless
    ms-swift is to read them back. The identity rows with Qwen2.5's tokenizer: data preparation 2.8 -> 0.06 s
    on the CPU (bench/results/data-phase.md), 5.3 -> 0.1 s on an H200 host (bench/results/gpu-whole-job),
    the same loss to the last digit."""
    env = {"PYTHONPATH": str(CHILD_DIR), "SWIFTKIT_DATASET_IN_PROCESS": "1"}
    if not _swift_sets(recipe, "load_from_cache_file"):
        env["SWIFTKIT_DATASET_FINGERPRINT"] = "random"
    return env


def launch_env(plan: Plan) -> dict[str, str]:
    """What makes `swift sft` start torchrun: processes per node, and which node this is (MS_SWIFT_4.md)."""
    r = plan.recipe
    env: dict[str, str] = {}
    if distributed(r):
        # one process per GPU; on the CPU one per node. DeepSpeed and FSDP need torchrun even for one GPU.
        env["NPROC_PER_NODE"] = str(max(r.gpu.count, 1))
        # ms-swift reports rank 0's memory only: each rank writes its own (swiftkit/child/sitecustomize.py)
        env["SWIFTKIT_RANK_STATS"] = str(rank_stats_dir(plan))
        env["PYTHONPATH"] = str(CHILD_DIR)
    env.update(plan.launch.env())
    return env


def rank_stats_dir(plan: Plan) -> Path:
    """Where this node's training processes write their peak memory (rank-N.json)."""
    return plan.output_dir / ".swiftkit" / f"ranks-node{plan.launch.node_rank}"


def distributed(recipe: Recipe) -> bool:
    """Whether training runs under torchrun: several processes, or DeepSpeed / FSDP."""
    d = recipe.distributed
    return processes(recipe) > 1 or bool(d.deepspeed or d.fsdp)


def _distributed_args(args: "_Args", plan: Plan) -> None:
    r, d = plan.recipe, plan.recipe.distributed
    if d.deepspeed is not None:
        value = plan.deepspeed_config or d.deepspeed  # a file resolved against the recipe, a name, a mapping
        args.add("deepspeed", json.dumps(value) if isinstance(value, dict) else str(value),
                 ("distributed", "deepspeed"))
    if d.fsdp is not None:
        args.add("fsdp", str(plan.fsdp_config or d.fsdp), ("distributed", "fsdp"))
    if not distributed(r):
        return
    backend = d.backend if d.backend != "auto" else ("gloo" if r.gpu.count == 0 else None)
    args.add("ddp_backend", backend, ("distributed", "backend"))
    args.add("ddp_timeout", d.timeout, ("distributed", "timeout"))
    find_unused = d.find_unused_parameters
    if find_unused == "auto":
        # every LoRA matrix gets a gradient each step; other tuners keep transformers' choice
        find_unused = False if r.lora.tuner == "lora" and not (d.deepspeed or d.fsdp) else None
    args.add("ddp_find_unused_parameters", find_unused, ("distributed", "find_unused_parameters"))


@dataclass(frozen=True)
class ModelRef:
    """What `swift infer` / `swift export` load: a model (base, merged or fully tuned) and maybe an adapter."""

    model: str  # local dir or hub id
    adapter: Path | None = None
    model_type: str | None = None
    template: str | None = None
    dtype: str | None = None
    system: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.model} + adapter {self.adapter}" if self.adapter else self.model


def model_ref(plan: Plan, checkpoint: Path | None) -> ModelRef:
    """The recipe's model with a checkpoint of its run: an adapter on the base, or a fully tuned model."""
    r = plan.recipe
    if checkpoint is not None and r.lora.tuner == "full":
        return ModelRef(str(checkpoint), None, None, None, r.model.dtype, r.train.system, env_for(plan))
    return ModelRef(plan.model, checkpoint, plan.model_type, plan.template, r.model.dtype, r.train.system,
                    env_for(plan))


def _model_args(args: _Args, plan: Plan | ModelRef) -> None:
    dtype = plan.recipe.model.dtype if isinstance(plan, Plan) else plan.dtype
    args.add("model", plan.model, ("model", "id"))
    args.add("model_type", plan.model_type, ("model", "model_type"))
    args.add("template", plan.template, ("model", "template"))
    args.add("torch_dtype", dtype, ("model", "dtype"))


def render_sft(plan: Plan, catalog: Catalog, swift: list[str] | None = None) -> Invocation:
    r, args = plan.recipe, _Args(catalog, "sft")
    t, lora = r.train, r.lora
    _model_args(args, plan)
    if plan.model_is_local:
        # sft otherwise asks the hub whether a local model is current (~7 s offline); infer/export lack the flag
        args.add("check_model", False, ("model", "id"))
    args.add("tuner_type", lora.tuner, ("lora", "tuner"))
    args.add("dataset", plan.datasets or None, ("datasets",))  # none: swift.cached_dataset
    args.add("num_train_epochs", t.epochs, ("train", "epochs"))
    args.add("max_steps", t.max_steps, ("train", "max_steps"))
    args.add("learning_rate", t.learning_rate, ("train", "learning_rate"))
    if lora.tuner != "full":  # ms-swift's lora_* settings, read by lora and the tuners built on it
        args.add("lora_rank", lora.rank, ("lora", "rank"))
        args.add("lora_alpha", lora.alpha, ("lora", "alpha"))
        args.add("lora_dropout", lora.dropout, ("lora", "dropout"))
        args.add("target_modules", lora.target_modules, ("lora", "target_modules"))
    if lora.quant_bits:
        args.add("quant_method", "bnb", ("lora", "quant_bits"))
        args.add("quant_bits", lora.quant_bits, ("lora", "quant_bits"))
        args.add("bnb_4bit_compute_dtype", r.model.dtype, ("lora", "quant_bits"))
    args.add("per_device_train_batch_size", plan.micro_batch, ("train", "micro_batch_size"))
    args.add("gradient_accumulation_steps", plan.grad_accum, ("train", "gradient_accumulation"))
    args.add("max_length", t.max_length, ("train", "max_length"))
    # auto that no memory plan resolved (no card known) keeps checkpointing on: the safe side
    checkpointing = t.gradient_checkpointing if isinstance(t.gradient_checkpointing, bool) else True
    args.add("gradient_checkpointing", checkpointing, ("train", "gradient_checkpointing"))
    args.add("warmup_ratio", t.warmup_ratio, ("train", "warmup_ratio"))
    args.add("lr_scheduler_type", t.scheduler, ("train", "scheduler"))
    args.add("seed", t.seed, ("train", "seed"))
    args.add("save_steps", t.save_steps, ("train", "save_steps"))
    args.add("save_total_limit", t.save_total_limit, ("train", "save_total_limit"))
    args.add("logging_steps", t.logging_steps, ("train", "logging_steps"))
    args.add("split_dataset_ratio", t.eval_split, ("train", "eval_split"))
    args.add("eval_steps", t.eval_steps, ("train", "eval_steps"))
    if plan.val_dataset is not None:
        args.add("val_dataset", str(plan.val_dataset), ("verify", "general_holdout"))
        args.add("eval_on_start", True, ("verify", "general_holdout"))  # step 0: the base model's loss
    args.add("system", t.system, ("train", "system"))
    args.add("output_dir", str(plan.output_dir), ("output", "dir"))
    if plan.resume_from is not None:
        args.add("resume_from_checkpoint", str(plan.resume_from), ("output", "resume"))
    _distributed_args(args, plan)
    if not _swift_sets(r, "dataloader_num_workers", "lazy_tokenize", "streaming"):
        # ms-swift encodes the rows before training, so batching them in the training process costs little;
        # a worker process costs seconds: on the CPU it only slows the run, and on a CUDA host torch's
        # DataLoader waits 5 s for each worker at exit (ms-swift's last line to exit: 8.1 s with one worker,
        # 22.9 s with four; bench/results/gpu-whole-job).
        args.add("dataloader_num_workers", 0, ("gpu", "count"))
    if r.gpu.count == 0:
        args.add("dataloader_pin_memory", False, ("gpu", "count"))  # no GPU to pin for
    _escape_hatch(args, r)
    return args.invocation(swift or ["swift"], {**env_for(plan), **training_env(r), **launch_env(plan)})


def _swift_sets(recipe: Recipe, *names: str) -> bool:
    """Whether the recipe's `swift:` escape hatch sets one of these ms-swift arguments itself (to any value but
    null or false: `dataloader_num_workers: 0` sets it, `lazy_tokenize: false` does not)."""
    return any(key.lstrip("-") in names and value is not None and value is not False
               for key, value in recipe.swift.items())


def _escape_hatch(args: _Args, recipe: Recipe) -> None:
    options = args.catalog.options(args.verb)
    for key, value in recipe.swift.items():
        name = key[2:] if key.startswith("--") else key
        if options.get(f"--{name}", {}).get("type") == "switch":
            if value:
                args.switch(name, ("swift", key))
            continue
        args.items.append((name, [_fmt(v) for v in value] if isinstance(value, list) else [_fmt(value)],
                           ("swift", key)))


def render_infer(ref: ModelRef, catalog: Catalog, *, val_dataset: Path, result_path: Path, max_new_tokens: int,
                 batch_size: int, swift: list[str] | None = None) -> Invocation:
    """Non-interactive inference: always a dataset and a result path, greedy decoding."""
    args = _Args(catalog, "infer")
    args.add("adapters", str(ref.adapter) if ref.adapter else None, ())
    _model_args(args, ref)
    args.add("val_dataset", str(val_dataset), ())
    args.add("result_path", str(result_path), ())
    args.add("infer_backend", "transformers", ())
    args.add("temperature", 0, ())
    args.add("max_new_tokens", max_new_tokens, ("verify", "max_new_tokens"))
    args.add("max_batch_size", batch_size, ("verify", "batch_size"))
    args.add("system", ref.system, ("train", "system"))
    return args.invocation(swift or ["swift"], ref.env)


@dataclass(frozen=True)
class ExportOptions:
    """How the merged model is written (`swiftkit export` options, or the recipe's `export:`)."""

    dtype: str | None = None  # default: the dtype the model was trained in
    max_shard_size: str | None = None  # e.g. 5GB (ms-swift's default)
    quant_bits: int | None = None
    quant_method: str | None = None
    quant_dataset: list[str] = field(default_factory=list)  # calibration data (gptq, awq)


def export_options(recipe: Recipe, resolve=None) -> ExportOptions:
    """The recipe's `export:` as options; `resolve` turns recipe-relative paths into absolute ones."""
    e = recipe.export
    data = [str(resolve(d)) if resolve and not _is_hub(d) else d for d in e.quant_dataset]
    method = e.quant_method or ("bnb" if e.quant_bits else None)
    return ExportOptions(e.dtype, e.max_shard_size, e.quant_bits, method, data)


def _is_hub(text: str) -> bool:
    return looks_like_hub_id(text.split("#", 1)[0])


def render_export(ref: ModelRef, catalog: Catalog, *, output_dir: Path, options: ExportOptions = ExportOptions(),
                  swift: list[str] | None = None) -> Invocation:
    """Merge the LoRA adapter into the base weights (and quantize, when asked)."""
    args = _Args(catalog, "export")
    args.add("adapters", str(ref.adapter) if ref.adapter else None, ())
    _model_args(args, ModelRef(ref.model, ref.adapter, ref.model_type, ref.template, options.dtype or ref.dtype))
    args.add("merge_lora", True if ref.adapter else None, ())
    args.add("max_shard_size", options.max_shard_size, ())
    args.add("quant_method", options.quant_method, ())
    args.add("quant_bits", options.quant_bits, ())
    args.add("dataset", options.quant_dataset or None, ())
    args.add("output_dir", str(output_dir), ())
    return args.invocation(swift or ["swift"], ref.env)


def render_deploy(ref: ModelRef, catalog: Catalog, *, host: str, port: int, name: str, base_name: str | None,
                  api_key: str | None, backend: str, max_batch_size: int, lora_rank: int | None = None,
                  swift: list[str] | None = None) -> Invocation:
    """An OpenAI-compatible server of the tuned model under `name`. With `base_name` (vLLM, which batches
    several LoRAs) the adapter is a named one and the model itself is served under base_name; without it the
    adapter is the engine's own (ms-swift's TransformersEngine fails a batch of requests naming an adapter:
    "Length of `adapter_names` should be the same as the number of inputs")."""
    args = _Args(catalog, "deploy")
    args.add("adapters", (f"{name}={ref.adapter}" if base_name else str(ref.adapter)) if ref.adapter else None, ())
    _model_args(args, ref)
    for flag, value in (("served_model_name", base_name if ref.adapter and base_name else name), ("host", host), ("port", port),
                        ("api_key", api_key), ("infer_backend", backend), ("max_batch_size", max_batch_size),
                        ("system", ref.system), ("temperature", 0), ("verbose", False), ("log_interval", -1),
                        # vLLM's LoRA rank limit defaults to 16 whatever the adapter's rank
                        ("vllm_max_lora_rank", lora_rank if backend == "vllm" and ref.adapter else None)):
        args.add(flag, value, ())
    # child/sitecustomize.py: a wrong API key is answered 401, not ms-swift's 400
    return args.invocation(swift or ["swift"], {**ref.env, "PYTHONPATH": str(CHILD_DIR), "SWIFTKIT_DEPLOY_401": "1"})
