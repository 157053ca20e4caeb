"""How clean are PROPA's step-level training labels? Reads the trees a PROPA run wrote (`source_args.tree_dir`) and
rebuilds the groups the run trained on (`mmpost.search.step_groups`), then counts, over all kept groups:
- unvisited members (labelled 0 whatever their quality: q = W/N is 0 at N = 0, as in the official code);
- groups whose visited children all share one label (their whole spread comes from unvisited children);
- groups in which one step text carries two different labels (a duplicate step gets a positive and a negative
  advantage in the same group);
- duplicate step texts among the members.
`--duplicate-steps keep merge drop` counts the same trees under each group construction (keep = official).
Results: benchmarks/results/learning_propa_iterations.md.

    python benchmarks/propa_group_labels.py runs/learning_propa/propa/seed0 runs/propa_it25/seed0 ...
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def group_label_stats(run_dirs, duplicate_steps: str = "keep") -> dict[str, float]:
    from mmpost.search.source import load_trees
    from mmpost.search.step_groups import step_groups

    groups = members = unvisited = with_unvisited = unvisited_only_spread = two_labels = duplicates = 0
    for run in run_dirs:
        for path in sorted(Path(run, "trees").glob("*.jsonl")):
            for _, tree in load_trees(path):
                for group in step_groups(tree, duplicate_steps=duplicate_steps):
                    texts = [tree.nodes[c].step.strip() for c in group.children]
                    # a merged member's visits are its text's pooled visits
                    pooled: dict[str, int] = {}
                    for c in tree.nodes[group.node].children:
                        pooled[tree.nodes[c].step.strip()] = pooled.get(tree.nodes[c].step.strip(), 0) + tree.nodes[c].visits
                    visits = ([pooled[t] for t in texts] if duplicate_steps == "merge"
                              else [tree.nodes[c].visits for c in group.children])
                    groups += 1
                    members += len(texts)
                    unvisited += sum(v == 0 for v in visits)
                    with_unvisited += any(v == 0 for v in visits)
                    unvisited_only_spread += len({y for y, v in zip(group.labels, visits) if v > 0}) <= 1
                    labels_of: dict[str, set] = {}
                    for text, label in zip(texts, group.labels):
                        labels_of.setdefault(text, set()).add(round(label, 6))
                    two_labels += any(len(v) > 1 for v in labels_of.values())
                    duplicates += len(texts) - len(labels_of)
    return {"groups": groups, "members": members, "unvisited_members": unvisited / max(members, 1),
            "groups_with_unvisited": with_unvisited / max(groups, 1),
            "groups_spread_only_from_unvisited": unvisited_only_spread / max(groups, 1),
            "groups_one_text_two_labels": two_labels / max(groups, 1), "duplicate_members": duplicates / max(members, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="PROPA run folders (with trees/); one table row for all of them")
    parser.add_argument("--duplicate-steps", nargs="+", default=["keep"], choices=["keep", "merge", "pool", "drop"],
                        help="group construction(s) to count, one row each (keep = official)")
    args = parser.parse_args(argv)
    print("| duplicate steps | groups | members | unvisited members | groups with an unvisited member | groups whose spread is only unvisited "
          "children | groups where one step text gets two labels | duplicate texts among members |")
    print("|---|---|---|---|---|---|---|---|")
    for option in args.duplicate_steps:
        stats = group_label_stats(args.runs, option)
        print(f"| {option} | {stats['groups']} | {stats['members']} | {stats['unvisited_members']:.2f} | {stats['groups_with_unvisited']:.2f} | "
              f"{stats['groups_spread_only_from_unvisited']:.2f} | {stats['groups_one_text_two_labels']:.2f} | {stats['duplicate_members']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
