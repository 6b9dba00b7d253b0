"""Checks of a recipe's data before anything runs: dataset files, the identity template, the general
probes, and the general rows held out for eval loss. Part of checks.check's one report."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from swiftkit import datasets as ds, userfiles
from swiftkit.datasets import holdout
from swiftkit.datasets.holdout import Holdout
from swiftkit.datasets import prompt_pool
from swiftkit.datasets.probes import load_probes
from swiftkit.errors import Problem, UserError, nearby_name
from swiftkit.paths import bundled_general_prompts, bundled_general_probes, bundled_identity_template
from swiftkit.recipe.models import LoadedRecipe


# -- datasets ------------------------------------------------------------------------------------

def check_datasets(loaded: LoadedRecipe, problems: list[Problem], notes: list[str], model_dir: str | None):
    r = loaded.recipe
    output_dir = loaded.paths.output_dir
    count = ds.token_counter(Path(model_dir)) if model_dir else None
    if count is None and any(d.path for d in r.datasets):
        notes.append("rows longer than max_length are not counted: no local tokenizer to count with")
    args: list[str] = []
    reports = []
    template = None
    general: list[tuple[int, Path, int]] = []  # (index in args, local general file, usable rows)
    for i, entry in enumerate(r.datasets):
        key = ("datasets", i)
        rows: int | None = None
        if entry.identity:
            if r.identity is None:
                continue
            template = loaded.paths.identity_template or bundled_identity_template()
            rows = _check_identity(loaded, template, key, problems)
            arg = str(output_dir / "data" / ds.IDENTITY_TRAIN_FILE)
        elif entry.replay:
            rows = check_replay(loaded, i, problems, notes)
            arg = str(output_dir / "data" / prompt_pool.replay_file(i))
        elif entry.path:
            path = loaded.paths.datasets[i]
            if not path.exists():
                problems.append(_missing_file(loaded, path, key, entry.path))
                continue
            try:
                report = ds.inspect_dataset(path, max_length=r.train.max_length, count_tokens=count,
                                            key=f"datasets[{i}]", root=loaded.path.parent)
            except UserError as exc:
                problems.extend(exc.problems)
                continue
            reports.append(report)
            rows = report.usable_rows
            if report.too_long:
                notes.append(f"{path.name}: {report.too_long} of {report.rows} rows are longer than max_length "
                             f"{r.train.max_length} tokens; ms-swift drops them silently")
            notes.extend(f"{path.name}: {n}" for n in report.notes)
            arg = str(path.resolve())
            general.append((len(args), path.resolve(), rows))
        else:
            notes.append(f"dataset {entry.hub} is a hub id: accepted as a reference, it cannot be checked offline")
            arg = entry.hub or ""
        n = entry.samples
        if entry.weight is not None and (n or rows):
            n = max(1, round((n or rows or 0) * entry.weight))
        args.append(f"{arg}#{n}" if n else arg)
    return args, reports, template, general


def replay_prompts(loaded: LoadedRecipe, index: int) -> list[prompt_pool.Prompt]:
    """The prompts a replay entry samples from (UserError, located, when they cannot be read)."""
    path = loaded.paths.replay_prompts[index] or bundled_general_prompts()
    return prompt_pool.load_prompts(path, f"datasets[{index}].replay.prompts")


def replay_sample(loaded: LoadedRecipe, index: int) -> tuple[list[prompt_pool.Prompt], int, int]:
    """A replay entry's sampled prompts, the size of its pool, and the seed that sampled them."""
    spec = loaded.recipe.datasets[index].replay
    seed = replay_seed(loaded, index)
    pool = replay_prompts(loaded, index)
    return prompt_pool.pick(pool, spec.n, seed), len(pool), seed


def replay_seed(loaded: LoadedRecipe, index: int) -> int:
    """replay.seed, else train.seed."""
    spec = loaded.recipe.datasets[index].replay
    return spec.seed if spec.seed is not None else loaded.recipe.train.seed


def replay_prompt_rows(loaded: LoadedRecipe, index: int) -> list[list[dict]]:
    """A replay entry's rows as the plan counts them before the answers exist: each sampled prompt with a
    one-character answer (the plan adds max_new_tokens)."""
    return [[{"role": "user", "content": p.query}, {"role": "assistant", "content": "."}]
            for p in replay_sample(loaded, index)[0]]


