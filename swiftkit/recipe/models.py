"""What a user writes: the recipe models and `load_recipe(path)`.

The schema is strict (`extra="forbid"` everywhere) so a typo is an error, not a silently
ignored key. Everything here is pure: no ms-swift import, no file reads besides the recipe.
Checks that need the installed ms-swift or the data on disk live in `checks/collect.py`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from swiftkit.errors import Problem, UserError
from swiftkit.recipe.numbers import MAX_BATCH, MAX_GB, MAX_RANK, MAX_SECONDS, MAX_STEPS, MAX_TOKENS
from swiftkit.recipe.replay_section import BUNDLED_POOL, ReplaySpec
from swiftkit.recipe.strict import Strict
from swiftkit.recipe.verify_section import CUSTOM_SYSTEM, Probe, VerifySection  # noqa: F401 (re-exported)
from swiftkit.recipe.yamlfile import YamlDoc, dotted, load_yaml

HUB_ID = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$")
DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
# ms-swift's bundled self-cognition dataset, in every spelling it reads (its --model_name/--model_author fill it)
SELF_COGNITION = re.compile(r"^(?:(?:HF|MS)::)?(?:(?:swift|modelscope)/)?self-cognition(?::([\w/-]+))?(?:#(\d+))?$")


def _localized(value: Any) -> Any:
    # `name: Swift-Robot` is shorthand for the same form in every language.
    return {"zh": value, "en": value} if isinstance(value, str) else value


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _micro_batch(value: Any) -> Any:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_BATCH):
        return value
    raise PydanticCustomError("micro_batch", f"expected a positive integer up to {MAX_BATCH} or 'auto', got {{value}}",
                              {"value": repr(value), "fix": "write a number such as 4, or auto"})


class Localized(Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


LocalizedText = Annotated[Localized, BeforeValidator(_localized)]


class ModelSection(Strict):
    id: str = Field(min_length=1, description="Hub id (Qwen/Qwen2.5-7B-Instruct), a local model dir or a .gguf file "
                                              "(converted once, cached), relative to the recipe")
    model_type: str | None = Field(None, description="ms-swift model_type; detected from config.json for local dirs")
    template: str | None = Field(None, description="ms-swift chat template; detected where unambiguous")
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    trust_remote_code: bool = Field(False, description="Allow a local model dir that ships *.py code")


class Identity(Strict):
    name: LocalizedText
    author: LocalizedText
    template: str | None = Field(None, description="A self-cognition template (JSONL); default: the bundled one")
    train_systems: list[Literal["recipe", "default"]] = Field(
        ["recipe"], min_length=1, description="The system prompts the identity rows are trained under, in turn "
        "(row 1 the first, row 2 the second, ...): recipe (train.system), default (the template's own, what a "
        "request without a system prompt gets: qwen2_5's 'You are Qwen, ...'). [recipe, default]: the "
        "identity holds when a client sends no system prompt")


class DatasetEntry(Strict):
    path: str | None = Field(None, description="A local JSON/JSONL/CSV/parquet file, relative to the recipe")
    hub: str | None = Field(None, description="A hub dataset id, org/name[:subset]")
    identity: bool = Field(False, description="The self-cognition data rendered from `identity:`")
    replay: ReplaySpec | None = Field(None, description="The base model's own answers to general prompts, "
                                      "generated before training and cached (`replay: {n: 500}`)")
    samples: int | None = Field(None, gt=0, le=10**10, description="Rows to sample (ms-swift repeats the data when larger)")
    weight: float | None = Field(None, gt=0, le=1e4, description="Scale the entry's row count by this factor")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # "AI-ModelScope/alpaca-gpt4-data-zh#500", "data/mine.jsonl", "identity", "identity#100", "replay#300"
        if not isinstance(value, str):
            return value
        source, _, count = value.partition("#")
        entry: dict[str, Any] = {}
        if source == "replay":
            return {"replay": {"n": count} if count else {}}
        if count:
            entry["samples"] = count
        if source == "identity":
            entry["identity"] = True
        elif looks_like_hub_id(source):
            entry["hub"] = source  # the loader turns it into `path` when the file exists locally
        else:
            entry["path"] = source
        return entry

    @model_validator(mode="after")
    def _one_source(self) -> "DatasetEntry":
        given = [k for k in ("path", "hub", "replay") if getattr(self, k)] + (["identity"] if self.identity else [])
        if len(given) != 1:
            raise PydanticCustomError("one_source", "a dataset entry needs exactly one source (got {given})",
                                      {"given": ", ".join(given) or "none", "fix": "write one of `path: FILE`, "
                                       "`hub: org/name`, `identity: true` or `replay: {n: 500}`"})
        if self.replay and (self.samples is not None or self.weight is not None):
            raise PydanticCustomError("replay_count", "a replay entry takes its size from replay.n, not {key}",
                                      {"key": "samples" if self.samples is not None else "weight",
                                       "fix": "write `replay: {n: 300}` instead"})
        return self

    @property
    def label(self) -> str:
        if self.replay:
            return f"replay ({self.replay.prompts} x {self.replay.n})"
        return "identity" if self.identity else (self.path or self.hub or "")


# ms-swift 4.6's tuner_type choices (swift.arguments get_supported_tuners); `swiftkit validate` checks the
# choice against the installed ms-swift. rank, alpha, dropout and target_modules are ms-swift's lora_* and
# target_modules settings, which every tuner but full is given.
Tuner = Literal["lora", "full", "adalora", "adapter", "boft", "bone", "dummy", "fourierft", "ia3", "llamapro",
                "longlora", "lora_llm", "reft", "vera"]


class LoraSection(Strict):
    tuner: Tuner = Field("lora", description="ms-swift tuner_type: lora, full, or another tuner ms-swift offers")
    rank: int = Field(8, gt=0, le=MAX_RANK)
    alpha: float = Field(32, gt=0, le=1e6)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Annotated[list[str], BeforeValidator(_as_list)] = Field(default_factory=lambda: ["all-linear"],
                                                                            min_length=1)
    quant_bits: Literal[4, 8] | None = Field(None, description="QLoRA: load the base model in 4 (or 8) bits with "
                                                               "bitsandbytes")


class TrainSection(Strict):
    epochs: float | None = Field(None, gt=0, le=1e5)
    max_steps: int | None = Field(None, gt=0, le=MAX_STEPS)
    learning_rate: float = Field(1e-4, gt=0, le=10)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    scheduler: str = "cosine"
    effective_batch_size: int | None = Field(16, gt=0, le=MAX_BATCH, description="micro-batch x accumulation x GPUs")
    micro_batch_size: Annotated[int | Literal["auto"], BeforeValidator(_micro_batch)] = Field(
        "auto", description="Per-GPU batch, or auto: the largest that the memory plan fits on the card, "
                            "accumulation making up the effective batch (no card known: the whole per-GPU batch)")
    gradient_accumulation: int | None = Field(None, gt=0, le=MAX_BATCH, description="Derived from the effective batch when unset")
    max_length: int = Field(2048, gt=0, le=MAX_TOKENS)
    gradient_checkpointing: bool | Literal["auto"] = Field(
        True, description="auto: off where the memory plan says the run fits without it (off is faster)")
    seed: int = Field(42, ge=0, lt=2**32, description="numpy takes seeds of 0 to 2**32 - 1")
    save_steps: int | None = Field(None, gt=0, le=MAX_STEPS)
    logging_steps: int = Field(5, gt=0, le=MAX_STEPS)
    eval_steps: int | None = Field(None, gt=0, le=MAX_STEPS)
    save_total_limit: int | None = Field(2, gt=0, le=10**6)
    eval_split: float = Field(0.0, ge=0, lt=1, description="Share of the data held out for evaluation")
    system: str | None = Field(None, description="System prompt used in training and inference")


class GpuSection(Strict):
    count: int = Field(1, ge=0, le=1024, description="GPUs to train on, on each node; 0 trains on the CPU")
    nodes: int = Field(1, ge=1, le=10**5, description="Machines the run spans, gpu.count GPUs on each; one `swiftkit run` "
                                            "per node (see `swiftkit slurm`)")
    memory_gb: float | None = Field(None, gt=0, le=MAX_GB, description="Memory per card the recipe is written for")
    visible_devices: list[Annotated[int, Field(ge=0, lt=1024)]] | None = Field(None, description="CUDA device indices (CUDA_VISIBLE_DEVICES)")
    emulate_memory_gb: float | None = Field(None, gt=0, le=MAX_GB, description="Cap the training process's CUDA allocator "
                                            "at this many GiB, to stand in for a smaller card")
    cudnn_attention: bool = Field(False, description="Let PyTorch run scaled_dot_product_attention on cuDNN (it picks it "
                                  "first on recent cards). Off: its flash and memory-efficient kernels, in training, "
                                  "verification and serving; cuDNN's costs milliseconds of CPU per call on shapes that "
                                  "change every step (bench/results/step-profile)")


DEEPSPEED_BUILTIN = ("zero0", "zero1", "zero2", "zero3", "zero2_offload", "zero3_offload")
FSDP_BUILTIN = ("fsdp2",)


class DistributedSection(Strict):
    """How several training processes share the work (one node with several GPUs, or several nodes)."""

    deepspeed: str | dict[str, Any] | None = Field(
        None, description="DeepSpeed ZeRO: a config the installed ms-swift ships (zero0, zero1, zero2, zero3, "
                          "zero2_offload, zero3_offload), a JSON file relative to the recipe, or the config itself")
    fsdp: str | None = Field(None, description="PyTorch FSDP: fsdp2 (ms-swift's config) or a JSON file relative "
                                               "to the recipe")
    find_unused_parameters: bool | Literal["auto"] = Field(
        "auto", description="DDP's search for parameters without a gradient; auto: off for LoRA, where every "
                            "trainable parameter gets one (the search costs a graph traversal every step)")
    timeout: int = Field(1800, gt=0, le=MAX_SECONDS, description="Seconds a collective waits for the other processes before the "
                                                 "run fails (ms-swift's default is 208 days: a dead rank hangs it)")
    backend: Literal["auto", "nccl", "gloo", "mpi", "ccl", "hccl", "cncl", "mccl"] = Field(
        "auto", description="torch.distributed backend; auto: nccl on GPUs, gloo on the CPU")


class OutputSection(Strict):
    dir: str = Field("output", description="Where runs go, relative to the recipe")
    resume: Literal["auto", "never"] = "auto"
    stall_timeout: int | None = Field(1800, gt=0, le=MAX_SECONDS, description="Seconds without a new line of output and without "
                                      "a new step before the run counts as stalled and is stopped (resumable); "
                                      "null: never")


OomStep = Literal["halve_micro_batch", "gradient_checkpointing", "shorten_max_length", "qlora", "lower_rank"]


class OnOom(Strict):
    """The OOM fallback ladder: each step is tried once, in order; a step that cannot apply is skipped."""

    steps: list[OomStep] = Field(default_factory=lambda: ["halve_micro_batch", "gradient_checkpointing",
                                                          "shorten_max_length", "qlora", "lower_rank"])
    max_retries: int = Field(5, ge=0, le=100, description="Attempts after the first; 0 turns the ladder off")
    max_length_factor: float = Field(0.5, gt=0, lt=1, description="shorten_max_length multiplies by this")
    min_max_length: int = Field(256, gt=0, le=MAX_TOKENS)
    min_rank: int = Field(4, gt=0, le=MAX_RANK, description="lower_rank halves the rank down to this")


class ExportSection(Strict):
    """`swiftkit run` ends with a merged export when `merge` is true (`swiftkit export` takes the same options)."""

    merge: bool = Field(False, description="Merge the adapter into the base model at the end of the run")
    dir: str | None = Field(None, description="Where the merged model goes, relative to the recipe; default: "
                                              "beside the checkpoint as checkpoint-N-merged")
    dtype: Literal["bfloat16", "float16", "float32"] | None = Field(None, description="Default: model.dtype")
    max_shard_size: Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|KiB|MiB|GiB)$")] | None = Field(
        None, description="Largest weight file, e.g. 5GB (ms-swift's default)")
    quant_bits: Literal[4, 8] | None = Field(None, description="Quantize the merged model")
    quant_method: Literal["bnb", "gptq", "awq", "gptq_v2"] | None = Field(
        None, description="Default bnb (no calibration data); gptq and awq need quant_dataset")
    quant_dataset: Annotated[list[str], BeforeValidator(_as_list)] = Field(
        default_factory=list, description="Calibration data for gptq/awq (files relative to the recipe, or hub ids)")
    min_agreement: float | None = Field(None, ge=0, le=1, description="Share of probes the merged model must "
                                        "answer as base + adapter did; default 1.0 in float32, 0.7 in 16 bits")
    format: Literal["safetensors", "gguf"] = Field("safetensors", description="gguf: the merged model also as GGUF "
                                                   "files for llama.cpp and Ollama, checked in llama.cpp (implies merge)")
    gguf_quant: Annotated[list[str], BeforeValidator(_as_list)] = Field(
        default_factory=lambda: ["q8_0"], description="GGUF types to write: f32, f16, bf16, q8_0")

    @model_validator(mode="after")
    def _calibration(self) -> "ExportSection":
        if self.quant_method in ("gptq", "gptq_v2", "awq") and not self.quant_dataset:
            raise PydanticCustomError("calibration", "quant_method {method} needs calibration data",
                                      {"method": self.quant_method, "fix": "add quant_dataset: [FILE], or use "
                                       "quant_method: bnb, which needs none"})
        if self.quant_method and not self.quant_bits:
            raise PydanticCustomError("quant_bits", "quant_method {method} without quant_bits",
                                      {"method": self.quant_method, "fix": "add quant_bits: 4 (or 8)"})
        return self


FlagValue = str | int | float | bool | list[str | int | float | bool] | None


class Recipe(Strict):
    name: str | None = None
    description: str | None = None
    model: ModelSection
    identity: Identity | None = None
    datasets: list[DatasetEntry] = Field(description="Training data; [] only with swift.cached_dataset (data "
                                         "tokenized beforehand by `swift export --to_cached_dataset`)")
    lora: LoraSection = Field(default_factory=LoraSection)
    train: TrainSection = Field(default_factory=TrainSection)
    gpu: GpuSection = Field(default_factory=GpuSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)
    output: OutputSection = Field(default_factory=OutputSection)
    verify: VerifySection = Field(default_factory=VerifySection)
    on_oom: OnOom = Field(default_factory=OnOom)
    export: ExportSection = Field(default_factory=ExportSection)
    swift: dict[str, FlagValue] = Field(default_factory=dict,
                                        description="Any other `swift sft` flag (name without --) and its value")

    @model_validator(mode="after")
    def _some_data(self) -> "Recipe":
        if not self.datasets and not self.swift.get("cached_dataset"):
            raise PydanticCustomError("no_data", "datasets: must not be empty",
                                      {"fix": "add entries under datasets: (a file, a hub id, or identity)"})
        return self

    def digest(self) -> str:
        """A stable hash of what the recipe asks for (not of its formatting)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()


