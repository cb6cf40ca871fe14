#!/usr/bin/env bash
# The GPU checks of gankit in one call, for a lent GPU machine (one prepared script, a time limit per step, logs
# under $OUT). Run from the repository root:
#
#     bash benchmarks/gpu_check.sh            # on the GPU machine; $OUT defaults to ./gpu_out (~7.5 min at most)
#     bash benchmarks/gpu_check.sh --smoke    # on a CPU: every Python part at tiny sizes, nothing written
#
# Steps (issue 16; limits sum to 450 s, under 8 minutes with the set-up):
#   tests          tests/test_cuda.py and the Inception tests (GPU-vs-CPU features)               60 s
#   train_64       DCGAN 3x64 px batch 256: plain fp32 loop (the PyTorch example), plain bf16 +
#                  channels_last, gankit default, reuse_fakes, best (reuse_fakes + bf16)        110 s
#   ddp1           gankit single process vs the DDP path at world size 1 (same 64 px batch 256)   50 s
#   stylegan2      StyleGAN2 s/kimg at 64 and 128 px, float32 (published: 13 s/kimg, 128 px, V100) 80 s
#   metrics        FID 10k vs 10k, gankit against torch-fidelity (its default, TF32 allowed)       150 s
# Each benchmark rewrites its own block of docs/benchmarks.md, copied to $OUT at the end.
# torch-fidelity is installed from a carried wheel (.whl/) when the machine lacks it and cannot reach PyPI:
#     pip download --no-deps --only-binary=:all: -d .whl torch-fidelity==0.4.0
set -u
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
: > "$OUT/summary.txt"
PY=${PY:-python3}

if ! "$PY" -c "import torch_fidelity" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/gankit_site .whl/torch_fidelity-*.whl \
        && export PYTHONPATH=/tmp/gankit_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}

{
    if [ "$SMOKE" = 0 ]; then
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
    fi
    "$PY" -c "import torch, torchvision, torch_fidelity; print('torch', torch.__version__, '| torchvision',
torchvision.__version__, '| torch-fidelity', torch_fidelity.__version__, '|',
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, log to $OUT/NAME.log, one summary line
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    echo "$name: rc=$rc in $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

LOOPS=plain,plain-bf16-cl,gankit,gankit-reuse,gankit-best
if [ "$SMOKE" = 1 ]; then
    step train_64 300 "$PY" benchmarks/train_speed.py --device cpu --smoke --loops $LOOPS
    step ddp1 200 "$PY" benchmarks/train_speed.py --device cpu --smoke --loops gankit,gankit-ddp1
    step stylegan2 200 "$PY" benchmarks/stylegan2_speed_gpu.py --device cpu --smoke
    step metrics 600 "$PY" benchmarks/metrics_speed.py --n 8 --device cpu --batch 8 --compare-n 8 --extract-n 8 \
        --threads 1 --no-write
    STEPS="train_64 ddp1 stylegan2 metrics"
else
    step tests 60 "$PY" -m pytest -q -p no:cacheprovider -n 4 tests/test_cuda.py tests/test_metrics_inception.py
    step train_64 110 "$PY" benchmarks/train_speed.py --device cuda --resolution 64 --channels 3 --batch 256 \
        --steps 40 --rounds 3 --loops $LOOPS --key train_speed:cuda:3x64:256:issue16
    step ddp1 50 "$PY" benchmarks/train_speed.py --device cuda --resolution 64 --channels 3 --batch 256 \
        --steps 40 --rounds 3 --loops gankit,gankit-ddp1 --key train_speed:cuda:ddp1
    step stylegan2 80 "$PY" benchmarks/stylegan2_speed_gpu.py --device cuda --resolutions 64,128 --steps 32
    step metrics 150 "$PY" benchmarks/metrics_speed.py --n 10000 --device cuda --batch 200 --variants
    cp docs/benchmarks.md "$OUT/benchmarks.md"
    STEPS="tests train_64 ddp1 stylegan2 metrics"
fi

for f in $STEPS; do
    echo "== $f"; tail -n 14 "$OUT/$f.log"
done
cat "$OUT/summary.txt"
