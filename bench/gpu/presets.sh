#!/usr/bin/env bash
# On the offline GPU host, from the project root, with ms-swift's wheels in .whl/:
#   bash bench/gpu/presets.sh OUT_DIR
# The 24 GB identity preset (micro-batch 16 x 1) against the blog-post command's split (1 x 16), same
# effective batch, both through `swiftkit run`, on Qwen2.5-7B's shape with the allocator capped at 23 GiB.
set -u
out=${1:-/tmp/gpu-result}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MODELSCOPE_CACHE=/tmp/ms SWIFTKIT_CACHE_DIR=/tmp/skcache
export SWIFTKIT_SWIFT="python3 -m swift.cli.main"
[ -f /tmp/Qwen2.5-7B-shape/model.safetensors ] || python3 bench/gpu/make_qwen_shape.py 7b /tmp/Qwen2.5-7B-shape 2>&1 | tail -1
common=(--set model.id=/tmp/Qwen2.5-7B-shape --set model.model_type=qwen2 --set model.template=qwen2_5
        --set gpu.emulate_memory_gb=23 --set swift.report_to=none --no-verify)
for split in "16 1" "1 16"; do
  set -- $split
  start=$(date +%s)
  python3 -m swiftkit.cli run recipes/presets/24gb-identity.yaml "${common[@]}" \
    --set train.micro_batch_size=$1 --set train.gradient_accumulation=$2 --set output.dir=/tmp/preset-$1x$2 \
    2>&1 | grep -E "^swiftkit|steps|step [0-9]+/" | tail -6 | tee "$out/preset-$1x$2.txt"
  echo "wall $(( $(date +%s) - start )) s" | tee -a "$out/preset-$1x$2.txt"
  cp /tmp/preset-$1x$2/v*/swiftkit-run.json "$out/preset-$1x$2.record.json"
done
