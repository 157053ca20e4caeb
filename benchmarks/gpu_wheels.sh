#!/usr/bin/env bash
# Prepare the wheels benchmarks/gpu_check.sh installs on the lent GPU machine, which has no network.
#
# That machine (shared/notes/environment.md; the device tool's KINDS.md) runs Python 3.12 with torch 2.11.0+cu130,
# torchvision 0.26.0 and transformers 5.17, and no vLLM. vLLM 0.26.0 is the newest release whose wheel pins
# exactly that torch (torch==2.11.0, torchvision==0.26.0) and is built for CUDA 13 (its _C library needs
# libcudart.so.13), so the image's torch is kept and only vLLM and the packages missing from the image travel.
# Left out on purpose (vLLM imports them only for kernels this check does not select): flashinfer, tilelang,
# apache-tvm-ffi, nvidia-cutlass-dsl, quack-kernels, tokenspeed-mla, humming-kernels, nvidia-cudnn-frontend,
# fastsafetensors, PyNvVideoCodec, torchcodec (vLLM then uses its bundled FlashAttention and PyTorch sampling).
#
# A device call carries at most 64 MiB (working tree included), and the vLLM wheel alone is ~300 MB, so the
# wheels travel in parts: each part is one call's `.whl/` folder (big wheels are cut with `split`). Usage:
#
#   benchmarks/gpu_wheels.sh download          # -> .whl-gpu/wheels/ + manifest (sha256 of every wheel)
#   benchmarks/gpu_wheels.sh pack              # -> .whl-gpu/parts/part-01 ... part-NN, each <= PART_MIB
#   benchmarks/gpu_wheels.sh stage K           # copy part K into .whl/ (the folder a device call carries)
#
# and on the device, one call per part with `carry: [".whl"]` (docs/vllm.md, "GPU check", has the sequence):
#   bash benchmarks/gpu_check.sh receive       # parts 1 .. N-1: keep .whl/* in .whl-store/ (stays on the warm machine)
#   bash benchmarks/gpu_check.sh run           # the last part: receive it, reassemble, install, run the check
# `.whl/`, `.whl-gpu/` and `.whl-store/` are git-ignored (.gitignore): a device call carries only ignored paths it names.
set -euo pipefail

cd "$(dirname "$0")/.."
WORK=.whl-gpu
PART_MIB="${PART_MIB:-60}"  # + the ~2 MiB working tree stays under the 64 MiB a call carries
VLLM_VERSION="${VLLM_VERSION:-0.26.0}"
# The GPU image's stack (KINDS.md, "pip list"): kept, and pinned while resolving what else to carry.
IMAGE_TORCH=2.11.0 IMAGE_TORCHVISION=0.26.0 IMAGE_TRANSFORMERS=5.17.0 IMAGE_TRITON=3.6.0
# Every manylinux tag the image's glibc accepts (pip matches each tag exactly).
PLATFORMS=(--platform manylinux1_x86_64 --platform manylinux2010_x86_64 --platform manylinux2014_x86_64)
for minor in $(seq 5 35); do PLATFORMS+=(--platform "manylinux_2_${minor}_x86_64"); done
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}")
# On the image already (the device tool's KINDS.md package list): never downloaded, never installed over.
ON_IMAGE="absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs certifi
charset-normalizer click cloudpickle cmake colorama contourpy cuda-bindings cuda-core cuda-pathfinder cuda-toolkit
cycler cython einops filelock flatbuffers fonttools frozenlist fsspec grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub idna imageio iniconfig jinja2 joblib kiwisolver lazy-loader llvmlite markdown markdown-it-py
markupsafe matplotlib mdurl ml-dtypes mpmath msgpack multidict networkx ninja numba numpy nvidia-cublas
nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand
nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink
nvidia-nvshmem-cu13 nvidia-nvtx opencv-python-headless packaging pandas peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow py-cpuinfo pygments pyparsing python-dateutil pytest pyyaml
regex requests rich safetensors scipy sentencepiece setuptools shellingham six sympy tabulate tiktoken tokenizers
torch torchaudio torchvision tqdm transformers triton typer typing-extensions urllib3 uvloop wheel xxhash yarl zipp"
SKIP_KERNELS="torch torchvision torchaudio torchcodec flashinfer-python flashinfer-cubin tilelang apache-tvm-ffi
nvidia-cutlass-dsl quack-kernels tokenspeed-mla humming-kernels nvidia-cudnn-frontend fastsafetensors pynvvideocodec"
# mmpost's own runtime dependencies that the image lacks (pyproject.toml), and pytest's.
MMPOST_DEPS="qwen-vl-utils math-verify av decord soundfile gymnasium diffusers datasets"

