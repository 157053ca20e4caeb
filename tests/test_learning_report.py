"""benchmarks/learning_report.py: the statistics every learning claim rests on, by hand, and the files it writes."""
import json
import math
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from learning_report import Row, SeedRun, gain_statistics, mean_std, write_report  # noqa: E402


def test_gain_statistics_by_hand():
    stats = gain_statistics([0.5, 0.5, 0.5], [0.6, 0.7, 0.8])
    # gains 0.1, 0.2, 0.3: mean 0.2, sample std 0.1, SE 0.1 / sqrt(3) = 0.0577, 0.2 / 0.0577 = 3.46 SE
    assert stats["gains"] == pytest.approx([0.1, 0.2, 0.3])
    assert stats["gain_mean"] == pytest.approx(0.2) and stats["gain_std"] == pytest.approx(0.1)
    assert stats["gain_se"] == pytest.approx(0.1 / math.sqrt(3))
    assert stats["gain_over_se"] == pytest.approx(2 * math.sqrt(3)) and stats["significant"]
    # gains 0.1, -0.05, 0.04: mean 0.03, std 0.0755, SE 0.0436: 0.69 SE, not significant
    weak = gain_statistics([0.5, 0.5, 0.5], [0.6, 0.45, 0.54])
    assert weak["gain_se"] == pytest.approx(mean_std([0.1, -0.05, 0.04])[1] / math.sqrt(3))
    assert not weak["significant"]
    assert not gain_statistics([0.5, 0.5], [0.4, 0.4])["significant"]  # a loss is never significant
    one_seed = gain_statistics([0.5], [0.6])  # one seed: no spread to judge by, so never significant
    assert not one_seed["significant"] and math.isnan(one_seed["gain_se"]) and one_seed["gain_mean"] == pytest.approx(0.1)


def test_report_files(tmp_path):
    runs = [SeedRun(seed, 0.4, 0.5 + 0.01 * seed, seconds_per_step=0.2,
                    summary={"heldout_pass_at_k_before": 0.7, "heldout_pass_at_k_after": 0.75, "heldout_pass_k_before": 8,
                             "heldout_sampled_accuracy_before": 0.35, "heldout_sampled_accuracy_after": 0.5},
                    curves={"reward/mean": [0.1 * i + seed * 0.01 for i in range(30)], "diag/entropy": [1.0] * 30})
            for seed in range(3)]
    text = write_report([Row("GRPO", "grpo", runs, task="shapes")], "learning_test", results=tmp_path)
    assert "| GRPO | shapes | 0.400 ± 0.000 | 0.510 ± 0.010 | +0.110 ± 0.010 | 0.100 / 0.110 / 0.120 |" in text
    assert "0.350 → 0.500" in text and "0.700 → 0.750 (k=8)" in text
    data = json.loads((tmp_path / "learning_test.json").read_text())
    assert data["rows"][0]["significant"] and data["rows"][0]["diagnostics"]["diag/entropy"]["first10"] == [1.0] * 3
    assert (tmp_path / "learning_grpo.png").stat().st_size > 10_000


def test_a_report_other_than_the_default_names_its_figures_after_itself(tmp_path):
    runs = [SeedRun(seed, 0.4, 0.5, curves={"reward/mean": [0.1, 0.2, 0.3]}) for seed in range(2)]
    rows = [Row("Driving", "driving", runs, task="driving_waypoints")]
    write_report(rows, "learning_modalities", results=tmp_path, default_name="learning_modalities")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["learning_driving.png"]
    before = (tmp_path / "learning_driving.png").read_bytes()
    write_report([Row("Driving at lr 1e-3", "driving", runs)], "learning_driving_lr", results=tmp_path,
                 default_name="learning_modalities")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["learning_driving.png", "learning_driving_lr_driving.png"]
    assert (tmp_path / "learning_driving.png").read_bytes() == before  # the suite's figure is left as it was


