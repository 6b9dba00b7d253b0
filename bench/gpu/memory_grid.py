"""The memory grid: many short LoRA runs through `swiftkit run` on Qwen2.5 shapes, each with rows of one
token length, recording the peak that ms-swift reports (`memory(GiB)`: max_memory_reserved) beside the
settings, so that `swiftkit plan` can be fitted on some of them and judged on the rest.

On the GPU host, from the project root, after the models are built (bench/gpu/memory.sh does both):
    python3 bench/gpu/memory_grid.py OUT_DIR CASES_JSON
CASES_JSON: [{"name", "size", "mb", "rank", "gc", "tokens", "split"}, ...]. Runs go several at a time
(the GPU has room for them; each process's peak is its own), each under an allocator cap that only keeps
them from starving one another; a case that runs out under its cap is recorded as such, not retried.
Results go to OUT_DIR/measured.jsonl as they finish, so a cut-off run still leaves what it measured.
"""
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Lock

from transformers import AutoConfig, AutoTokenizer

OUT, CASES = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
WORK = Path("/tmp/mem")
SHAPES = Path("/tmp/shapes")
GPU_BUDGET_GIB = float(os.environ.get("GRID_BUDGET_GIB", "128"))
# ms-swift's model type and template by shape; Qwen2.5's unless named here
KINDS = {"smol": ("llama", "chatml")}
FILLER = ("The quick brown fox jumps over the lazy dog while the river runs quietly past the old mill. "
          "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。Numbers like 3.14159 and 2.71828 appear too. ")
lock = Lock()


