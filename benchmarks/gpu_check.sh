#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) on the lent GPU machine, which has no network: the wheels arrive in
# parts, one device call each (a call carries at most 64 MiB), prepared here by benchmarks/gpu_wheels.sh.
#
# On the device, from the repo root, with `carry: [".whl"]` (docs/vllm.md, "GPU check", gives the whole sequence):
#   bash benchmarks/gpu_check.sh receive                 # parts 1 .. N-1: keep .whl/* in .whl-store/
#   bash benchmarks/gpu_check.sh run [gpu_check.py args] # part N: receive, reassemble, verify, install, run the check
# The machine must stay warm between these calls (its ignored files survive only while it is held).
# Here (CPU): bash benchmarks/gpu_check.sh cpu [args]    # the CPU fallback in .venv-vllm (make vllm-env)
#
# Results: $OUT/gpu_check.json (one JSON: environment, per-phase numbers, targets) and each phase's log; without
# $OUT, under /tmp/mmpost_gpu_check.
set -euo pipefail

cd "$(dirname "$0")/.."
STORE=.whl-store
SITE="${SITE:-/tmp/mmpost-site}"
WORK_DIR="${WORK_DIR:-/tmp/mmpost_gpu_check}"

receive() {
    mkdir -p "$STORE"
    if [ -d .whl ]; then cp .whl/* "$STORE"/; fi
    echo "received: $(ls "$STORE" | wc -l) files, $(du -sh "$STORE" | cut -f1) in $STORE"
}

install() {
    # Wheels over one call's size came in pieces (WHEEL.piece-00, -01, ...): put them back together.
    for first in "$STORE"/*.piece-00; do
        [ -e "$first" ] || continue
        wheel="${first%.piece-00}"
        cat "$wheel".piece-* >"$wheel" && rm "$wheel".piece-*
    done
    # Every wheel of the manifest arrived whole (a missing part fails here, not halfway through the check).
    (cd "$STORE" && sha256sum --check --quiet manifest.sha256)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$STORE"/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    # mmpost itself (its folder mapping needs an install; the image's setuptools builds it offline).
    python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
    python3 -c "import torch, vllm, transformers, mmpost; print('torch', torch.__version__, 'vllm', vllm.__version__, \
'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
}

collect() {
    # What comes back from the device: at most 8 files; the JSON and the phase logs.
    if [ -n "${OUT:-}" ]; then
        cp "$WORK_DIR/gpu_check.json" "$OUT"/ 2>/dev/null || true
        cp "$WORK_DIR"/logs/*.log "$OUT"/ 2>/dev/null || true
    fi
}

case "${1:-}" in
    receive)
        receive
        ;;
    run)
        shift
        receive
        install
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
        nvidia-smi || true
        trap collect EXIT
        PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out "$WORK_DIR" "$@"
        ;;
    cpu)
        shift
        PYTHON="${PYTHON:-.venv-vllm/bin/python}"
        trap collect EXIT
        OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" PYTHONUNBUFFERED=1 "$PYTHON" benchmarks/gpu_check.py --cpu --out "$WORK_DIR" "$@"
        ;;
    *)
        echo "usage: benchmarks/gpu_check.sh receive | run [gpu_check.py args] | cpu [gpu_check.py args]" >&2
        exit 2
        ;;
esac
