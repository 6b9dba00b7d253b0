"""What the plan reads before it sizes anything: the model's shape (config.json, a GGUF header, or a known
hub model's), every row of the recipe's data as ms-swift's template encodes it (cached by content), and how many
rows an epoch trains (#N sample counts, hub datasets included)."""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from swiftkit import datasets as ds
from swiftkit.checks.collect import Checked
from swiftkit.checks.data import replay_prompt_rows
from swiftkit.paths import cache_dir
from swiftkit.plan.known_models import known_config, qwen25_tokenizer_dir
from swiftkit.process import capture
from swiftkit.render import CHILD_DIR


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
            rows += identity_rows(checked)
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


def identity_rows(checked: Checked) -> list[list[dict]]:
    """The identity rows as a run renders them (into a temporary dir: nothing is kept), under every system prompt
    of identity.train_systems: a row trained under the template's long default is longer than under the recipe's."""
    ident = checked.loaded.recipe.identity
    with tempfile.TemporaryDirectory() as tmp:
        files = ds.render_identity(checked.identity_template, Path(tmp), name=ident.name.model_dump(),
                                   author=ident.author.model_dump(), systems=checked.identity_systems)
        return ds.conversations(files.train_path)


def _lengths_key(rows: list[list[dict]], model: ModelFacts, system: str | None) -> str:
    h = hashlib.sha256(b"lengths and first labels")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        f = model.tokenizer_dir / name
        if f.exists():
            h.update(f.read_bytes())
    h.update(json.dumps([model.model_type, model.template, system, rows], ensure_ascii=False).encode())
    return h.hexdigest()[:32]


def row_lengths(checked: Checked, rows: list[list[dict]], model: ModelFacts) -> dict[str, list[int | None]]:
    """Each row's length as ms-swift's template encodes it for training, and the position of its first label
    (`lengths`, `first_labels`; cached by content)."""
    system = checked.loaded.recipe.train.system
    key = _lengths_key(rows, model, system)
    cached = cache_dir() / "lengths" / f"{key}.json"
    if cached.is_file():
        try:
            found = json.loads(cached.read_text(encoding="utf-8"))
            if isinstance(found, dict) and len(found.get("first_labels", ())) == len(rows):
                return found
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
    found = json.loads(last[0])
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(found), encoding="utf-8")
    return found


@dataclass
class Rows:
    """The recipe's rows as the plan sizes them."""

    longest: int  # the longest kept row, in tokens
    logit_tokens: int  # positions of a padded micro-batch row whose logits ms-swift keeps (logits_to_keep)
    where: str  # how `longest` was found
    kept: int  # rows kept (not over max_length)
    notes: list[str]


def logits_kept(lengths: list[int], first_labels: list[int | None]) -> int:
    """ms-swift keeps the logits of a micro-batch from its earliest first label on (`logits_to_keep`: the padded
    length less the shortest prompt, plus one); for the plan, the longest row padded with the shortest prompt."""
    firsts = [f for f in first_labels if f is not None]
    longest = max(lengths)
    return max(1, longest - min(firsts) + 1) if firsts else longest


def longest_row(checked: Checked, model: ModelFacts) -> Rows:
    """The longest kept row and the logits kept for it. Rows over max_length are dropped by ms-swift, so they
    do not count; hub data and a missing tokenizer count as max_length, their logits whole."""
    max_length = checked.loaded.recipe.train.max_length
    rows, notes, pads = conversations(checked)
    if model.tokenizer_dir is None:
        notes.append(f"no tokenizer to measure the rows with: assuming rows of max_length {max_length}")
        return Rows(max_length, max_length, "assumed: max_length", len(rows), notes)
    measured = row_lengths(checked, rows, model) if rows else {"lengths": [], "first_labels": []}
    pairs = [(n + pad, first) for n, first, pad in zip(measured["lengths"], measured["first_labels"], pads)
             if n is not None]
    kept = [(n, first) for n, first in pairs if n <= max_length]
    if len(kept) < len(pairs):
        notes.append(f"{len(pairs) - len(kept)} row(s) longer than max_length {max_length} are dropped by ms-swift")
    if any("hub dataset" in n for n in notes) or not kept:
        return Rows(max_length, max_length, "assumed: max_length (hub data)", len(kept), notes)
    lengths, firsts = [n for n, _ in kept], [f for _, f in kept]
    return Rows(max(lengths), logits_kept(lengths, firsts),
                f"measured: {len(kept)} rows, ms-swift's {model.template or 'default'} template", len(kept), notes)


def training_rows(checked: Checked, measured: int, notes: list[str]) -> int:
    """Rows one epoch trains, as ms-swift samples them: an entry's #N (samples, times weight) where it has one,
    else its usable rows (a local file's, the identity's, replay's n); a hub dataset without #N cannot be
    counted offline and is said to be left out. `measured`: the local rows the plan measured, when no entry
    says more."""
    r, total, counted = checked.loaded.recipe, 0, False
    by_path = {str(rep.path): rep.usable_rows for rep in checked.reports}
    for i, entry in enumerate(r.datasets):
        n = entry.samples
        if entry.weight is not None and (n or not entry.hub):
            n = max(1, round((n or _entry_rows(checked, i, by_path)) * entry.weight))
        if n is None and entry.hub:
            notes.append(f"{entry.hub} has no #N sample count: its rows are left out of the step count")
            continue
        counted |= n is not None
        total += n if n is not None else _entry_rows(checked, i, by_path)
    return total if counted else measured


def _entry_rows(checked: Checked, index: int, by_path: dict[str, int]) -> int:
    entry = checked.loaded.recipe.datasets[index]
    if entry.replay:
        return entry.replay.n
    if entry.path:
        return by_path.get(str(checked.loaded.paths.datasets[index]), 0)
    if entry.identity and checked.identity_template is not None and checked.loaded.recipe.identity is not None:
        return len(identity_rows(checked))
    return 0