def looks_like_hub_id(text: str) -> bool:
    return bool(HUB_ID.match(text)) and not text.lower().endswith((*DATA_SUFFIXES, ".gguf"))


@dataclass(frozen=True)
class RecipePaths:
    """Every path a recipe names, resolved once, at load, against the recipe's directory."""

    output_dir: Path
    model: Path  # model.id as a path (a local dir when it exists or is not a hub id)
    model_is_local: bool
    datasets: tuple[Path | None, ...]  # per datasets entry: its local file, None for hub, identity and replay entries
    replay_prompts: tuple[Path | None, ...]  # per datasets entry: a replay entry's prompt file (None: the bundled pool)
    identity_template: Path | None  # identity.template; None: the bundled one
    general_probes: Path | None  # verify.general_probes; None: the bundled set
    export_dir: Path | None
    deepspeed_config: Path | None = None  # distributed.deepspeed as a file (None: a built-in name, a mapping, unset)
    fsdp_config: Path | None = None  # distributed.fsdp as a file


class LoadedRecipe:
    """A validated recipe plus where it came from (for paths and error positions). `paths` holds the
    recipe's paths resolved once; `resolve` resolves any other relative path the same way."""

    def __init__(self, recipe: Recipe, path: Path, doc: YamlDoc):
        self.recipe = recipe
        self.path = path
        self.doc = doc
        self.base_dir = path.resolve().parent
        self.resolve_paths()

    def resolve_paths(self) -> None:
        r = self.recipe
        model = self.resolve(r.model.id)
        self.paths = RecipePaths(
            output_dir=self.resolve(r.output.dir), model=model,
            model_is_local=model.exists() or not looks_like_hub_id(r.model.id),
            datasets=tuple(self.resolve(d.path) if d.path else None for d in r.datasets),
            replay_prompts=tuple(self.resolve(d.replay.prompts) if d.replay and d.replay.prompts != BUNDLED_POOL
                                 else None for d in r.datasets),
            identity_template=self.resolve(r.identity.template) if r.identity and r.identity.template else None,
            general_probes=self.resolve(r.verify.general_probes) if r.verify.general_probes else None,
            export_dir=self.resolve(r.export.dir) if r.export.dir else None,
            deepspeed_config=self._config_file(r.distributed.deepspeed, DEEPSPEED_BUILTIN),
            fsdp_config=self._config_file(r.distributed.fsdp, FSDP_BUILTIN))

    def _config_file(self, value: Any, builtin: tuple[str, ...]) -> Path | None:
        return self.resolve(value) if isinstance(value, str) and value not in builtin else None

    def resolve(self, relative: str) -> Path:
        """Recipe paths are relative to the recipe file, not the working directory."""
        p = Path(relative).expanduser()
        return Path(os.path.normpath(p if p.is_absolute() else self.base_dir / p))

    def problem(self, message: str, key: tuple, fix: str | None = None, *, at_key: bool = False) -> Problem:
        line, col = self.doc.where(key, key=at_key)
        return Problem(message, file=self.doc.source(key), line=line, column=col, key=dotted(key) or None, fix=fix)


