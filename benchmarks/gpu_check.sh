#!/usr/bin/env bash
# GPU check of the vLLM rollout backend on a single-GPU machine without internet:
# a ~10-step GRPO with rollout.backend=vllm on a ~95M-parameter Qwen2.5-VL built from a config
# (benchmarks/gpu_check.py), then the same with rollout.backend=hf for comparison.
#
# Usage: benchmarks/gpu_check.sh WHEELS_DIR [extra gpu_check.py args]
#
# Wheels to bring in WHEELS_DIR (made on a machine with internet, same Python 3.11 / x86_64 / CUDA 12.x):
#   pip download -d wheels vllm==0.32.0 accelerate peft safetensors pyyaml pillow numpy tokenizers scipy \
#       soundfile av decord matplotlib gymnasium diffusers tqdm rich math-verify qwen-vl-utils pytest
# (mmpost.tasks imports gymnasium and diffusers at import time; the trainer plots curves with matplotlib.)
# That pulls vLLM's own pins: the CUDA torch build vLLM 0.32 was compiled against, the matching
# torchvision (Qwen2.5-VL's image/video processors import it), transformers <5.20, xformers/flashinfer
# as vLLM requires, triton, and their dependencies. Do NOT mix in the machine's preinstalled torch:
# vLLM's compiled kernels need exactly its pinned torch, hence a separate venv.
set -euo pipefail

cd "$(dirname "$0")/.."
WHEELS="${1:?usage: benchmarks/gpu_check.sh WHEELS_DIR [gpu_check.py args]}"
shift
VENV="${VENV:-.venv-vllm-gpu}"
OUT="${OUT:-/tmp/mmpost_gpu_check}"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" vllm==0.32.0
    "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" accelerate peft safetensors pyyaml pillow numpy \
        tokenizers scipy soundfile av decord matplotlib gymnasium diffusers tqdm rich math-verify qwen-vl-utils pytest
    "$VENV/bin/pip" install -q --no-index --no-deps -e .
fi
"$VENV/bin/python" -c "import torch, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

"$VENV/bin/python" benchmarks/gpu_check.py --out "$OUT" --backend vllm "$@"
"$VENV/bin/python" benchmarks/gpu_check.py --out "$OUT" --backend hf "$@"