download() {
    rm -rf "$WORK/wheels" && mkdir -p "$WORK/wheels"
    python3 -m pip download -q --no-deps "${TARGET[@]}" -d "$WORK/wheels" "vllm==$VLLM_VERSION"
    # vLLM's requirements for CPython 3.12 on Linux x86_64 (no extras), minus the image's and the skipped kernels.
    python3 - "$WORK" "$ON_IMAGE $SKIP_KERNELS" "$MMPOST_DEPS" <<'PY'
import glob, re, sys, zipfile
from packaging.markers import default_environment
from packaging.requirements import Requirement

work, skip, extra = sys.argv[1], set(sys.argv[2].lower().split()), sys.argv[3].split()
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
env = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.3", "platform_system": "Linux",
       "platform_machine": "x86_64", "sys_platform": "linux", "extra": ""}
wheel = glob.glob(f"{work}/wheels/vllm-*.whl")[0]
metadata = zipfile.ZipFile(wheel).read(next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("METADATA"))).decode()
wanted = []
for line in metadata.splitlines():
    if line.startswith("Requires-Dist:"):
        req = Requirement(line.split(":", 1)[1].strip())
        if (req.marker is None or req.marker.evaluate(env)) and norm(req.name) not in skip:
            req.marker = None
            wanted.append(str(req))
open(f"{work}/requirements.txt", "w").write("\n".join(wanted + extra) + "\n")
PY
    # Resolve the transitive closure for the target interpreter with the image's own torch stack pinned (so nothing
    # pulls another torch and its CUDA libraries), then fetch each file not on the image, without its own deps.
    printf '%s\n' "torch==$IMAGE_TORCH" "torchvision==$IMAGE_TORCHVISION" "transformers==$IMAGE_TRANSFORMERS" \
        "triton==$IMAGE_TRITON" >"$WORK/image-constraints.txt"
    python3 -m pip install -q --dry-run --ignore-installed --report "$WORK/report.json" "${TARGET[@]}" \
        --target "$WORK/unused" -c "$WORK/image-constraints.txt" -r "$WORK/requirements.txt"
    python3 - "$WORK" "$ON_IMAGE $SKIP_KERNELS" <<'PY'
import json, re, sys
work, skip = sys.argv[1], set(sys.argv[2].lower().split())
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
report = json.load(open(f"{work}/report.json"))
# The image's CUDA libraries (nvidia-*, cuda-*) come with its torch; never carried.
pins = [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in report["install"]
        if norm(i["metadata"]["name"]) not in skip and not norm(i["metadata"]["name"]).startswith(("nvidia-", "cuda-"))]
open(f"{work}/pins.txt", "w").write("\n".join(sorted(pins)) + "\n")
print(f"{len(pins)} packages to carry besides vLLM")
PY
    python3 -m pip download -q --no-deps "${TARGET[@]}" -d "$WORK/wheels" -r "$WORK/pins.txt"
    (cd "$WORK/wheels" && sha256sum *.whl >../manifest.sha256)
    du -sh "$WORK/wheels"
}

pack() {
    rm -rf "$WORK/parts" "$WORK/pieces" && mkdir -p "$WORK/parts" "$WORK/pieces"
    local limit=$((PART_MIB * 1024 * 1024)) file
    # A wheel above the limit is cut into pieces WHEEL.piece-00, -01, ... (gpu_check.sh puts them back together).
    for file in "$WORK/wheels"/*.whl; do
        if [ "$(stat -c %s "$file")" -gt "$limit" ]; then
            split -b "$limit" -d -a 2 "$file" "$WORK/pieces/$(basename "$file").piece-"
        else
            ln -s "$(realpath "$file")" "$WORK/pieces/$(basename "$file")"
        fi
    done
    # First-fit decreasing into parts of at most PART_MIB; the manifest travels with part 1.
    python3 - "$WORK" "$limit" <<'PY'
import os, shutil, sys
work, limit = sys.argv[1], int(sys.argv[2])
items = sorted(((os.path.getsize(os.path.join(work, "pieces", f)), f) for f in os.listdir(f"{work}/pieces")), reverse=True)
parts = [[os.path.getsize(f"{work}/manifest.sha256"), ["../manifest.sha256"]]]
for size, name in items:
    part = next((p for p in parts if p[0] + size <= limit), None)
    if part is None:
        part = [0, []]
        parts.append(part)
    part[0] += size
    part[1].append(name)
for index, (size, names) in enumerate(parts, 1):
    folder = f"{work}/parts/part-{index:02d}"
    os.makedirs(folder)
    for name in names:
        shutil.copy(os.path.join(work, "pieces", name), folder)
    print(f"part-{index:02d}: {size / 2**20:.1f} MiB, {len(names)} files")
print(f"{len(parts)} parts: one device call each (benchmarks/gpu_check.sh receive ..., then run with the last)")
PY
}

stage() {
    local part
    part=$(printf %02d "${1:?usage: gpu_wheels.sh stage K}")
    test -d "$WORK/parts/part-$part" || { echo "no part $part in $WORK/parts (run download and pack first)" >&2; exit 1; }
    rm -rf .whl && mkdir -p .whl && cp "$WORK/parts/part-$part"/* .whl/
    du -sh .whl
}

case "${1:-}" in
    download) download ;;
    pack) pack ;;
    stage) stage "${2:-}" ;;
    *) echo "usage: benchmarks/gpu_wheels.sh download | pack | stage K" >&2; exit 2 ;;
esac
