#!/usr/bin/env bash
# On the offline GPU host (one GPU), from the project root, with ms-swift's wheels in .whl/:
#   RUNS="bundled seeds" bash bench/gpu/whole_job.sh OUT_DIR
# The whole identity job, `swiftkit run` to a verified scorecard, on Qwen2.5-7B's shape (random bf16 weights, the
# real Qwen tokenizer, allocator capped at 23 GiB: a 24 GB card), runs side by side in one session:
#   bundled  recipes/presets/24gb-identity.yaml exactly as shipped (micro-batch 16, verification as bundled)
#   before   the same preset and swiftkit as of an earlier commit, extracted to $BEFORE_TREE
#            (e.g. `git archive REV swiftkit recipes datasets | tar -x -C before-tree`)
#   seeds    the blog-post command's settings through the same path: micro-batch 1 x accumulation 16,
#            dataloader_num_workers 4, tensorboard plots on
#   fast     the preset with what this benchmark found (see bench/results/gpu-whole-job/README.md)
#   warm     `fast` again: the base model's answers come from swiftkit's cache
#   train-MBxGA-gc|nogc  training only (--no-verify), micro-batch MB x accumulation GA, checkpointing on|off:
#            which split trains the preset fastest (e.g. train-16x1-gc train-8x2-nogc train-4x4-nogc)
# None but `warm` has cached answers. Every ms-swift line is kept with its time (bench/gpu/stamp.py) in
# OUT_DIR/stamps-NAME/; each run's record (phase timings) and printed output go in OUT_DIR.
set -u
out=${1:-/tmp/gpu-result}
mkdir -p "$out"
out=$(cd "$out" && pwd) root=$PWD
python3 -m pip install -q --no-index --no-deps --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MODELSCOPE_CACHE=/tmp/ms TOKENIZERS_PARALLELISM=false
export SWIFTKIT_CACHE_DIR=/tmp/skcache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
start=$(date +%s)
[ -f /tmp/Qwen2.5-7B-shape/config.json ] || python3 bench/gpu/make_qwen_shape.py 7b /tmp/Qwen2.5-7B-shape 2>&1 | grep -v Warn | tail -1
echo "model built in $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
common=(--set model.id=/tmp/Qwen2.5-7B-shape --set model.model_type=qwen2 --set model.template=qwen2_5
        --set gpu.emulate_memory_gb=23)
s=$(date +%s.%N)  # fills the flag catalog and row-length caches, as any first validate or run does
SWIFTKIT_SWIFT="python3 -m swift.cli.main" python3 -m swiftkit.cli validate recipes/presets/24gb-identity.yaml "${common[@]}" > /dev/null 2>&1
python3 -c "import time; print('validate (cold caches): %.1f s' % (time.time() - $s))" | tee -a "$out/gpu.txt"
run() {  # NAME ARGS...
  local name=$1; shift
  local start=$(date +%s.%N) tree=$PWD
  [ "$name" = before ] && tree=$BEFORE_TREE
  # from the tree's own folder: `python3 -m` puts the current folder first on the path
  (cd "$tree" && SWIFTKIT_SWIFT="python3 $root/bench/gpu/stamp.py $out/stamps-$name python3 -m swift.cli.main" \
    PYTHONPATH=/tmp/site:$tree python3 -m swiftkit.cli run recipes/presets/24gb-identity.yaml "${common[@]}" \
    --set output.dir=/tmp/runs/$name "$@" > "$out/$name.txt" 2>&1)
  local code=$?
  local wall=$(python3 -c "import time; print(round(time.time() - $start, 1))")
  echo "$name: exit $code, wall $wall s" | tee -a "$out/walls.txt"
  grep -E "steps [0-9]+, final|exact answers, trained|retention score" "$out/$name.txt" | tail -3
  cp /tmp/runs/$name/v*/swiftkit-run.json "$out/$name.record.json" 2>/dev/null
  cp /tmp/runs/$name/v*/verify/*.log "$out/stamps-$name/" 2>/dev/null
}
fast=(${FAST:-})
for name in ${RUNS:-bundled seeds fast warm}; do
  [ "$name" = warm ] || rm -rf /tmp/skcache/answers
  case $name in
    bundled|before) run "$name" ;;
    seeds) run seeds --set train.micro_batch_size=1 --set train.gradient_accumulation=16 \
                     --set swift.dataloader_num_workers=4 ;;
    fast|warm) run "$name" "${fast[@]}" ;;
    train-*) IFS=x- read -r _ mb ga gc <<< "$name"
             run "$name" --no-verify --set train.micro_batch_size="$mb" --set train.gradient_accumulation="$ga" \
                         --set train.gradient_checkpointing=$([ "$gc" = gc ] && echo true || echo false) "${fast[@]}" ;;
  esac
done
