#!/usr/bin/env bash
# On the offline GPU host (one GPU), from the project root, with ms-swift's wheels in .whl/:
#   bash bench/gpu/speed.sh OUT_DIR
# The whole identity job (train + verify) of the 24 GB preset on Qwen2.5-7B's shape (random bf16 weights, the
# real Qwen tokenizer, allocator capped at 23 GiB), through `swiftkit run`, side by side in one session:
#   preset       as bundled (verify.batch_size 32); swiftkit's caches warm (flag catalog, row lengths), no
#                cached answers
#   levers       verify.batch_size 256 (each swift infer answers all its probes in one batch) and
#                save_only_model (no optimizer state in the checkpoint); no cached answers
#   levers-warm  the same again: the base model's answers come from swiftkit's answer cache (one model load)
#   one-engine   the preset as bundled since: batch 256, and tuned and base answered by one engine (one model
#                load, one ms-swift start-up for verification); no cached answers
#   prewarm      as bundled now: one-engine plus verify.prewarm (auto on GPUs: the verifying engine imports
#                ms-swift while training runs); no cached answers
# ONLY="one-engine prewarm" runs only the runs named.
# OUT_DIR gets each run's record (phase timings) and printed output.
set -u
out=${1:-/tmp/gpu-result}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MODELSCOPE_CACHE=/tmp/ms TOKENIZERS_PARALLELISM=false
export SWIFTKIT_SWIFT="python3 -m swift.cli.main" SWIFTKIT_CACHE_DIR=/tmp/skcache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
start=$(date +%s)
[ -f /tmp/Qwen2.5-7B-shape/config.json ] || python3 bench/gpu/make_qwen_shape.py 7b /tmp/Qwen2.5-7B-shape 2>&1 | grep -v Warn | tail -1
echo "model built in $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
common=(--set model.id=/tmp/Qwen2.5-7B-shape --set model.model_type=qwen2 --set model.template=qwen2_5
        --set swift.report_to=none --set gpu.emulate_memory_gb=23)
for pass in cold warm; do  # the first validate fills the catalog and row-length caches
  s=$(date +%s.%N)
  python3 -m swiftkit.cli validate recipes/presets/24gb-identity.yaml "${common[@]}" > /dev/null 2>&1
  python3 -c "import time; print('validate ($pass caches): %.1f s' % (time.time() - $s))" | tee -a "$out/gpu.txt"
done
run() {  # NAME ARGS...
  local name=$1; shift
  local start=$(date +%s.%N)
  python3 -m swiftkit.cli run recipes/presets/24gb-identity.yaml "${common[@]}" --set output.dir=/tmp/runs/$name "$@" \
    > "$out/$name.txt" 2>&1
  local code=$?
  local wall=$(python3 -c "import time; print(round(time.time() - $start, 1))")
  echo "$name: exit $code, wall $wall s" | tee -a "$out/walls.txt"
  grep -E "steps [0-9]+, final|exact answers, trained|retention score" "$out/$name.txt" | tail -3
  cp /tmp/runs/$name/v*/swiftkit-run.json "$out/$name.record.json" 2>/dev/null
}
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
rm -rf /tmp/skcache/answers
want preset && run preset --set verify.batch_size=32
rm -rf /tmp/skcache/answers
levers=(--set verify.batch_size=256 --set swift.save_only_model=true)
want levers && run levers "${levers[@]}"
want levers-warm && run levers-warm "${levers[@]}"
rm -rf /tmp/skcache/answers
want one-engine && run one-engine --set verify.prewarm=false
rm -rf /tmp/skcache/answers
want prewarm && run prewarm