def test_pass_at_k_gap_by_kind_against_guessing_by_hand():
    from learning import chance_pass_at_k, gap_by_kind

    assert chance_pass_at_k(2, 8) == pytest.approx(1 - 0.5 ** 8)  # a coin: 0.996
    assert chance_pass_at_k(4, 8) == pytest.approx(1 - 0.75 ** 8)  # 0.900
    summary = {"heldout_pass_k_before": 8, "heldout_accuracy_color_before": 0.9, "heldout_pass_at_k_color_before": 1.0,
               "heldout_accuracy_position_before": 0.4, "heldout_pass_at_k_position_before": 1.0}
    heldout = [{"kind": "color", "choices": ["r", "g", "b", "y"]}] * 1 + [{"kind": "position", "choices": ["l", "r"]}] * 3
    table = gap_by_kind(Row("GRPO", "grpo", [SeedRun(0, 0.5, 0.5, summary=summary)]), heldout)
    # colour: share 1/4, gap 0.1, all of it above guessing (max(0.9, 0.900) = 0.9): 0.025; position: share 3/4,
    # gap 0.6 -> 0.450, of which only 1.0 - 0.996 = 0.0039 is above a coin's pass@8: 0.75 * 0.0039 = 0.003
    assert "| color | 0.250 | 0.900 | 1.000 | 0.100 | 0.900 (4) | 0.025 | 0.025 |" in table
    assert "| position | 0.750 | 0.400 | 1.000 | 0.600 | 0.996 (2) | 0.450 | 0.003 |" in table
    assert "| all | 1.000 | | | | | 0.475 | 0.028 |" in table


