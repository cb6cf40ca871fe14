#!/usr/bin/env bash
# The GPU checks of gankit in one call, for a lent GPU machine (../.library/device/METHOD.md: one prepared
# script, per-step time limits, logs under $OUT). Run from the repository root:
#
#     bash benchmarks/gpu_check.sh            # on the GPU machine; $OUT defaults to ./gpu_out
#
# Steps: the CUDA tests (tests/test_cuda.py and the Inception tests, which include GPU-vs-CPU features),
# benchmarks/metrics_speed.py for 10k + 10k images against torch-fidelity, benchmarks/train_speed.py in float32
# and bf16 autocast. Each benchmark rewrites its own block of docs/benchmarks.md, copied to $OUT at the end.
# torch-fidelity is installed from a carried wheel (.whl/) when the machine lacks it and cannot reach PyPI:
#     pip download --no-deps --only-binary=:all: -d .whl torch-fidelity==0.4.0
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
PY=${PY:-python3}

if ! "$PY" -c "import torch_fidelity" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/gankit_site .whl/torch_fidelity-*.whl \
        && export PYTHONPATH=/tmp/gankit_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
    "$PY" -c "import torch, torchvision, torch_fidelity; print('torch', torch.__version__, '| torchvision',
torchvision.__version__, '| torch-fidelity', torch_fidelity.__version__, '|', torch.cuda.get_device_name())"
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, log to $OUT/NAME.log, one summary line
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    echo "$name: rc=$rc in $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

step tests 120 "$PY" -m pytest -q -p no:cacheprovider -n 4 tests/test_cuda.py tests/test_metrics_inception.py
step metrics_speed 200 "$PY" benchmarks/metrics_speed.py --n 10000 --device cuda --batch 200 --variants
step train_speed 80 "$PY" benchmarks/train_speed.py --device cuda
step train_speed_amp 80 "$PY" benchmarks/train_speed.py --device cuda --amp
step train_speed_64 80 "$PY" benchmarks/train_speed.py --device cuda --resolution 64 --channels 3 --batch 128
step train_speed_64_amp 80 "$PY" benchmarks/train_speed.py --device cuda --resolution 64 --channels 3 --batch 128 --amp
cp docs/benchmarks.md "$OUT/benchmarks.md"

for f in tests metrics_speed train_speed train_speed_amp train_speed_64 train_speed_64_amp; do
    echo "== $f"; tail -n 14 "$OUT/$f.log"
done
cat "$OUT/summary.txt"
