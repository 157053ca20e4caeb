"""The plugin example (examples/plugin_pointcloud): installs offline with pip, its entry points make the modality,
task and reward resolvable by name in a fresh process, and it trains through `mmpost.train` on the tiny Qwen2.5-VL.

The install goes to a temporary `--target` folder put on the subprocess's PYTHONPATH, so the shared environment is
left as it was (entry points are found in any sys.path folder holding the package's .dist-info).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import REPO
from mmpost.types import MediaError

PLUGIN = REPO / "examples" / "plugin_pointcloud"


@pytest.fixture(scope="module")
def plugin_source(tmp_path_factory):
    """The plugin's source importable in this process (no entry points: unit tests only)."""
    sys.path.insert(0, str(PLUGIN))
    yield PLUGIN
    sys.path.remove(str(PLUGIN))


def test_cloud_loading_names_the_bad_file(plugin_source, tmp_path):
    from mmpost_pointcloud.modality import load_cloud

    good = tmp_path / "good.npy"
    np.save(good, np.zeros((4, 3)))
    assert load_cloud("good.npy", root=tmp_path).shape == (4, 3)
    np.save(tmp_path / "flat.npy", np.zeros((4, 2)))
    with pytest.raises(MediaError, match=r"flat\.npy.*\[N, 3\].*\(4, 2\)"):
        load_cloud(tmp_path / "flat.npy")
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(MediaError, match=r"junk\.npy"):
        load_cloud(tmp_path / "junk.npy")
    with pytest.raises(MediaError, match="not found: .*missing.npy"):
        load_cloud(tmp_path / "missing.npy")
    with pytest.raises(MediaError, match="finite"):
        load_cloud(np.array([[0.0, np.nan, 1.0]]))


def test_render_shows_the_elongation_in_the_xy_view(plugin_source):
    from mmpost_pointcloud.modality import render_cloud

    # Points only along x, from -1 to 1: in the top-left (x-y) view they form a horizontal line.
    cloud = np.stack([np.linspace(-1, 1, 50), np.zeros(50), np.zeros(50)], axis=1)
    pixels = np.asarray(render_cloud(cloud, size=112, dot=0))[:56, :56].min(axis=2)
    rows, columns = np.nonzero(pixels < 100)
    assert columns.max() - columns.min() >= 48 and rows.max() - rows.min() == 0
    # x maps left to right across the cell (2-pixel margin each side): -1 -> column 2, +1 -> column 54.
    assert (columns.min(), columns.max()) == (2, 54)


def test_reward_by_hand_and_by_path(plugin_source):
    from mmpost.registry import REWARDS
    from mmpost_pointcloud.rewards import axis_accuracy

    samples = [{"answer": "x"}, {"answer": "y"}, {"answer": "z"}, {"answer": None}]
    completions = ["<answer>x</answer>", "<answer> Y </answer>", "z", "<answer>x</answer>"]
    assert axis_accuracy(completions, samples) == [1.0, 1.0, 0.0, None]
    assert REWARDS.get("mmpost_pointcloud.rewards:axis_accuracy") is axis_accuracy  # the "pkg.mod:name" form


TRAIN_SCRIPT = textwrap.dedent("""
    import inspect, json, sys
    from mmpost.config import load_config
    from mmpost.registry import MODALITIES, REWARDS, TASKS
    from mmpost.trainer import train

    recipe, model_dir, out_dir, cache = sys.argv[1:5]
    found = {"modality": MODALITIES.get("pointcloud").__module__, "task": TASKS.get("pointcloud_axis").__module__,
             "reward": REWARDS.get("pointcloud_axis_accuracy").__module__}
    overrides = [f"model.path={model_dir}", "model.zoo=tiny-qwen2.5-vl", "data.task=pointcloud_axis",
                 f"data.task_args={{train_size: 8, heldout_size: 4, points: 64, cache_dir: {cache}}}",
                 "data.prompts_per_step=2", "rollout.num_generations=4", "rollout.max_new_tokens=6", "train.steps=2",
                 "train.threads=1", "train.progress=false", f"train.output_dir={out_dir}"]
    summary = train(load_config(recipe, overrides))
    print("RESULT " + json.dumps({"found": found, "steps": summary["steps"], "metrics": summary["metrics"]}))
""")


def test_pip_install_offline_then_train_in_a_fresh_process(tmp_path):
    source = tmp_path / "plugin"
    # Build from a copy: an in-tree build would leave build/ and *.egg-info inside the repository.
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp_path / "site"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # offline: no index at all
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                              "-q", "--target", str(site), str(source)], capture_output=True, text=True, env=env, timeout=120)
    assert install.returncode == 0, install.stderr
    assert list(site.glob("mmpost_pointcloud-0.1.0.dist-info/entry_points.txt"))

    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run([sys.executable, "-c", TRAIN_SCRIPT, str(REPO / "recipes" / "grpo.yaml"), str(tmp_path / "tiny"),
                          str(tmp_path / "run"), str(tmp_path / "clouds")], capture_output=True, text=True, env=env,
                         timeout=240, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT "):])
    assert result["found"] == {"modality": "mmpost_pointcloud.modality", "task": "mmpost_pointcloud.task",
                               "reward": "mmpost_pointcloud.rewards"}
    assert result["steps"] == 2
    records = [json.loads(line) for line in open(result["metrics"])]
    assert [r["step"] for r in records] == [1, 2]
    assert all(0.0 <= r["reward/pointcloud_axis_accuracy"] <= 1.0 and r["rollout/sequences"] == 8 for r in records)
    assert len(list((tmp_path / "clouds").rglob("*.npy"))) == 8 + 4  # the modality read real .npy files
