"""What the installed ms-swift accepts, and how flag names changed across versions.

The catalog (every option string of `swift sft/infer/export`, registered model types,
templates, tuners) is read from ms-swift's own argument parser in a child process and
cached per installed ms-swift version, so a warm `swiftkit validate` never imports torch.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from swiftkit import __version__, paths
from swiftkit.errors import UserError

# Flag spellings that changed, as data. Canonical names are ms-swift 4.x names.
# canonical -> {major version: spelling on that version}
SPELLINGS: dict[str, dict[int, str]] = {
    "tuner_type": {3: "train_type", 2: "sft_type"},
    "eval_strategy": {3: "evaluation_strategy", 2: "evaluation_strategy"},
}

# Old name -> (4.x name, note). Used when importing an old command line.
RENAMED: dict[str, tuple[str, str]] = {
    "train_type": ("tuner_type", "--train_type was renamed --tuner_type in ms-swift 4"),
    "sft_type": ("tuner_type", "--sft_type (ms-swift 2) is --tuner_type in ms-swift 4"),
    "evaluation_strategy": ("eval_strategy", "--evaluation_strategy is --eval_strategy since transformers 5"),
    "no_cuda": ("use_cpu", "--no_cuda is --use_cpu since transformers 5"),
    "ckpt_dir": ("adapters", "--ckpt_dir was removed in ms-swift 4: pass the checkpoint as --adapters"),
    "lora_modules": ("adapters", "--lora_modules was removed in ms-swift 4: pass adapters as --adapters"),
    "lora_target_modules": ("target_modules", "--lora_target_modules (ms-swift 2) is --target_modules"),
}

# Old name -> why it is dropped with no replacement.
REMOVED: dict[str, str] = {
    "overwrite_output_dir": "removed in transformers 5; ms-swift writes each run to a new vN-* directory anyway",
    "save_safetensors": "removed in transformers 5; checkpoints are always safetensors",
}

# model_type values of ms-swift 3.x that are templates in 4.x: old -> (model_type, template)
MODEL_TYPE_RENAMES: dict[str, tuple[str, str]] = {
    "qwen2_5": ("qwen2", "qwen2_5"),
    "qwen2_5_math": ("qwen2", "qwen2_5_math"),
    "qwq": ("qwen2", "qwq"),
}


@dataclass(frozen=True)
class Catalog:
    data: dict

    @property
    def version(self) -> str:
        return self.data["swift_version"]

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def options(self, verb: str) -> dict[str, dict]:
        return self.data["verbs"][verb]["options"]

    def flag_names(self, verb: str) -> list[str]:
        return sorted({opt[2:] for opt in self.options(verb) if opt.startswith("--") and "-" not in opt[2:]})

    @property
    def model_types(self) -> dict[str, dict]:
        return self.data["model_types"]

    @property
    def templates(self) -> list[str]:
        return self.data["templates"]

    def default_system(self, template: str | None) -> str | None:
        """The system prompt `template` sends when a request has none (None: it sends none)."""
        return self.data.get("default_systems", {}).get(template) if template else None

    def template_of(self, model_type: str | None, template: str | None) -> str | None:
        """The template a model is used with: the one given, else its model_type's only one."""
        if template or not model_type:
            return template
        choices = self.model_types().get(model_type, {}).get("templates") or []
        return choices[0] if len(choices) == 1 else None

    @property
    def tuners(self) -> list[str]:
        return self.data["tuners"]

    @property
    def schedulers(self) -> list[str]:
        return self.data["schedulers"]

    def spell(self, canonical: str) -> str:
        """The flag name the installed ms-swift uses for a canonical (4.x) name."""
        return SPELLINGS.get(canonical, {}).get(self.major, canonical)


def installed_swift_version() -> str | None:
    try:
        return metadata.version("ms-swift")
    except metadata.PackageNotFoundError:
        return None


def cache_path(version: str) -> Path:
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return paths.cache_dir() / f"catalog-ms-swift-{version}-py{py}-swiftkit-{__version__}.json"


def load_catalog(*, refresh: bool = False) -> Catalog:
    """The catalog for the installed ms-swift: from the cache, else built in a child process."""
    version = installed_swift_version()
    if version is None:
        raise UserError.one("ms-swift is not installed in this Python environment",
                            fix=f"install it: {sys.executable} -m pip install 'ms-swift>=4,<5'")
    path = cache_path(version)
    if not refresh:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if "default_systems" in data and "deploy" in data.get("verbs", {}):  # else written before those were read
                return Catalog(data)
        except (OSError, ValueError):
            pass
    data = build_catalog()
    _write_atomic(path, json.dumps(data))
    return Catalog(data)


def build_catalog() -> dict:
    from swiftkit.process import capture

    result = capture([sys.executable, "-m", "swiftkit.child.introspect", "catalog"])
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-8:])
        raise RuntimeError(f"could not read ms-swift's arguments (exit {result.returncode}):\n{tail}")
    return json.loads(result.stdout)


def parse_with_swift(requests: list[tuple[str, list[str]]]) -> list[list[str]]:
    """For each (verb, argv): what the installed ms-swift's own parser would reject.

    Slow (imports ms-swift in a child), so requests are batched into one process."""
    from swiftkit.process import capture

    payload = json.dumps([{"verb": verb, "argv": argv} for verb, argv in requests])
    result = capture([sys.executable, "-m", "swiftkit.child.introspect", "parse-many"], stdin=payload)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return [r["remaining"] for r in json.loads(result.stdout)]


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