def load_recipe(path: Path | str, overrides: list[str] | None = None) -> LoadedRecipe:
    """Read and schema-check a recipe; every schema error at once, each with its place and a fix.

    `overrides` are `dotted.key=value` strings (from `--set`), applied before validation;
    paths given there are relative to the working directory, since that is where they were typed."""
    path = Path(path)
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise UserError.one("a recipe is a YAML mapping (model:, datasets:, ...)", file=doc.file, line=1,
                            fix="start from a bundled recipe: `swiftkit presets`")
    for item in overrides or []:
        _apply_override(doc, item)
    try:
        recipe = Recipe.model_validate(doc.data)
    except ValidationError as exc:
        from swiftkit.recipe.schema_errors import explain

        raise UserError(explain(exc, doc, Recipe)) from None
    loaded = LoadedRecipe(recipe, path, doc)
    _hub_or_local(loaded)
    return loaded


PATH_KEYS = {("model", "id"), ("output", "dir"), ("identity", "template"), ("export", "dir"),
             ("verify", "general_probes"), ("distributed", "deepspeed"), ("distributed", "fsdp")}


def _apply_override(doc: YamlDoc, item: str) -> None:
    from swiftkit.recipe.overrides import split_override

    parts, value = split_override(item, Recipe)
    is_path = tuple(parts) in PATH_KEYS and isinstance(value, str) and value not in DEEPSPEED_BUILTIN + FSDP_BUILTIN
    if is_path and (parts[0] in ("output", "export") or os.path.exists(value) or not looks_like_hub_id(value)):
        value = os.path.abspath(value)
    doc.overridden.add(tuple(parts))
    node = doc.data
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            node[part] = {}
            doc.overridden.add(tuple(parts[:depth + 1]))  # a section --set made: its errors are the command line's
        node = node[part]
    node[parts[-1]] = value


def _hub_or_local(loaded: LoadedRecipe) -> None:
    # A shorthand like `datasets/mine` matches the hub pattern; a file there wins, as in ms-swift.
    for i, entry in enumerate(loaded.recipe.datasets):
        shorthand = isinstance(loaded.doc.data["datasets"][i], str)
        if shorthand and entry.hub and loaded.resolve(entry.hub).exists():
            entry.path, entry.hub = entry.hub, None
    loaded.resolve_paths()  # again: entries may have changed from hub to path