def test_suite_budget_by_hand(tmp_path):
    """The bench-learning estimate: each process's CPU seconds where measured, else its recorded wall × WALL_TO_CPU,
    less the reused "before" evaluations (CPU seconds from the profile), scheduled in run order on 2 lanes; PROPA's
    evaluation stage added."""
    from learning import WALL_TO_CPU as f, lane_wall, per_process_seconds, suite_budget

    assert lane_wall([300, 300, 300], 2) == 600 and lane_wall([100, 50, 50], 2) == 100
    scaled = f"recorded wall × {f:.2f}"
    assert per_process_seconds({"runs": {"A": [{"seconds": 10.0}, {"seconds": 20.0, "cpu_seconds": 4.0}], "B": [5.0]}}) \
        == [(10.0 * f, scaled), (4.0, "measured CPU"), (5.0 * f, scaled)]
    assert per_process_seconds({"runs": {"A": [{"seconds": 10.0}], "B": [5.0]}}, ["B"]) == [(5.0 * f, scaled)]
    assert per_process_seconds({"runs": [{"seconds": 4.0}]}) == [(4.0 * f, scaled)]  # RLIR's records
    # A rerun with CPU accounting overrides the rows it has.
    assert per_process_seconds({"runs": {"A": [{"seconds": 10.0}] * 2}}, overlay={"runs": {"A": [{"cpu_seconds": 3.0}]}}) \
        == [(3.0, "measured CPU"), (10.0 * f, scaled)]
    # A reused evaluation saves its 40 CPU s less the 10 s build the reusing job adds: 30 s.
    phases = [{"phase": "config, warm-start load, data, build_run", "cpu_s": 10.0},
              {"phase": "before: greedy held-out", "cpu_s": 10.0}, {"phase": "before: sampled held-out", "cpu_s": 30.0},
              {"phase": "after: greedy held-out", "cpu_s": 5.0}, {"phase": "after: sampled", "cpu_s": 15.0}]
    (tmp_path / "learning_profile.json").write_text(json.dumps({"grpo": {"phases": phases}}))
    # 5 methods × 3 seeds of 1000 recorded s: the first 3 evaluate the warm start, the other 12 reuse it.
    (tmp_path / "learning.json").write_text(json.dumps({"runs": {m: [{"seconds": 1000.0}] * 3 for m in "ABCDE"}}))
    # TRL: 3 seeds × 10 steps × 2 s/step recorded + its evaluation after (20 CPU s) each.
    (tmp_path / "learning_vs_trl.json").write_text(json.dumps({"grpo": {"trl": {"seconds_per_step": 2.0, "steps": 10,
                                                                                "seeds": [0, 1, 2]}}}))
    (tmp_path / "learning_propa.json").write_text(json.dumps({"training_run_seconds": {"p/0": 100.0, "p/1": 100.0},
                                                              "wall_seconds": {"sampled_chains": 30.0, "inference": 70.0}}))
    parts = {p["part"].split()[0]: p for p in suite_budget(tmp_path, parallel=2)}
    shapes = parts["learning"]
    each = 1000.0 * f
    assert (shapes["processes"], shapes["reused_before"]) == (15, 12)
    assert shapes["saved_s"] == pytest.approx(12 * 30.0) and shapes["seconds"] == pytest.approx(15 * each - 12 * 30.0)
    assert shapes["wall_s"] == pytest.approx(lane_wall([each] * 3 + [each - 30.0] * 12, 2))
    assert parts["learning_vs_trl"]["wall_s"] == pytest.approx(lane_wall([20.0 * f + 20.0] * 3, 2))
    assert parts["learning_propa"]["wall_s"] == pytest.approx(100.0 * f + 100.0 * f)
    assert "learning_modalities" not in parts  # no results file: no row
    # A rerun of some processes with CPU accounting: their CPU seconds replace theirs, and their ratio to the recorded
    # wall seconds (100 of 1000) scales the others.
    from learning import measured_wall_to_cpu

    (tmp_path / "learning_timing.json").write_text(json.dumps({"runs": {"A": [{"cpu_seconds": 100.0}]}}))
    assert measured_wall_to_cpu(tmp_path) == (pytest.approx(0.1), {"learning": pytest.approx(0.1)})
    shapes = suite_budget(tmp_path, parallel=2)[0]
    assert shapes["seconds"] == pytest.approx(100.0 + 14 * 100.0 - 12 * 30.0)  # the 12 reusing runs predate the reuse
    # A rerun that trained a different number of steps stands for nothing (World-Env's 20-step timing run against
    # its committed 8-step row): neither its CPU seconds nor its ratio are used.
    (tmp_path / "learning.json").write_text(json.dumps({"runs": {m: [{"seconds": 1000.0, "summary": {"steps": 8}}] * 3
                                                                  for m in "ABCDE"}}))
    (tmp_path / "learning_timing.json").write_text(json.dumps({"runs": {"A": [{"cpu_seconds": 100.0,
                                                                                "summary": {"steps": 20}}]}}))
    assert measured_wall_to_cpu(tmp_path) == (f, {})
    assert per_process_seconds(json.loads((tmp_path / "learning.json").read_text()), ["A"],
                               overlay=json.loads((tmp_path / "learning_timing.json").read_text()))[0] == (each, scaled)
    from learning import timing_matches

    recorded = json.loads((tmp_path / "learning.json").read_text())
    assert not timing_matches(recorded, json.loads((tmp_path / "learning_timing.json").read_text()))
    assert timing_matches(recorded, {"runs": {"A": [{"cpu_seconds": 100.0, "summary": {"steps": 8}}]}})
    assert timing_matches(recorded, None)
    # A timed-whole part whose timing rerun trained other step counts names only its evaluation stages.
    (tmp_path / "learning_audio.json").write_text(json.dumps({"runs": {"A": [{"seconds": 10.0, "summary": {"steps": 8}}]}}))
    (tmp_path / "learning_audio_timing.json").write_text(json.dumps({"runs": {"A": [{"cpu_seconds": 5.0,
                                                                                      "summary": {"steps": 20}}]}}))
    (tmp_path / "learning_timing_parts.json").write_text(json.dumps({"learning_audio": {"cpu_s": 50.0, "jobs_cpu_s": 5.0}}))
    audio = {p["part"]: p for p in suite_budget(tmp_path, parallel=2)}["learning_audio"]
    assert audio["note"] == "its evaluation stages 45 CPU s, from a timed run of other step counts"
    (tmp_path / "learning_audio_timing.json").write_text(json.dumps({"runs": {"A": [{"cpu_seconds": 5.0,
                                                                                      "summary": {"steps": 8}}]}}))
    audio = {p["part"]: p for p in suite_budget(tmp_path, parallel=2)}["learning_audio"]
    assert audio["note"] == "timed whole: 50 CPU s, of which 45 in its evaluation stages"


def _key_inputs(tmp_path, *overrides):
    """A recipe's config on a stand-in warm-start folder, and held-out rows with an image, as the key sees them."""
    from PIL import Image

    from mmpost.config import load_config

    warm = tmp_path / "warm"
    if not warm.is_dir():
        warm.mkdir()
        (warm / "model.safetensors").write_bytes(b"weights-1")
        (warm / "config.json").write_text("{}")
    rows = [{"question": "colour?", "answer": "red", "image": Image.new("RGB", (4, 4), (255, 0, 0))}]
    return load_config(REPO / "recipes" / "grpo.yaml", [f"model.path={warm}", *overrides]), rows, warm


