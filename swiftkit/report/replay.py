"""The run report's replay section: how many rows of the base model's own answers trained, their share of the
data, where the prompts came from, what was dropped and why, and what generating them cost."""
from __future__ import annotations

from swiftkit.report.html import esc, note, num, seconds, table

DROPPED = (("cut_off", "cut off at max_new_tokens"), ("empty", "empty"), ("identity", "named the new identity"))


def replay(r: dict) -> str:
    made = r.get("replay")
    if isinstance(made, dict) and made.get("error"):
        err = made["error"]
        diagnosis = err.get("diagnosis") or {}
        return note(f"The base model did not answer the replay prompts of datasets[{esc(made.get('entry'))}]: "
                    f"{esc(diagnosis.get('message') or 'exit ' + str(err.get('returncode')))}. The parts answered "
                    f"before are cached; the next run asks only for the rest. Log: <code>{esc(err.get('log'))}</code>")
    if not isinstance(made, list) or not made:
        return ""
    rows = []
    for m in made:
        if not isinstance(m, dict):
            continue
        dropped = m.get("dropped") or {}
        why = ", ".join(f"{esc(dropped[k])} {label}" for k, label in DROPPED if dropped.get(k)) or "none"
        cost = (f"{seconds(m.get('seconds'))} for {esc(m.get('generated'))} answers"
                if m.get("generated") else "cached")
        rows.append([f"datasets[{esc(m.get('index'))}]: {esc(m.get('prompts'))} "
                     f"<small>({esc(m.get('pool'))} prompts, seed {esc(m.get('seed'))})</small>",
                     esc(m.get("asked")), esc(m.get("kept")), num(m.get("share"), ".0%"), why,
                     esc(m.get("answer_tokens")), cost])
    return (note("The base model's own greedy answers to general prompts, generated before training and mixed in, "
                 "so that the tuned model keeps answering as it did. Answers cut off at max_new_tokens, empty ones "
                 "and ones that already named the new identity are not trained on.")
            + table(["prompts", "asked", "trained", "share of rows", "dropped", "answer tokens", "generation"], rows,
                    cls="stack", numeric=(1, 2, 3, 5)))
