#!/usr/bin/env bash
# A real model's GGUF on the offline GPU host, whose commands carry at most 64 MiB of files each. From the
# project root, with the file split here (`split -b 25M -d FILE part.`) into ignored folders, each carried by
# one command (the first beside ms-swift's wheels in .whl/), run back to back while the host is held:
#   bash bench/real/gpu.sh stage .gg1            # installs .whl/ (when carried), keeps the part in /tmp/parts
#                                                # (a wheel in a carried folder is installed: the GPU host has no
#                                                # `gguf`, which ../shared/gpu's list lacks: `pip download gguf`)
#   bash bench/real/gpu.sh stage .gg2 .gg3
#   bash bench/real/gpu.sh join SHA256 NAME.gguf # joins /tmp/parts/* in order; refuses unless the sha256 matches
#   bash bench/real/gpu.sh sweep OUT NAME.gguf CONFIG...   # bench/real/sweep.py in bfloat16 on the GPU
#   bash bench/real/gpu.sh gguf OUT NAME.gguf CONFIG TYPE... # more GGUF types of a config swept with --gguf
#   bash bench/real/gpu.sh serve OUT CONFIG      # a swept run, then its bfloat16 merge, through `swiftkit serve`
#                                                # (swift deploy, transformers) with bench/serve_load.py, verified
#                                                # at --min-agreement 0 (the agreement measured, never refused)
# A sweep keeps its results in /tmp/sweep-NAME on the host (a later sweep adds to them, and a `best` config
# reads them) and leaves OUT/sweep-NAME.tgz (the host returns at most 8 files).
set -u
cmd=$1; shift
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MODELSCOPE_CACHE=/tmp/ms TOKENIZERS_PARALLELISM=false
export SWIFTKIT_CACHE_DIR=/tmp/skcache SWIFTKIT_SWIFT="python3 -m swift.cli.main"
case $cmd in
  stage)
    if ls .whl/*.whl > /dev/null 2>&1 && [ ! -d /tmp/site/swift ]; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        2>&1 | grep -v -i warning | tail -3
    fi
    mkdir -p /tmp/parts
    for d in "$@"; do
      if ls "$d"/*.whl > /dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
          "$d"/*.whl 2>&1 | grep -v -i warning | tail -3
      fi
      find "$d" -maxdepth 1 -type f ! -name '*.whl' -exec cp {} /tmp/parts/ \;
    done
    ls -la /tmp/parts; python3 -c "import swift, gguf; print('ms-swift', swift.__version__, 'gguf ok')" ;;
  join)
    want=$1 name=$2
    cat $(ls /tmp/parts/* | sort) > "/tmp/$name.part"
    got=$(sha256sum "/tmp/$name.part" | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then mv "/tmp/$name.part" "/tmp/$name"; echo "joined /tmp/$name ($got)"
    else echo "sha256 $got, not $want: refused"; rm -f "/tmp/$name.part"; exit 1; fi ;;
  sweep)
    out=$1 model=$2; shift 2
    keep=/tmp/sweep-${model%.gguf}; mkdir -p "$keep"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$keep/gpu.txt"
    python3 -c "import torch, transformers, peft, swift; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'peft', peft.__version__, 'ms-swift', swift.__version__)" 2>/dev/null | tee -a "$keep/gpu.txt"
    python3 bench/real/sweep.py --gpu --dtype bfloat16 --model "/tmp/$model" --out "$keep" "$@"
    tar czf "$out/sweep-${model%.gguf}.tgz" -C /tmp "sweep-${model%.gguf}" ;;
  gguf)  # gguf OUT NAME.gguf CONFIG TYPE...: more GGUF types of a swept config's merged float32 export
    out=$1 model=$2 name=$3; shift 3
    keep=/tmp/sweep-${model%.gguf}
    python3 bench/real/sweep.py gguf "/tmp/real-runs/$name/merged-float32" "$keep/$name.gguf-more" "$@"
    tar czf "$out/sweep-${model%.gguf}.tgz" -C /tmp "sweep-${model%.gguf}" ;;
  serve)
    out=$1 name=$2
    run=$(ls -d /tmp/real-runs/$name/v*/ | tail -1)
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    python3 -m swiftkit.cli export "$run" --dtype bfloat16 --output "/tmp/real-runs/$name/merged-bfloat16" \
      > "$out/serve-$name.export.txt" 2>&1; echo "export bfloat16: exit $?"
    for target in "$run" "/tmp/real-runs/$name/merged-bfloat16"; do
      what=$([ "$target" = "$run" ] && echo "the adapter on its base" || echo "its bfloat16 merge")
      python3 bench/serve_load.py "$target" --label "$name (real weights, tuned, bfloat16): $what, one $gpu" \
        --min-agreement 0 --requests 8 --max-tokens 64 2>&1 | tail -12
    done
    cp bench/results/serve.md "$out/serve.md"
    find /tmp/real-runs/$name -name 'serve-*.json' -exec cp {} "$out/" \; ;;
esac