def test_before_key_is_shared_across_methods_and_changes_with_anything_the_evaluation_reads(tmp_path):
    from learning_report import before_key_fields, content_digest
    from mmpost.config import load_config

    def key(*overrides, rows=None, accuracy="shapes_accuracy"):
        config, default_rows, _ = _key_inputs(tmp_path, *overrides)
        return content_digest(before_key_fields(config, default_rows if rows is None else rows, accuracy))

    base = key()
    # What acts only during training is not in the key: another method, lr, step count or output folder reuses it.
    assert key("optim.lr=1e-5", "train.steps=7", "algorithm.kl_coef=0.5", "train.output_dir=/elsewhere") == base
    visurf, rows, warm = _key_inputs(tmp_path)
    visurf = load_config(REPO / "recipes" / "visurf.yaml", [f"model.path={warm}"])
    assert content_digest(before_key_fields(visurf, rows, "shapes_accuracy")) == base
    # What the evaluation reads is: the seed (the sampling pass seeds from it), eval and sampling settings, the rows,
    # the accuracy reward, the held-out split's settings.
    changed = [key("train.seed=1"), key("eval.pass_k=4"), key("eval.max_new_tokens=5"), key("rollout.temperature=0.7"),
               key("rollout.num_generations=4"), key("data.task_args={heldout_size: 128}"), key("train.threads=1"),
               key(accuracy={"name": "shapes_accuracy", "args": {"strict": True}}),
               key(rows=[{**rows[0], "answer": "blue"}]),
               key(rows=[{**rows[0], "image": rows[0]["image"].point(lambda v: 255 - v)}])]
    assert base not in changed and len(set(changed)) == len(changed)
    # A retrained warm start in the same folder (one byte of its weights) is a new key.
    (warm / "model.safetensors").write_bytes(b"weights-2")
    assert key() != base


def test_cached_before_computes_once_and_never_returns_a_stale_entry(tmp_path):
    import json as json_module

    from learning_report import cached_before, content_digest

    calls = []

    def compute(value):
        return lambda: calls.append(value) or {"heldout_accuracy": value}

    fields = {"settings": {"seed": 0}, "warm_start": "abc"}
    assert cached_before(tmp_path, fields, compute(0.5)) == ({"heldout_accuracy": 0.5}, False)
    assert cached_before(tmp_path, fields, compute(0.9)) == ({"heldout_accuracy": 0.5}, True)
    assert cached_before(tmp_path, {**fields, "warm_start": "abd"}, compute(0.7)) == ({"heldout_accuracy": 0.7}, False)
    # An entry stored under the key whose recorded fields differ (a hand-edited or colliding file) is recomputed.
    path = tmp_path / f"{content_digest(fields)}.json"
    stored = json_module.loads(path.read_text())
    path.write_text(json_module.dumps({**stored, "fields": {"settings": {"seed": 1}}}))
    assert cached_before(tmp_path, fields, compute(0.6)) == ({"heldout_accuracy": 0.6}, False)
    assert calls == [0.5, 0.7, 0.6] and not list(tmp_path.glob("*.tmp"))


