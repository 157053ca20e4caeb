"""Learning on the other modalities, shown not claimed: held-out metric before/after RL from a warm-started tiny model.

    python benchmarks/learning_modalities.py                        # all groups, 3 seeds (about 10-15 min on 2 cores)
    python benchmarks/learning_modalities.py --group mm_upt --seeds 0 1 2 3 --steps 30

Same protocol as benchmarks/learning.py (whose helpers this imports): each method is a shipped recipe run through
`mmpost.train` from the group's warm-started zoo model, with CPU-sized overrides listed below; the metric is the
task's accuracy reward on its held-out split under greedy decoding:
- GuirlVG on gui_click: click accuracy (the predicted point inside the target's box);
- R1-AQA GRPO on audio_mcq: choice accuracy (`r1aqa_accuracy`);
- MM-UPT on digit_sum: accuracy against the hidden labels, which training never sees (the reward is the vote).
Prints a Markdown table (mean ± std over seeds) and writes it with the raw numbers to
`benchmarks/results/learning_modalities.{md,json}`. Not a test: it takes minutes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning import REPO, Group, Method, run_method, table  # noqa: E402  (benchmarks/learning.py)

SHARED = ["train.progress=false", "train.threads=2", "train.save_every=0", "data.prompts_per_step=4",
          "rollout.num_generations=6"]
GROUPS = {
    "gui_click": Group(
        name="gui_click", model_zoo="tiny-qwen2.5-vl-gui", model_dir="artifacts/tiny-qwen2.5-vl-gui",
        metric="held-out click accuracy", overrides=SHARED + ["data.task_args={heldout_size: 32}", "optim.lr=1e-3"],
        methods=[Method("GuirlVG (GRPO + adversarial KL), lr 1e-3", "guirlvg"),
                 Method("GuirlVG (GRPO + adversarial KL), lr 1e-4", "guirlvg", ["optim.lr=1e-4"])],
    ),
    "audio_mcq": Group(
        name="audio_mcq", model_zoo="tiny-qwen2-audio-mcq", model_dir="artifacts/tiny-qwen2-audio-mcq",
        metric="held-out choice accuracy",
        overrides=SHARED + ["data.task_args={heldout_size: 24}", "optim.lr=1e-3", "optim.scheduler=constant",
                            "rollout.max_new_tokens=12", "eval.max_new_tokens=12"],
        methods=[Method("R1-AQA GRPO", "audio_grpo")],
    ),
    "mm_upt": Group(
        name="mm_upt", model_zoo="tiny-qwen2.5-vl-mmupt", model_dir="artifacts/tiny-qwen2.5-vl-mmupt",
        metric="held-out accuracy vs hidden labels",
        overrides=SHARED + ["data.task_args={heldout_size: 48}", "optim.lr=1e-3", "rollout.max_new_tokens=12",
                            "algorithm.mini_batches=1"],
        methods=[Method("MM-UPT (official: None can win), lr 1e-3", "mm_upt"),
                 Method("MM-UPT (official: None can win), lr 1e-4", "mm_upt", ["optim.lr=1e-4"]),
                 Method("MM-UPT, none_can_win=false, lr 1e-4", "mm_upt", [
                     "optim.lr=1e-4", "rewards=[{name: mm_upt_majority_vote, args: {none_can_win: false}}]"])],
    ),
}
DEFAULT_STEPS = {"gui_click": 20, "audio_mcq": 12, "mm_upt": 20}


def method_slug(method: Method) -> str:
    return "".join(c if c.isalnum() else "-" for c in method.name.lower()).strip("-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", action="append", choices=sorted(GROUPS), help="default: all groups")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help=f"RL steps per run (default per group: {DEFAULT_STEPS})")
    parser.add_argument("--out", default="runs/benchmark-learning-modalities")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    results_dir = Path(args.results)
    previous = results_dir / "learning_modalities.json"
    # Groups not rerun keep their last results, so one group can be refreshed without rerunning the others.
    raw = json.loads(previous.read_text())["groups"] if previous.is_file() and args.group else {}
    tables = {}
    for name in args.group or sorted(GROUPS):
        group, steps = GROUPS[name], args.steps or DEFAULT_STEPS[name]
        results: dict[str, list[dict]] = {}
        for method in group.methods:
            results[method.name] = []
            for seed in args.seeds:
                # One folder per method: run_method names runs by recipe, and these methods share recipes.
                outcome = run_method(group, method, seed, steps, Path(args.out) / method_slug(method))
                results[method.name].append(outcome)
                print(f"[{group.name}] {method.name} seed {seed}: {outcome['before']:.3f} -> {outcome['after']:.3f} "
                      f"({outcome['seconds']:.0f} s, {outcome['seconds_per_step']:.2f} s/step)", flush=True)
        raw[name] = {"steps": steps, "seeds": args.seeds, "results": results}
    for name, entry in sorted(raw.items()):
        group = GROUPS[name]
        shown = Group(group.name, group.model_zoo, group.model_dir, [m for m in group.methods if m.name in entry["results"]],
                      group.overrides, group.metric)
        tables[name] = table(shown, entry["results"], entry["steps"], entry.get("seeds", args.seeds))
    text = "\n\n".join(tables[name] for name in sorted(tables))
    print("\n" + text)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "learning_modalities.md").write_text(text + "\n")
    (results_dir / "learning_modalities.json").write_text(json.dumps({"groups": raw}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
