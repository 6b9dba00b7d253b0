#!/usr/bin/env bash
# On the offline GPU host (one GPU), from the project root, with ms-swift's wheels and DeepSpeed's in .whl/
# (../shared/gpu/README.md says how):
#   bash bench/gpu/scaleout.sh OUT_DIR
# Through `swiftkit run`, on Qwen2.5-7B's shape (random bf16 weights, the real Qwen tokenizer) and the 24 GB
# identity preset, side by side in one session:
#   zero2, zero3      distributed.deepspeed on one GPU (torchrun with one process), no verification
# OUT_DIR gets each run's record (phase timings, per-rank memory) and its printed output. (The whole-job
# speed runs that first followed these did not fit the same 600 s session: bench/gpu/speed.sh has them.)
set -u
out=${1:-/tmp/gpu-result}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MODELSCOPE_CACHE=/tmp/ms TOKENIZERS_PARALLELISM=false
export SWIFTKIT_SWIFT="python3 -m swift.cli.main"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, transformers, peft, swift, deepspeed; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'ms-swift', swift.__version__, 'deepspeed', deepspeed.__version__)" 2>/dev/null | tee -a "$out/gpu.txt"
start=$(date +%s)
[ -f /tmp/Qwen2.5-7B-shape/config.json ] || python3 bench/gpu/make_qwen_shape.py 7b /tmp/Qwen2.5-7B-shape 2>&1 | grep -v Warn | tail -1
echo "model built in $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
common=(--set model.id=/tmp/Qwen2.5-7B-shape --set model.model_type=qwen2 --set model.template=qwen2_5
        --set swift.report_to=none)
run() {  # NAME CACHE_DIR ARGS...
  local name=$1 cache=$2; shift 2
  local start=$(date +%s.%N)
  SWIFTKIT_CACHE_DIR=$cache python3 -m swiftkit.cli run recipes/presets/24gb-identity.yaml "${common[@]}" \
    --set output.dir=/tmp/runs/$name "$@" > "$out/$name.txt" 2>&1
  local code=$?
  local wall=$(python3 -c "import time; print(round(time.time() - $start, 1))")
  echo "$name: exit $code, wall $wall s" | tee -a "$out/walls.txt"
  grep -E "^swiftkit: (trained|plan)|steps [0-9]+, final|exact answers|retention score|mem/rank" "$out/$name.txt" | tail -5
  cp /tmp/runs/$name/v*/swiftkit-run.json "$out/$name.record.json" 2>/dev/null
}
run zero2 /tmp/c-zero2 --set distributed.deepspeed=zero2 --no-verify
run zero3 /tmp/c-zero3 --set distributed.deepspeed=zero3 --no-verify
ls "$out"
