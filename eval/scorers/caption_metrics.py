"""COCO caption metrics (BLEU-1..4, ROUGE-L, CIDEr-D) as in pycocoevalcap, one reference per item.

pycocoevalcap tokenises with the Stanford PTB tokenizer (Java) and drops punctuation tokens; here
`ptb_like_tokenize` approximates it in Python (lower-case, split off punctuation, drop the same
punctuation tokens), so scores can differ slightly from the Java pipeline on unusual text.
"""
from __future__ import annotations

import math
import re
from collections import Counter

PUNCTUATION_TOKENS = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";",
                      "(", ")", "{", "}"}
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|\w+(?:[-']\w+)*|\.\.\.|--|[^\w\s]")


def ptb_like_tokenize(text: str) -> list[str]:
    return [token for token in _TOKEN.findall(text.lower().replace("\n", " ")) if token not in PUNCTUATION_TOKENS]


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: list[list[str]], references: list[list[str]], max_n: int = 4) -> list[float]:
    """pycocoevalcap corpus BLEU-1..max_n: clipped n-gram matches summed over the corpus,
    brevity penalty from summed lengths (tiny=1e-15, small=1e-9 smoothing as in bleu_scorer.py)."""
    tiny, small = 1e-15, 1e-9
    correct = [0] * max_n
    guess = [0] * max_n
    test_length = reference_length = 0
    for hypothesis, reference in zip(hypotheses, references):
        test_length += len(hypothesis)
        reference_length += len(reference)
        for n in range(1, max_n + 1):
            hyp_counts, ref_counts = _ngrams(hypothesis, n), _ngrams(reference, n)
            correct[n - 1] += sum(min(count, ref_counts[gram]) for gram, count in hyp_counts.items())
            guess[n - 1] += max(len(hypothesis) - n + 1, 0)
    scores = []
    product = 1.0
    for n in range(max_n):
        product *= (correct[n] + tiny) / (guess[n] + small)
        scores.append(product ** (1.0 / (n + 1)))
    ratio = (test_length + tiny) / (reference_length + small)
    if ratio < 1:
        scores = [score * math.exp(1 - 1 / ratio) for score in scores]
    return scores


def _lcs(first: list[str], second: list[str]) -> int:
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for column, other in enumerate(second, start=1):
            current.append(previous[column - 1] + 1 if token == other else max(previous[column], current[-1]))
        previous = current
    return previous[-1]


def rouge_l(hypotheses: list[list[str]], references: list[list[str]], beta: float = 1.2) -> float:
    """Mean sentence ROUGE-L F-measure with beta=1.2 (pycocoevalcap rouge.py)."""
    scores = []
    for hypothesis, reference in zip(hypotheses, references):
        lcs = _lcs(hypothesis, reference)
        precision = lcs / len(hypothesis) if hypothesis else 0.0
        recall = lcs / len(reference) if reference else 0.0
        if precision and recall:
            scores.append((1 + beta ** 2) * precision * recall / (recall + beta ** 2 * precision))
        else:
            scores.append(0.0)
    return sum(scores) / len(scores) if scores else 0.0


def cider_d(hypotheses: list[list[str]], references: list[list[str]], max_n: int = 4, sigma: float = 6.0) -> float:
    """pycocoevalcap `Cider` (CIDEr-D): tf-idf n-gram vectors with document frequencies over the
    references, clipped similarity, Gaussian length penalty, mean over n, times 10, mean over items."""
    document_frequency: Counter = Counter()
    for reference in references:
        grams = set()
        for n in range(1, max_n + 1):
            grams.update(_ngrams(reference, n))
        document_frequency.update(grams)
    log_corpus = math.log(float(len(references)))

    def vector(tokens: list[str]) -> tuple[list[dict], list[float], int]:
        vectors, norms = [], []
        for n in range(1, max_n + 1):
            vec = {gram: count * (log_corpus - math.log(max(1.0, document_frequency[gram])))
                   for gram, count in _ngrams(tokens, n).items()}
            vectors.append(vec)
            norms.append(math.sqrt(sum(value * value for value in vec.values())))
        return vectors, norms, len(tokens)

    scores = []
    for hypothesis, reference in zip(hypotheses, references):
        hyp_vec, hyp_norm, hyp_len = vector(hypothesis)
        ref_vec, ref_norm, ref_len = vector(reference)
        delta = float(hyp_len - ref_len)
        values = []
        for n in range(max_n):
            value = sum(min(weight, ref_vec[n][gram]) * ref_vec[n][gram]
                        for gram, weight in hyp_vec[n].items() if gram in ref_vec[n])
            if hyp_norm[n] != 0 and ref_norm[n] != 0:
                value /= hyp_norm[n] * ref_norm[n]
            values.append(value * math.exp(-(delta ** 2) / (2 * sigma ** 2)))
        scores.append(sum(values) / max_n * 10.0)
    return sum(scores) / len(scores) if scores else 0.0


def coco_language_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """{"Bleu_1".."Bleu_4", "ROUGE_L", "CIDEr"} in pycocoevalcap's key order."""
    hypotheses = [ptb_like_tokenize(text) for text in predictions]
    tokenized_refs = [ptb_like_tokenize(text) for text in references]
    bleu = corpus_bleu(hypotheses, tokenized_refs)
    scores = {f"Bleu_{n + 1}": value for n, value in enumerate(bleu)}
    scores["ROUGE_L"] = rouge_l(hypotheses, tokenized_refs)
    scores["CIDEr"] = cider_d(hypotheses, tokenized_refs)
    return scores
