"""Checks of a run across several processes or nodes: the launch against the recipe, DeepSpeed and FSDP
configs (a built-in name of the installed ms-swift, or a JSON file that exists and parses), and the
combinations ms-swift or DeepSpeed would refuse only after the model has loaded.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from swiftkit import paths, userfiles
from swiftkit.errors import Problem, UserError, choice_fix
from swiftkit.launch.node import Launch
from swiftkit.recipe.models import DEEPSPEED_BUILTIN, FSDP_BUILTIN, LoadedRecipe
from swiftkit.render import processes, resolve_batch

# Settings of the `swift:` escape hatch that distributed: owns.
OWNED = {"deepspeed": "distributed.deepspeed", "fsdp": "distributed.fsdp", "ddp_backend": "distributed.backend",
         "ddp_timeout": "distributed.timeout", "ddp_find_unused_parameters": "distributed.find_unused_parameters"}


def check_distributed(loaded: LoadedRecipe, launch: Launch | None, notes: list[str]) -> list[Problem]:
    r, p = loaded.recipe, loaded.problem
    d, gpu = r.distributed, r.gpu
    out: list[Problem] = []
    if launch is None and gpu.nodes > 1:
        notes.append(f"gpu.nodes {gpu.nodes}: run `swiftkit run` on every node (--nnodes {gpu.nodes} --node-rank R "
                     "--master-addr HOST), or submit `swiftkit slurm RECIPE`")
    elif launch is not None and launch.nnodes != gpu.nodes:
        out.append(p(f"this is {launch.describe()}, a run of {launch.nnodes} node(s), but the recipe's gpu.nodes is "
                     f"{gpu.nodes} (the effective batch and the data split depend on it)", ("gpu", "nodes"),
                     f"--set gpu.nodes={launch.nnodes}, or start {gpu.nodes} node(s)"))
    for key in r.swift:
        name = key.removeprefix("--")
        if name in OWNED:
            out.append(p(f"--{name} is a recipe key now", ("swift", key), f"write it as {OWNED[name]}", at_key=True))
    if d.deepspeed is not None and d.fsdp is not None:
        out.append(p("DeepSpeed and FSDP both shard the model; ms-swift takes one", ("distributed", "fsdp"),
                     "keep distributed.deepspeed or distributed.fsdp, not both"))
    for key, value, file in (("deepspeed", d.deepspeed, loaded.paths.deepspeed_config),
                             ("fsdp", d.fsdp, loaded.paths.fsdp_config)):
        if value is None:
            continue
        if gpu.count == 0:
            out.append(p(f"{key} trains on GPUs; gpu.count is 0 (the CPU)", ("distributed", key),
                         "set gpu.count to the GPUs per node, or remove distributed." + key))
        config, problem = _config(loaded, key, value, file)
        out += [problem] if problem else []
        if key == "deepspeed" and config is not None:
            out += _deepspeed_fits(loaded, config)
    if d.deepspeed is not None and importlib.util.find_spec("deepspeed") is None and launch is None:
        notes.append("distributed.deepspeed: the deepspeed package is not installed here; `swiftkit run` needs it")
    elif d.deepspeed is not None and importlib.util.find_spec("deepspeed") is None:
        out.append(p("distributed.deepspeed needs the deepspeed package, which is not installed here",
                     ("distributed", "deepspeed"), "pip install deepspeed (where torch and a CUDA compiler are)"))
    if d.backend == "nccl" and gpu.count == 0 and processes(r) > 1:
        out.append(p("the nccl backend needs GPUs; gpu.count is 0", ("distributed", "backend"),
                     "backend: gloo (or auto), or set gpu.count"))
    return out


def _config(loaded: LoadedRecipe, key: str, value: Any, file: Path | None) -> tuple[dict | None, Problem | None]:
    """The DeepSpeed/FSDP config as a mapping, or the problem with it."""
    p, where = loaded.problem, ("distributed", key)
    builtin = DEEPSPEED_BUILTIN if key == "deepspeed" else FSDP_BUILTIN
    if isinstance(value, dict):
        return value, None
    if file is None:  # a built-in name: the installed ms-swift must ship it
        config_dir = paths.swift_config_dir()
        path = config_dir / f"{value}.json" if config_dir else None
        if path is None or not path.is_file():
            return None, p(f"the installed ms-swift has no built-in {key} config '{value}'", where,
                           f"one of {', '.join(builtin)}, or a JSON file")
        file = path
    if not file.is_file():
        name = Path(str(value)).name  # a --set value arrives as an absolute path
        fix = choice_fix(name, list(builtin)) if "." not in name else None
        return None, p(f"{key} config {file} does not exist", where,
                       fix or f"a JSON file relative to the recipe, or one of {', '.join(builtin)}")
    try:
        config = json.loads(userfiles.read_text(file, "DeepSpeed/FSDP config", key=key))
    except UserError as err:  # a FIFO, a device, too large, not UTF-8: said by userfiles with the place
        return None, err.problems[0]
    except OSError as err:
        return None, p(f"{key} config {file} cannot be read: {err}", where, "check the file")
    except json.JSONDecodeError as err:
        return None, p(f"{key} config {file}:{err.lineno}:{err.colno} is not valid JSON: {err.msg}", where,
                       "fix the JSON at that line")
    except RecursionError:
        return None, p(f"{key} config {file} is nested too deeply to read", where, "a config is a flat {...} object")
    except ValueError:  # an integer of more digits than Python converts
        return None, p(f"{key} config {file} holds a number with more than {sys.get_int_max_str_digits()} digits",
                       where, "check the numbers in it")
    if not isinstance(config, dict):
        return None, p(f"{key} config {file} is not a JSON object", where, "a config is a {...} object")
    return config, None


def _deepspeed_fits(loaded: LoadedRecipe, config: dict) -> list[Problem]:
    """What DeepSpeed would refuse (or silently disagree with) only once the model is loaded."""
    r, p, out = loaded.recipe, loaded.problem, []
    where = ("distributed", "deepspeed")
    stage = (config.get("zero_optimization") or {}).get("stage")
    if stage == 3 and r.lora.quant_bits:
        out.append(p(f"ZeRO-3 cannot partition {r.lora.quant_bits}-bit bitsandbytes weights (QLoRA)", where,
                     "use zero2 with lora.quant_bits, or drop quant_bits under zero3"))
    batch = resolve_batch(r)
    if isinstance(batch, tuple):
        micro, accum = batch
        for name, ours, what in (("train_micro_batch_size_per_gpu", micro, "train.micro_batch_size"),
                                 ("gradient_accumulation_steps", accum, "train.gradient_accumulation"),
                                 ("train_batch_size", micro * accum * processes(r), "train.effective_batch_size")):
            theirs = config.get(name, "auto")
            if theirs != "auto" and theirs != ours:
                out.append(p(f"the DeepSpeed config sets {name} {theirs}, the recipe {ours} ({what}); the trainer "
                             "refuses the mismatch after loading the model", where,
                             f'write "{name}": "auto" in the config (the trainer fills it in)'))
    return out