def check_replay(loaded: LoadedRecipe, index: int, problems: list[Problem], notes: list[str]) -> int | None:
    """A replay entry's prompts: readable, no duplicates, none a retention probe, at least n of them. Returns
    the rows it adds (n; answers dropped at generation are counted then)."""
    r, spec = loaded.recipe, loaded.recipe.datasets[index].replay
    key = ("datasets", index, "replay")
    path = loaded.paths.replay_prompts[index]
    if path is not None:
        special = userfiles.check_regular(path, "dataset file", key=f"datasets[{index}].replay.prompts")
        if special or not path.is_file():
            guess = nearby_name(path)
            problems.append(special or loaded.problem(
                f"replay prompt file not found: {path}", (*key, "prompts"),
                f"did you mean '{guess}'?" if guess else "check the path (relative to the recipe), or write "
                "`prompts: general` for the bundled pool"))
            return None
    if spec.max_new_tokens >= r.train.max_length:
        problems.append(loaded.problem(
            f"replay.max_new_tokens {spec.max_new_tokens} leaves no room under train.max_length {r.train.max_length}: "
            "ms-swift drops every row longer than max_length, prompt and template included", (*key, "max_new_tokens"),
            f"lower it to {max(16, r.train.max_length * 3 // 4)} or less, or raise train.max_length"))
    try:
        prompts = replay_prompts(loaded, index)
    except UserError as exc:
        problems.extend(exc.problems)
        return None
    if spec.n > len(prompts):
        problems.append(loaded.problem(f"replay.n {spec.n} is more than the {len(prompts)} prompts of "
                                       f"{spec.prompts}", (*key, "n"),
                                       f"lower n to at most {len(prompts)}, or give a larger prompt file"))
        return None
    probes_path = loaded.paths.general_probes
    if r.verify.enabled and r.verify.retention and (path is not None or probes_path is not None):
        try:  # the bundled pool against the bundled probes is proven by the project's tests
            probes = load_probes(probes_path or bundled_general_probes())
        except UserError:
            probes = []  # check_general_probes reports it
        labels = [(str(p.get("id") or f"line {n}"), p["query"]) for n, p in enumerate(probes, 1)]
        problems += prompt_pool.pool_problems(path or bundled_general_prompts(), prompts, labels,
                                              f"datasets[{index}].replay.prompts")
    seed = replay_seed(loaded, index)
    notes.append(f"replay: the base model answers {spec.n} of the {len(prompts)} prompts of {spec.prompts} "
                 f"(seed {seed}, greedy, up to {spec.max_new_tokens} new tokens each) before training; the answers "
                 "are cached for later runs, and empty, cut-off or identity-mentioning ones are dropped")
    return spec.n


def plan_holdout(loaded: LoadedRecipe, general: list[tuple[int, Path, int]], data_dir: Path, args: list[str],
             notes: list[str]) -> Holdout | None:
    """Carve the held-out general rows; training reads the carved files (`args` changed in place)."""
    r = loaded.recipe
    if not (r.verify.enabled and r.verify.retention and r.verify.general_holdout) or r.train.eval_split:
        return None
    held = holdout.plan([(path, rows) for _, path, rows in general], data_dir, r.verify.general_holdout)
    if held is None:
        return None
    by_source = {c.source: c for c in held.carves}
    for index, path, _ in general:
        if path in by_source:
            args[index] = args[index].replace(str(path), str(by_source[path].train_path), 1)
    notes.append(f"{held.rows} general row(s) held out of training for eval loss at the start and end "
                 f"(verify.general_holdout)")
    return held


def _missing_file(loaded: LoadedRecipe, path: Path, key: tuple, written: str) -> Problem:
    if path.is_symlink():
        try:
            path.resolve(strict=True)
            why = "cannot be read"
        except RuntimeError:
            why = "is a symlink loop"
        except OSError:
            why = f"is a symlink to {os.readlink(path)}, which does not exist"
        return loaded.problem(f"dataset file {path} {why}", key, "point the recipe at the data file itself, or "
                              "fix the link")
    guess = nearby_name(path)
    fix = f"did you mean '{guess}'?" if guess else "check the path: it is relative to the recipe file"
    return loaded.problem(f"dataset file not found: {path} (ms-swift would take '{written}' for a hub id "
                          "and fail after loading the model)", key, fix)


def _check_identity(loaded: LoadedRecipe, template: Path, key: tuple, problems: list[Problem]) -> int | None:
    special = userfiles.check_regular(template, "identity template", key="identity.template")
    if special:  # a FIFO, a device: said as such, not "not found" with a guess at a name
        problems.append(special)
        return None
    if not template.is_file():
        problems.append(loaded.problem(f"identity template not found: {template}", ("identity", "template"),
                                       "check the path: it is relative to the recipe file"))
        return None
    ident = loaded.recipe.identity
    try:
        with tempfile.TemporaryDirectory() as tmp:  # render to prove it renders; nothing is kept
            files = ds.render_identity(template, Path(tmp), name=ident.name.model_dump(),
                                       author=ident.author.model_dump())
    except UserError as exc:
        problems.extend(exc.problems)
        return None
    return files.train_rows


def check_general_probes(loaded: LoadedRecipe, path: Path | None) -> list[Problem]:
    """The retention probes are read before training, so a broken file never costs a run."""
    v = loaded.recipe.verify
    if not (v.enabled and v.retention):
        return []
    special = userfiles.check_regular(path, "general probe file", key="verify.general_probes") if path else None
    if special:
        return [special]
    if path is not None and not path.is_file():
        guess = nearby_name(path)
        return [loaded.problem(f"general probe file not found: {path}", ("verify", "general_probes"),
                               f"did you mean {guess}?" if guess else "the path is relative to the recipe file; "
                               "remove the key for the bundled set")]
    try:
        load_probes(path or bundled_general_probes())
    except UserError as exc:
        return exc.problems
    return []
