#!/usr/bin/env bash
# On the offline GPU host (one GPU), from the project root, with ms-swift's wheels (and liger-kernel's) in .whl/:
#   bash bench/gpu/step_profile.sh OUT_DIR
# Where a step of the 24 GB identity preset goes, and what the levers a wrapper can render buy, side by side in
# one session through `swiftkit run` on Qwen2.5-7B's shape (random bf16 weights, the real Qwen tokenizer, the
# training process's allocator capped at 23 GiB):
#   profile        the preset with --profile-steps 5 (step-profile.json, and verification's first engine call)
#   preset         the preset as bundled, unwatched (--no-verify)
#   verified       the preset as bundled, verification included
#   liger          swift.use_liger_kernel (fused RMSNorm, SwiGLU, RoPE and the loss over the vocabulary; no logits,
#                  so no token accuracy either)
#   nockpt         gradient checkpointing off (no recompute)
#   liger-nockpt   liger and gradient checkpointing off
#   dropout0       lora.dropout 0 (no dropout kernels on every LoRA input)
#   fused-adamw    swift.optim adamw_torch_fused
#   cudnn          gpu.cudnn_attention: true, PyTorch's own choice of attention kernel (cuDNN on Hopper): the
#                  presets before sp4, which measured it off against on (results/step-profile); -profile: profiled
#                  (cudnn-verified: with verification, beside `verified`)
#   liger-nockpt-profile  liger-nockpt with --profile-steps 5
# RUNS="profile preset ..." picks and orders them; EXTRA="--set k=v ..." is added to every run; a run is not
# started once DEADLINE seconds (default 480) have passed since the script began.
# OUT_DIR gets each run's record, printed output and step profile, and all of them in OUT_DIR/results.tgz (made
# again after every run, without the traces, so that a session cut short keeps what finished; COPY_TO=DIR copies
# it there too). A name with a suffix (preset.2) runs its variant again.
set -u
began=$(date +%s)
out=${1:-/tmp/gpu-result}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MODELSCOPE_CACHE=/tmp/ms TOKENIZERS_PARALLELISM=false
export SWIFTKIT_SWIFT="python3 -m swift.cli.main" SWIFTKIT_CACHE_DIR=/tmp/skcache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, transformers, peft, swift; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'ms-swift', swift.__version__)" 2>/dev/null | tee -a "$out/gpu.txt"
start=$(date +%s)
[ -f /tmp/Qwen2.5-7B-shape/config.json ] || python3 bench/gpu/make_qwen_shape.py 7b /tmp/Qwen2.5-7B-shape 2>&1 | grep -v Warn | tail -1
echo "model built in $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
common=(--set model.id=/tmp/Qwen2.5-7B-shape --set model.model_type=qwen2 --set model.template=qwen2_5
        --set swift.report_to=none --set gpu.emulate_memory_gb=23 ${EXTRA:-})
run() {  # NAME ARGS...
  local name=$1; shift
  local s=$(date +%s.%N)
  rm -rf /tmp/runs/$name
  python3 -m swiftkit.cli run recipes/presets/24gb-identity.yaml "${common[@]}" --set output.dir=/tmp/runs/$name "$@" \
    > "$out/$name.txt" 2>&1
  local code=$?
  local wall=$(python3 -c "import time; print(round(time.time() - $s, 1))")
  echo "$name: exit $code, wall $wall s" | tee -a "$out/walls.txt"
  grep -E "steps [0-9]+, final|a step:" "$out/$name.txt" | tail -2
  for f in /tmp/runs/$name/v*/swiftkit-run.json /tmp/runs/$name/v*/step-profile.json /tmp/runs/$name/v*/verify/answers-profile.json; do
    [ -f "$f" ] && cp "$f" "$out/$name.$(basename "$f")"
  done
  for f in /tmp/runs/$name/v*/step-profile.trace.json.gz; do [ -f "$f" ] && cp "$f" "$out/$name.trace.json.gz"; done
  tar czf /tmp/results.tgz.tmp -C "$out" --exclude='results.tgz' --exclude='*.trace.json.gz' . && mv /tmp/results.tgz.tmp "$out/results.tgz"
  [ -n "${COPY_TO:-}" ] && cp "$out/results.tgz" "$COPY_TO/"
}
liger=(--set swift.use_liger_kernel=true)
for name in ${RUNS:-profile preset liger liger-nockpt dropout0 fused-adamw}; do
  if [ $(( $(date +%s) - began )) -gt ${DEADLINE:-480} ]; then echo "$name: not started (deadline)" | tee -a "$out/walls.txt"; continue; fi
  case ${name%%.*} in  # preset.2: the preset again, for the spread between identical runs
    profile) run $name --profile-steps 5 ;;
    preset) run $name --no-verify ;;
    verified) run $name ;;
    nockpt) run $name --no-verify --set train.gradient_checkpointing=false ;;
    liger) run $name --no-verify "${liger[@]}" ;;
    liger-profile) run $name --no-verify --profile-steps 5 "${liger[@]}" ;;
    liger-nockpt) run $name --no-verify "${liger[@]}" --set train.gradient_checkpointing=false ;;
    liger-nockpt-profile) run $name --no-verify --profile-steps 5 "${liger[@]}" --set train.gradient_checkpointing=false ;;
    dropout0) run $name --no-verify --set lora.dropout=0 ;;
    fused-adamw) run $name --no-verify --set swift.optim=adamw_torch_fused ;;
    cudnn) run $name --no-verify --set gpu.cudnn_attention=true ;;
    cudnn-verified) run $name --set gpu.cudnn_attention=true ;;
    cudnn-profile) run $name --profile-steps 5 --set gpu.cudnn_attention=true ;;
    *) run $name --no-verify ${ARGS:-} ;;
  esac
done
