#!/usr/bin/env bash
# On the offline GPU host, from the project root, with ms-swift's wheels in .whl/:
#   bash bench/gpu/run.sh OUT_DIR
# Installs ms-swift beside the host's torch, builds the 7B-shaped model, and runs the OOM-ladder recipe
# through `swiftkit run`; copies the run record and logs to OUT_DIR.
set -u
out=${1:-/tmp/gpu-result}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MODELSCOPE_CACHE=/tmp/ms SWIFTKIT_CACHE_DIR=/tmp/skcache
export SWIFTKIT_SWIFT="python3 -m swift.cli.main"   # a --target install has no console scripts
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, transformers, peft, swift; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'ms-swift', swift.__version__)" 2>/dev/null | tee -a "$out/gpu.txt"
start=$(date +%s)
python3 bench/gpu/make_qwen_shape.py 7b /tmp/Qwen2.5-7B-shape 2>&1 | grep -v Warning | tail -3
echo "model built in $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
python3 -m swiftkit.cli validate bench/gpu/oom-ladder.yaml
start=$(date +%s)
python3 -m swiftkit.cli run bench/gpu/oom-ladder.yaml 2>&1 | tee "$out/swiftkit-run.txt" | grep -v "^\s*$" | grep -v "it/s\]$" | tail -60
echo "swiftkit run exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
# one archive: the run records, swiftkit's logs and ms-swift's logging.jsonl of every attempt
(cd /tmp/gpu-out && tar czf "$out/runs.tgz" --exclude='checkpoint-*' --exclude='*.safetensors' v*-* data)
ls -la "$out"
