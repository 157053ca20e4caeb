"""`mmpost eval ...`: run benchmarks with a model, or score an existing predictions file.

    mmpost eval --model PATH_OR_RUN_DIR --benchmark NAME[,NAME...] [--data DIR] [--limit N]
                [--batch-size B] [--output DIR] [--max-new-tokens T] [--mode official]
                [--judge-endpoint URL --judge-model ID] [--score-arg BENCH.KEY=VALUE ...]
    mmpost eval score BENCHMARK PREDICTIONS [--data DIR] [--output DIR] [--mode M] [judge flags]
    mmpost eval search --model DIR --strategy greedy|best_of_n|prm_mcts [--prm DIR] --task NAME [...]

The engine CLI reaches this module by name (`importlib.import_module("mmpost.eval.cli").eval_main`),
so the engine never imports the harness.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from mmpost.judge import Judge


def _add_judge_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("judge (for scorers whose official pipeline asks an LLM)")
    group.add_argument("--judge-endpoint", help="OpenAI-compatible base URL, e.g. https://api.openai.com/v1")
    group.add_argument("--judge-model", help="judge model id (recorded with the results)")
    group.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="environment variable with the API key")
    group.add_argument("--judge-cache", help="folder caching judge replies (default: OUTPUT/judge_cache)")


def build_judge(args: argparse.Namespace, output: str | None) -> Judge | None:
    if not args.judge_endpoint and not args.judge_model:
        return None
    if not args.judge_endpoint or not args.judge_model:
        raise SystemExit("error: --judge-endpoint and --judge-model go together")
    cache = args.judge_cache or (str(Path(output) / "judge_cache") if output else None)
    return Judge(endpoint=args.judge_endpoint, model=args.judge_model, api_key_env=args.judge_api_key_env, cache_dir=cache)


def parse_nested_args(pairs: list[str], flag: str) -> dict[str, dict[str, Any]]:
    """["screenspot.coords=resized_pixels"] -> {"screenspot": {"coords": "resized_pixels"}} (YAML values)."""
    nested: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        outer, dot, inner = key.partition(".")
        if not sep or not dot or not outer or not inner:
            raise SystemExit(f"error: {flag} expects NAME.KEY=VALUE, got {pair!r}")
        nested.setdefault(outer, {})[inner] = yaml.safe_load(value)
    return nested


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmpost eval", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run benchmarks with a model and score them officially.",
        epilog="other commands:\n"
               "  mmpost eval score BENCHMARK PREDICTIONS [--mode M] [--score-arg B.K=V]   score an existing predictions file "
               "(no model); mmpost eval score --help\n"
               "  mmpost eval search --model DIR --strategy greedy|best_of_n|prm_mcts --task T   step-by-step inference "
               "strategies (PROPA); mmpost eval search --help\n"
               "benchmarks: mmpost list benchmarks")
    parser.add_argument("--model", required=True, help="model folder or hub id, or a training run directory")
    parser.add_argument("--benchmark", required=True, help="comma-separated benchmark names")
    parser.add_argument("--data", default=None,
                        help="folder with one subfolder per benchmark (or the benchmark's folder), or NAME=DIR[,NAME=DIR]; "
                             "the official files or a local copy of the published dataset (parquet/arrow). Without it, "
                             "a benchmark loads its published dataset through datasets (cached); offline, pass --data")
    parser.add_argument("--split", action="append", default=[], metavar="BENCH=SPLIT",
                        help="split of a published dataset, e.g. refcoco=testA (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="first N items of each benchmark")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call")
    parser.add_argument("--output", default="eval_results", help="folder for results.json, samples, cache")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--mode", default="official", help="scorer mode (see each scorer)")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    parser.add_argument("--no-cache", action="store_true", help="ignore and do not write the response cache")
    parser.add_argument("--score-arg", action="append", default=[], metavar="BENCH.KEY=VALUE",
                        help="scorer keyword, e.g. mathvista.missing_extraction=wrong or screenspot.coords=resized_pixels (repeatable)")
    parser.add_argument("--load-arg", action="append", default=[], metavar="BENCH.KEY=VALUE",
                        help="loader keyword, e.g. screenspot.version=pro (repeatable)")
    parser.add_argument("--prompt-arg", action="append", default=[], metavar="BENCH.KEY=VALUE",
                        help="prompt keyword, e.g. mathverse.query_type=query_cot (repeatable)")
    parser.add_argument("--modality-arg", action="append", default=[], metavar="MODALITY.KEY=VALUE",
                        help="modality adapter option, e.g. image.max_pixels=1003520 (repeatable)")
    _add_judge_flags(parser)
    return parser


def score_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmpost eval score", description="Score a predictions file in a benchmark's official format.")
    # Both `score BENCHMARK PREDICTIONS` and `score --benchmark B --predictions FILE` are accepted.
    parser.add_argument("benchmark_positional", nargs="?", metavar="BENCHMARK")
    parser.add_argument("predictions_positional", nargs="?", metavar="PREDICTIONS")
    parser.add_argument("--benchmark", dest="benchmark_flag")
    parser.add_argument("--predictions", dest="predictions_flag")
    parser.add_argument("--data", default=None, help="benchmark data folder (needed by DriveLM)")
    parser.add_argument("--output", default=None, help="folder for results.json and samples_<benchmark>.jsonl")
    parser.add_argument("--mode", default="official")
    parser.add_argument("--score-arg", action="append", default=[], metavar="BENCH.KEY=VALUE",
                        help="scorer keyword, e.g. mathvista.missing_extraction=wrong or screenspot.coords=resized_pixels (repeatable)")
    _add_judge_flags(parser)
    return parser


def search_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmpost eval search",
                                     description="Answer a step-format task with greedy, step-level best-of-n or PRM-guided MCTS.")
    parser.add_argument("--model", required=True, help="policy folder or training run directory")
    parser.add_argument("--strategy", required=True, choices=["greedy", "best_of_n", "prm_mcts"])
    parser.add_argument("--prm", default=None, help="process reward model folder (needed by best_of_n and prm_mcts)")
    parser.add_argument("--prm-base", default=None, help="backbone of a LoRA PRM (default: --model)")
    parser.add_argument("--task", default="propa_digits", help="registered task whose rows carry question + answer")
    parser.add_argument("--task-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="task keyword, e.g. question_style=short (repeatable, YAML values)")
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--limit", type=int, default=None, help="first N questions of the split")
    parser.add_argument("--output", default="eval_results", help="folder for results.json and samples_search.jsonl")
    group = parser.add_argument_group("search (official PROPA values by default)")
    group.add_argument("--num-children", type=int, default=4, help="steps sampled per expansion; best_of_n's n")
    group.add_argument("--min-iterations", type=int, default=25)
    group.add_argument("--min-final-answers", type=int, default=2)
    group.add_argument("--max-iterations", type=int, default=100)
    group.add_argument("--exploration", type=float, default=1.0, help="UCT constant c")
    group.add_argument("--max-steps", type=int, default=20, help="step cap of greedy and best_of_n chains")
    group.add_argument("--max-new-tokens", type=int, default=64, help="tokens per step")
    group.add_argument("--temperature", type=float, default=1.0)
    group.add_argument("--system-prompt", default=None, help="step system prompt (default PROPA's; '' for none)")
    group.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    return parser


def parse_flat_args(pairs: list[str], flag: str) -> dict[str, Any]:
    """["question_style=short", "heldout_size=8"] -> {"question_style": "short", "heldout_size": 8} (YAML values)."""
    flat: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: {flag} expects KEY=VALUE, got {pair!r}")
        flat[key] = yaml.safe_load(value)
    return flat


def search_command(argv: list[str]) -> int:
    from mmpost.eval.search_strategy import SearchSettings, run_search_evaluation

    parser = search_parser()
    args = parser.parse_args(argv)
    if args.strategy in ("best_of_n", "prm_mcts") and not args.prm:
        parser.error(f"--strategy {args.strategy} needs --prm PRM_DIR (a process reward model folder)")
    settings = SearchSettings(num_children=args.num_children, min_iterations=args.min_iterations,
                              min_final_answers=args.min_final_answers, max_iterations=args.max_iterations,
                              exploration=args.exploration, max_steps=args.max_steps)
    results = run_search_evaluation(
        args.model, args.strategy, prm=args.prm, prm_base=args.prm_base, task=args.task,
        task_args=parse_flat_args(args.task_arg, "--task-arg"), split=args.split, limit=args.limit, output=args.output,
        settings=settings, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
        system_prompt=args.system_prompt, seed=args.seed, dtype=args.dtype)
    counts = results["counts"]
    print(f"{results['task']}/{results['split']} strategy={results['strategy']} accuracy={results['metrics']['accuracy']:.4f} "
          f"({counts['correct']}/{counts['questions']}, {counts['no_final_answer']} without a final answer)")
    return 0


def parse_data(value: str) -> dict[str, str] | str:
    if "=" not in value:
        return value
    pairs = [part.partition("=") for part in value.split(",")]
    if any(not sep or not name or not folder for name, sep, folder in pairs):
        raise SystemExit(f"error: --data expects DIR or NAME=DIR[,NAME=DIR], got {value!r}")
    return {name: folder for name, _, folder in pairs}


def eval_main(argv: list[str]) -> int:
    """Entry point of `mmpost eval`; returns the process exit code (1 if a benchmark could not be scored)."""
    if argv and argv[0] == "search":
        return search_command(argv[1:])
    if argv and argv[0] == "score":
        from mmpost.eval.score_cli import score_command

        parser = score_parser()
        args = parser.parse_args(argv[1:])
        args.benchmark = args.benchmark_flag or args.benchmark_positional
        args.predictions = args.predictions_flag or args.predictions_positional
        if not args.benchmark or not args.predictions:
            parser.error("give the benchmark and the predictions file (positionally or with --benchmark/--predictions)")
        score_args = parse_nested_args(args.score_arg, "--score-arg")
        unrelated = sorted(set(score_args) - {args.benchmark})
        if unrelated:
            parser.error(f"--score-arg names {unrelated}, but the benchmark scored is {args.benchmark!r}")
        score_command(benchmark=args.benchmark, predictions=args.predictions, data=args.data, output=args.output,
                      mode=args.mode, judge=build_judge(args, args.output), score_args=score_args.get(args.benchmark))
        return 0
    args = run_parser().parse_args(argv)
    from mmpost.eval.common import BenchmarkDataError
    from mmpost.eval.runner import run_evaluation

    benchmarks = [name.strip() for name in args.benchmark.split(",") if name.strip()]
    try:
        results = _run_benchmarks(args, benchmarks, run_evaluation)
    except BenchmarkDataError as error:  # missing or unreachable data: one line that says what to do
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_summary(results)
    return 1 if any("error" in entry for entry in results["results"].values()) else 0


def _run_benchmarks(args: argparse.Namespace, benchmarks: list[str], run_evaluation) -> dict:
    return run_evaluation(
        args.model, benchmarks, parse_data(args.data) if args.data else None, limit=args.limit,
        batch_size=args.batch_size, output=args.output,
        max_new_tokens=args.max_new_tokens, mode=args.mode, judge=build_judge(args, args.output),
        score_args=parse_nested_args(args.score_arg, "--score-arg"), load_args=parse_nested_args(args.load_arg, "--load-arg"),
        prompt_args=parse_nested_args(args.prompt_arg, "--prompt-arg"),
        modality_args=parse_nested_args(args.modality_arg, "--modality-arg"), dtype=args.dtype, use_cache=not args.no_cache,
        splits=parse_flat_args(args.split, "--split"),
    )


def print_summary(results: dict) -> None:
    for name, entry in results["results"].items():
        print(f"{name} (mode={entry.get('scorer_mode')}, n={entry.get('n_samples')}, cached={entry.get('cached_answers')})")
        if "error" in entry:
            print(f"  NOT SCORED: {entry['error']}")
        for metric, value in entry.get("metrics", {}).items():
            shown = f"{value:.4f}" if isinstance(value, float) else json.dumps(value)
            print(f"  {metric:<28} {shown}")


if __name__ == "__main__":  # python -m mmpost.eval.cli ... (how torchrun launches it)
    sys.exit(eval_main(sys.argv[1:]))