def data_file(size: str, tokens: int, shortest: int | None = None) -> Path:
    """64 rows whose chat-templated length is `tokens` (the template's default system prompt included),
    so every micro-batch has the same padded length; with `shortest`, lengths spread evenly from
    shortest to tokens (ms-swift shuffles them), as real data is."""
    path = WORK / "data" / f"{size}-{shortest or tokens}-{tokens}.jsonl"
    if path.exists():
        return path
    tok = AutoTokenizer.from_pretrained(SHAPES / size)
    question = "Please repeat the following text."
    overhead = len(tok(tok.apply_chat_template([{"role": "user", "content": question},
                                                {"role": "assistant", "content": ""}], tokenize=False),
                       add_special_tokens=False)["input_ids"])
    ids = tok(FILLER * (tokens // 10 + 10))["input_ids"]
    lengths = [tokens] * 64 if shortest is None else [shortest + (tokens - shortest) * k // 63 for k in range(64)]
    rows = [{"messages": [{"role": "user", "content": question},
                          {"role": "assistant", "content": tok.decode(ids[: max(1, n - overhead)])}]}
            for n in lengths]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def rough_gib(case: dict) -> float:
    """A deliberately generous guess, only to schedule and cap the runs (not the plan being tested)."""
    cfg = AutoConfig.from_pretrained(SHAPES / case["size"])
    h, i, n, v = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    params = n * (4 * h * h + 3 * h * i) + v * h * (1 if cfg.tie_word_embeddings else 2)
    t = case["mb"] * case["tokens"]
    act = t * n * h * 2 * 2 + t * (20 * h + 6 * i) * 2 if case["gc"] else t * n * (24 * h + 8 * i) * 2
    return (params * 2 + act + t * v * 18) / 2**30 + 3


def cap_of(case: dict) -> float:
    return case.get("cap") or min(GPU_BUDGET_GIB - 2, rough_gib(case) * 1.5 + 6)


def run(case: dict) -> None:
    name = case["name"]
    cap = cap_of(case)
    kind = KINDS.get(case["size"], ("qwen2", "qwen2_5"))
    recipe = WORK / "recipes" / f"{name}.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(json.dumps({
        "name": name,
        "model": {"id": str(SHAPES / case["size"]), "model_type": kind[0], "template": kind[1],
                  "dtype": "bfloat16"},
        "datasets": [{"path": str(data_file(case["size"], case["tokens"], case.get("shortest")))}],
        "lora": {"rank": case["rank"], "alpha": 4 * case["rank"]},
        "train": {"max_steps": case.get("steps", 4), "effective_batch_size": case.get("eff", case["mb"]), "micro_batch_size": case["mb"],
                  "max_length": 2048, "gradient_checkpointing": case["gc"], "logging_steps": 1,
                  "save_total_limit": 1},
        "gpu": {"count": 1, "emulate_memory_gb": round(cap, 1)},
        "verify": {"enabled": False},
        "on_oom": {"max_retries": 0},
        "output": {"dir": str(WORK / "out" / name)},
        "swift": {"report_to": "none"},
    }), encoding="utf-8")
    start = time.monotonic()
    argv = [sys.executable, "-m", "swiftkit.cli", "run", str(recipe), "--quiet"]
    if case.get("preset"):  # a bundled preset as it is, on the model of this shape
        argv = [sys.executable, "-m", "swiftkit.cli", "run", case["preset"], "--quiet", "--no-verify",
                *[a for k, v in case.get("set", {}).items() for a in ("--set", f"{k}={v}")],
                "--set", f"model.id={SHAPES / case['size']}", "--set", f"model.model_type={kind[0]}",
                "--set", f"model.template={kind[1]}", "--set", f"gpu.emulate_memory_gb={round(cap, 1)}",
                "--set", f"output.dir={WORK / 'out' / name}", "--set", "swift.report_to=none"]
    env = dict(os.environ)
    if case.get("expandable"):
        env["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
    if case.get("alloc_conf"):  # what the user's environment says wins over swiftkit's default
        env["PYTORCH_CUDA_ALLOC_CONF"] = case["alloc_conf"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    peaks, lengths = [], None
    for log in sorted((WORK / "out" / name).glob("v*/logging.jsonl")):
        for line in log.read_text().splitlines():
            row = json.loads(line)
            if "memory(GiB)" in row:
                peaks.append(float(row["memory(GiB)"]))
    for log in sorted((WORK / "out" / name).glob("v*/swiftkit.log")):
        for line in log.read_text(errors="replace").splitlines():
            if "Dataset Token Length" in line and lengths is None:
                lengths = line.split("Dataset Token Length:")[1].strip()
        (OUT / "logs").mkdir(exist_ok=True)
        (OUT / "logs" / f"{name}.log").write_text(log.read_text(errors="replace")[-6000:])
    planned = None
    for rec in sorted((WORK / "out" / name).glob("v*/swiftkit-run.json")):
        planned = json.loads(rec.read_text()).get("memory_plan") or planned
    result = {**case, "memory_plan": planned, "measured_gib": max(peaks) if peaks else None, "per_step_gib": peaks,
              "exit": proc.returncode, "cap_gib": round(cap, 1), "wall_s": round(wall, 1),
              "dataset_token_length": lengths, "oom": "OutOfMemory" in proc.stderr + proc.stdout}
    with lock:
        with open(OUT / "measured.jsonl", "a") as f:
            f.write(json.dumps(result) + "\n")
        print(f"{name}: {result['measured_gib']} GiB exit {proc.returncode} cap {cap:.0f} {wall:.0f} s", flush=True)
    subprocess.run(["rm", "-rf", str(WORK / "out" / name)])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        if not case.get("preset"):
            data_file(case["size"], case["tokens"], case.get("shortest"))
    caps = {c["name"]: cap_of(c) for c in CASES}
    pending = sorted(CASES, key=lambda c: (c["split"] != "fit", -caps[c["name"]]))
    running: dict = {}
    with ThreadPoolExecutor(max_workers=6) as pool:
        while pending or running:
            for name in [n for n, f in running.items() if f.done()]:
                running.pop(name).result()
            used = sum(caps[n] for n in running)
            for case in list(pending):
                if used + caps[case["name"]] <= GPU_BUDGET_GIB and len(running) < 5:
                    pending.remove(case)
                    running[case["name"]] = pool.submit(run, case)
                    used += caps[case["name"]]
            time.sleep(2)


main()
