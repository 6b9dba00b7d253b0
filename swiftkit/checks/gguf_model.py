"""A recipe whose model.id names a .gguf file: its header read (no weights loaded), the ms-swift model type and
template detected or asked for, and the dir the run trains: the file converted once into a Hugging Face dir,
cached by its sha256 and the recipe's dtype (gguf/convert.py)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from swiftkit.errors import Problem, UserError, choice_fix, nearby_name
from swiftkit.flags.catalog import Catalog
from swiftkit.gguf import convert as converting
from swiftkit.gguf import fetch
from swiftkit.gguf.header import convertible, plan_config, read_header, summary
from swiftkit.recipe.models import LoadedRecipe

KEY = ("model", "id")


@dataclass(frozen=True)
class GgufSource:
    """Where the weights come from, for the plan before conversion and for the run record."""

    path: Path
    sha256: str
    summary: str
    file_type: int | None
    tensor_types: dict[str, int]
    target: Path  # the converted dir (in the cache), trained as --model
    dtype: str
    converted: bool
    config: dict = field(default_factory=dict)  # the shape from the header, for the plan before conversion

    def to_json(self) -> dict:
        return {"gguf": str(self.path), "sha256": self.sha256, "file_type": self.file_type,
                "tensor_types": self.tensor_types, "converted_dir": str(self.target), "dtype": self.dtype}


def is_gguf(path: Path) -> bool:
    return path.suffix.lower() == ".gguf"


def missing_fix(path: Path) -> str:
    known = next((name for name, m in fetch.KNOWN.items() if m.filename.lower() == path.name.lower()), None)
    if known:  # the bundled real-identity recipe names the file that demo --real fetches
        return (f"this is the known model {known}: `swiftkit demo --real` fetches and trains it, or run with "
                f"--set model.id=\"$(swiftkit convert {known})\"")
    guess = nearby_name(path)
    return f"did you mean '{guess}'?" if guess else "check the path (it is relative to the recipe)"


def check_gguf(loaded: LoadedRecipe, path: Path, catalog: Catalog, model_type: str | None, template: str | None,
               problems: list[Problem], notes: list[str]) -> tuple[str, str | None, str | None, GgufSource | None]:
    """(the dir to train, model_type, template, the source) with problems added for what cannot work."""
    p = loaded.problem
    if not path.is_file():
        problems.append(p(f"GGUF file not found: {path}", KEY, missing_fix(path)))
        return str(path), model_type, template, None
    try:
        header = read_header(path)
    except UserError as err:  # not GGUF, cut off, a hostile header: said by the reader, placed at model.id
        problems.extend(replace(x, key="model.id") for x in err.problems)
        return str(path), model_type, template, None
    found = convertible(header)
    if found:
        problems.extend(replace(x, key="model.id") for x in found)
        return str(path), model_type, template, None
    model_type = model_type or header.model_type
    template = template or header.template
    for name, value, choices in (("model_type", model_type, catalog.model_types),
                                 ("template", template, catalog.templates)):
        if not value:
            problems.append(p(f"ms-swift's {name} of {path.name} ({header.architecture}, "
                              f"{header.name or 'no name'}) cannot be told from its header", KEY,
                              f"set model.{name} in the recipe ({choice_fix(header.architecture or '', choices)})"))
    dtype = loaded.recipe.model.dtype
    target = converting.cache_target(path, dtype, header)
    done = converting.converted(target, path, dtype)
    notes.append(f"model {path.name}: {summary(header)}; " + (f"converted ({dtype}): {target}" if done else
                 f"converted once into {dtype} at the start of the run, then cached: {target}"))
    source = GgufSource(path, converting.cached_sha256(path), summary(header), header.file_type,
                        dict(header.tensor_types), target, dtype, done, plan_config(header))
    return str(target), model_type, template, source
