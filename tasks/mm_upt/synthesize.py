"""MM-UPT's synthetic questions: the model itself writes new questions for unlabeled images (data preparation).

    python -m mmpost.tasks.mm_upt.synthesize --model DIR --images DIR --out FILE.jsonl [--mode direct|in_context]

MM-UPT (README, [V-readme]) names two generators, both the policy MLLM: *direct* (image only -> a question)
and *in-context* (image + an original question -> a new question). Its exact generation prompts were not
seen; `DIRECT_PROMPT` and `IN_CONTEXT_PROMPT` are ours. The output rows (`id`, `images`, `problem`, `mode`,
`source_image`) are what the `digit_sum` task reads with `path=FILE.jsonl`, and MM-UPT then trains on them
with the same majority-vote reward.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from mmpost.types import DataError

DIRECT_PROMPT = ("Look at the image and write one new math question that can be answered from it. "
                 "Write only the question.")
IN_CONTEXT_PROMPT = ("Here is a question about this image: {question}\n"
                     "Write one new, different math question about the same image. Write only the question.")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MODES = ("direct", "in_context")


def synthesis_messages(mode: str, question: str | None = None) -> list[dict]:
    """The chat asking for a new question: the image, then the direct or in-context instruction."""
    if mode not in MODES:
        raise ValueError(f"synthesis mode must be one of {MODES}, got {mode!r}")
    if mode == "in_context":
        if not question:
            raise ValueError("in_context synthesis needs the image's original question")
        text = IN_CONTEXT_PROMPT.format(question=question)
    else:
        text = DIRECT_PROMPT
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def synthesize_questions(
    model: torch.nn.Module,
    processor: Any,
    images: Sequence[str | Path],
    *,
    mode: str = "direct",
    questions: Sequence[str] | None = None,
    max_new_tokens: int = 128,
    temperature: float = 0.7,
    top_p: float = 0.99,
    seed: int = 0,
    batch_size: int = 8,
) -> list[dict]:
    """One generated question per image: rows {id, images: [path], problem, mode, source_image}.

    `questions[i]` is image i's original question (in-context mode). Sampling uses MM-UPT's rollout
    temperature and top_p by default; an empty generation is kept as an empty `problem` so the caller
    sees it (rows with an empty problem are dropped by `main`).
    """
    from mmpost.modalities.image.adapter import ImageModality
    from mmpost.policy import TokenPolicy
    from mmpost.rollout.base import SamplingParams
    from mmpost.rollout.hf import HFGenerateBackend

    if questions is not None and len(questions) != len(images):
        raise ValueError(f"{len(questions)} original questions for {len(images)} images; they must pair up")
    # TokenPolicy only reads EOS, pad and suppressed ids from the tokenizer here.
    policy = TokenPolicy(model, processor, task=None, modality=None)
    backend = HFGenerateBackend(model, pad_token_id=policy.pad_token_id, eos_token_ids=policy.eos_token_ids,
                                suppressed_token_ids=policy.suppressed_token_ids, batch_size=batch_size)
    params = SamplingParams(n=1, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    adapter = ImageModality()
    torch.manual_seed(seed)
    rows: list[dict] = []
    for start in range(0, len(images), batch_size):
        chunk = [str(Path(p).resolve()) for p in images[start : start + batch_size]]
        samples, encodings = [], []
        for offset, path in enumerate(chunk):
            sample = adapter.decode({"id": Path(path).stem, "images": [path]})
            question = questions[start + offset] if questions is not None else None
            samples.append(sample)
            encodings.append(adapter.encode_prompt(processor, synthesis_messages(mode, question), sample))
        result = backend.generate(encodings, samples, params)
        for offset, (path, ids) in enumerate(zip(chunk, result.completion_ids)):
            text = policy.tokenizer.decode(ids, skip_special_tokens=True).strip()
            rows.append({"id": f"synth-{mode}-{start + offset:05d}", "images": [path], "problem": text, "mode": mode,
                         "source_image": Path(path).name})
    return rows


def image_files(folder: str | Path) -> list[Path]:
    """The image files of `folder`, sorted by name; a missing or image-less folder is an error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder (transformers layout)")
    parser.add_argument("--images", required=True, help="folder of images to write questions for")
    parser.add_argument("--out", required=True, help="output .jsonl")
    parser.add_argument("--mode", choices=MODES, default="direct")
    parser.add_argument("--questions", help="in_context mode: a .jsonl of {image: file name, problem: original question}")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from mmpost.config import ModelConfig
    from mmpost.model import load_model, load_processor

    files = image_files(args.images)
    questions = None
    if args.mode == "in_context":
        if not args.questions:
            parser.error("--mode in_context needs --questions")
        originals = {}
        for number, line in enumerate(Path(args.questions).read_text().splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                if "image" not in row or "problem" not in row:
                    raise DataError(f"{args.questions}: line {number} needs 'image' and 'problem'")
                originals[row["image"]] = row["problem"]
        missing = [f.name for f in files if f.name not in originals]
        if missing:
            raise DataError(f"{args.questions}: no original question for image(s) {missing[:5]}")
        questions = [originals[f.name] for f in files]
    model = load_model(ModelConfig(path=args.model), args.model).eval()
    processor = load_processor(args.model)
    with torch.no_grad():
        rows = synthesize_questions(model, processor, files, mode=args.mode, questions=questions,
                                    max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    kept = [r for r in rows if r["problem"]]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in kept))
    print(f"wrote {len(kept)} questions for {len(files)} images to {out} ({len(rows) - len(kept)} empty dropped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