def test_learning_job_gives_mmpost_trains_numbers_and_reuses_the_before_evaluation(warm_vl_dir, tmp_path):
    """benchmarks/learning_job.py against `mmpost train` on the same config: the same held-out numbers before and
    after and the same training curve; a second seed-identical run of another method reuses the "before" numbers."""
    from conftest import tiny_overrides
    from learning_job import run_job
    from mmpost.config import load_config
    from mmpost.trainer import train

    def config(recipe, name, **extra):
        return load_config(REPO / "recipes" / f"{recipe}.yaml", tiny_overrides(warm_vl_dir, tmp_path / name, **{
            "train.steps": 2, "data.heldout_size": 8, "eval.pass_k": 4, "train.seed": 3, **extra}))

    def curve(name):
        return [{k: v for k, v in json.loads(line).items() if not k.startswith(("perf/", "time"))}
                for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

    engine = train(config("grpo", "engine"))
    job = run_job(config("grpo", "job"), tmp_path / "cache")
    heldout = sorted(k for k in engine if k.startswith("heldout_"))
    assert len(heldout) >= 6 and "heldout_pass_at_k_before" in heldout and "heldout_accuracy_after" in heldout
    assert {k: job[k] for k in heldout} == {k: engine[k] for k in heldout}
    assert curve("job") == curve("engine") and not job["heldout_before_reused"]
    # ViSurf from the same warm start and seed: the "before" numbers are looked up, and equal its own engine run's.
    visurf = run_job(config("visurf", "visurf_job"), tmp_path / "cache")
    assert visurf["heldout_before_reused"] and len(list((tmp_path / "cache").glob("*.json"))) == 1
    assert {k: visurf[k] for k in heldout if k.endswith("_before")} == {k: engine[k] for k in heldout if k.endswith("_before")}


def test_the_trl_control_refuses_a_processor_whose_image_marks_miss_left_padded_prompts(warm_vl_dir):
    """GRPOTrainer left-pads the prompt ids but takes the loss forward's mm_token_type_ids from the processor
    (trl#5785): a right-padding processor would move the image in M-RoPE on left-padded rows; a left-padding one is
    what GRPOTrainer loads itself."""
    from transformers import AutoProcessor

    from learning_vs_trl import check_training_forward_alignment
    from mmpost.tasks.shapes import ShapesTask

    task = ShapesTask()
    rows = list(task.load("train", size=12))

    class Trainer:
        def __init__(self, side):
            self.processing_class = AutoProcessor.from_pretrained(warm_vl_dir, padding_side=side)

    with pytest.raises(AssertionError, match="padding_side='left'"):
        check_training_forward_alignment(Trainer("right"), task, rows)
    check_training_forward_alignment(Trainer("left"), task, rows)


def test_code_digest_covers_task_and_modality_code(tmp_path):
    """A task's scoring or a modality's decoding changes the "before" numbers as surely as the engine does."""
    from learning_report import code_digest

    for folder in ("mmpost", "modalities", "tasks"):
        (tmp_path / folder / "sub").mkdir(parents=True)
        (tmp_path / folder / "sub" / "code.py").write_text(f"# {folder}\n")
    digest = code_digest.__wrapped__  # the cached one is read once per process
    digests = {digest(tmp_path)}
    for folder in ("mmpost", "modalities", "tasks"):
        (tmp_path / folder / "sub" / "code.py").write_text(f"# {folder}, changed\n")
        digests.add(digest(tmp_path))
    assert len(digests) == 4


def test_gap_closed_and_the_session9_test_by_hand():
    from learning_modalities import gap_text
    from learning_report import gap_closed

    # Warm start greedy 0.35, pass@8 0.75: gap 0.40. Gains 0.20 / 0.24 / 0.16 close 0.50 / 0.60 / 0.40 of it.
    assert gap_closed([0.35] * 3, [0.55, 0.59, 0.51], [0.75] * 3) == pytest.approx([0.5, 0.6, 0.4])
    assert math.isnan(gap_closed([0.5], [0.6], [0.5])[0])  # no gap, no share
    def runs(afters, pass_before=0.75):
        return [SeedRun(seed, 0.35, after, summary={"heldout_pass_at_k_before": pass_before,
                                                     "heldout_pass_at_k_after": 0.8}) for seed, after in enumerate(afters)]
    text = gap_text([Row("GRPO", "g", runs([0.55, 0.59, 0.51])), Row("GRPO coin", "g_random", runs([0.35, 0.39, 0.31]))])
    # Mean share 0.50, std 0.10, SE 0.10 / sqrt(3) = 0.06; gain 0.20 ± 0.04 is 8.7 SE: passes (0.50 >= 0.5).
    assert "| GRPO | 0.400 | +0.50 / +0.60 / +0.40 | +0.50 ± 0.10 | 0.06 | **yes** |" in text
    assert "| GRPO coin | 0.400 | +0.00 / +0.10 / -0.10 | +0.00 ± 0.10 | 0.06 | no |" in text
    # Against its control, paired by seed: +0.20 on every seed (std 0, so significant at any multiple of SE).
    assert "| GRPO | +0.200 / +0.200 / +0.200 | +0.200 ± 0.000 |" in text
    # A share just under half fails however significant the gain.
    assert gap_text([Row("GRPO", "g", runs([0.53, 0.54, 0.55]))]).splitlines()[-1].endswith("| +0.48 ± 0.02 | 0.01 | no |")  # 0.475


def test_session9_grpo_groups_load_and_differ_only_in_the_reward():
    from learning_modalities import GROUPS

    from mmpost.config import load_config

    names = [n for n in GROUPS if n.startswith("grpo_c3sh5_350_")]
    truth = next(n for n in names if not n.endswith("_random"))
    control = GROUPS[truth + "_random"]
    assert control.overrides[:4] == GROUPS[truth].overrides[:4] and control.overrides[5:] == GROUPS[truth].overrides[5:]
    config = load_config(REPO / "recipes" / "grpo.yaml", GROUPS[truth].overrides)
    assert config.model.zoo == "tiny-qwen2.5-vl-mmupt-c3sh5-350" and config.data.task == "digit_sum"
    assert config.data.task_args == {"heldout_size": 512, "count": 3, "high": 5, "train_labels": True, "train_offset": 500000}
    assert [r["name"] for r in config.rewards] == ["mm_upt_label_accuracy"] and config.rollout.max_new_tokens == 24
    assert config.rollout.temperature == 1.0 and config.rollout.num_generations == 8 and config.algorithm.kl_coef == 0.0
    assert [r["name"] for r in load_config(REPO / "recipes" / "grpo.yaml", control.overrides).rewards] == ["mm_upt_random_control"]


def test_warm_starts_build_what_every_suite_part_builds():
    """`make warm-starts` must build every cached model a `make bench-learning` part builds on first use: each
    `ensure_*` builder a suite script defines is called by benchmarks/warm_starts.py, and each script that builds
    through ensure_model_folder itself is imported there (a new part that builds its own warm start fails here)."""
    import ast

    from learning import SUITE_SCRIPTS

    source = (REPO / "benchmarks" / "warm_starts.py").read_text()
    calls = {f"{n.func.value.id}.{n.func.attr}" for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)}
    imported = {a.name for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names} | {n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    for script in ["learning.py", *SUITE_SCRIPTS]:
        module = script.removesuffix(".py")
        tree = ast.parse((REPO / "benchmarks" / script).read_text())
        builders = [f.name for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith("ensure_")]
        for name in builders:
            assert f"{module}.{name}" in calls, f"{script} builds through {name}(); warm_starts.py does not call it"
        if not builders and "ensure_model_folder" in (REPO / "benchmarks" / script).read_text():
            assert module in imported, f"{script} builds warm starts; warm_starts.py does not cover it"


def test_suite_wall_record(tmp_path):
    from learning import record_suite_wall

    record = record_suite_wall({"learning.py (shapes)": 248.0, "learning_vs_trl.py": 106.0}, tmp_path)
    stored = json.loads((tmp_path / "learning_suite_wall.json").read_text())
    assert stored["wall_s"] == 354.0 and stored["parts_wall_s"]["learning_vs_trl.py"] == 106.0 and stored == record


def test_replication_compares_verdicts_by_hand(tmp_path):
    """Two runs' rows matched by label: a verdict that flips, one that holds with other digits, a row only one run
    has; the TRL control's after-training difference read from its comparison."""
    from learning_replication import compare, table

    def row(label, before, gains, se, significant):
        return {"label": label, "before": [before] * 3, "gain_mean": sum(gains) / 3, "gain_se": se,
                "gain_over_se": (sum(gains) / 3) / se, "significant": significant, "gains": gains}

    earlier, later = tmp_path / "a", tmp_path / "b"
    earlier.mkdir(), later.mkdir()
    (earlier / "learning.json").write_text(json.dumps({"rows": [row("GRPO", 0.5, [0.1, 0.1, 0.1], 0.01, True),
                                                                row("HPT", 0.5, [0.0, 0.03, 0.0], 0.01, False)]}))
    (later / "learning.json").write_text(json.dumps({"rows": [row("GRPO", 0.5, [0.1, 0.2, 0.1], 0.03, True),
                                                              row("HPT", 0.5, [0.1, 0.1, 0.1], 0.01, True),
                                                              row("SFT", 0.5, [0.1, 0.1, 0.1], 0.01, True)]}))
    trl = {"grpo": {"comparison": {"after_difference": -0.007, "after_difference_se": 0.017}}}
    (earlier / "learning_vs_trl.json").write_text(json.dumps(trl))
    trl["grpo"]["comparison"]["after_difference"] = 0.004
    (later / "learning_vs_trl.json").write_text(json.dumps(trl))
    result = compare(earlier, later)
    rows = {r["label"]: r for r in result["rows"]}
    assert rows["GRPO"]["same_verdict"] and not rows["GRPO"]["same_per_seed"]
    assert not rows["HPT"]["same_verdict"]
    assert rows["SFT"]["earlier"] is None and not rows["SFT"]["same_verdict"]
    assert result["trl_after_difference"]["later"]["grpo"] == (0.004, 0.017)
    assert "learning_audio" in result["missing_parts"]
    text = table(result)
    assert "Verdicts that agree: 1 of 3 rows." in text and "| grpo | -0.007 ± 0.017 | +0.004 ± 0.017 |" in text
