"""COCO caption metrics (BLEU-1..4, ROUGE-L, CIDEr-D) as pycocoevalcap computes them, one reference per item.

This is what DriveLM's `challenge/evaluation.py` calls through bckim92/language-evaluation's
`CocoEvaluator(coco_types=["BLEU", "ROUGE_L", "CIDEr"])`, whose bundled `coco_caption_py3` is the
pycocoevalcap code: Stanford PTBTokenizer 3.4.1 (Java, `-preserveLines -lowerCase`) then dropping the
tokens in `PUNCTUATION_TOKENS`, corpus BLEU (Papineni et al. 2002, `bleu_scorer.py`), mean sentence
ROUGE-L with beta=1.2 (Lin 2004), and CIDEr-D (Vedantam et al. 2015, `cider_scorer.py`).

The scoring formulas here reproduce pycocoevalcap exactly given the same tokens. Tokenisation has two
backends (`tokenizer=`):
- "java": pycocoevalcap's own PTBTokenizer (needs `pip install pycocoevalcap` and a `java` binary);
  exact.
- "python": `ptb_like_tokenize`, a re-implementation of the PTB rules that matter for answers like
  DriveLM's (clitics, numbers, brackets, quotes, abbreviations). It agrees with the Java tokenizer on
  the DriveLM sample files token for token, but it is an APPROXIMATION: rarer PTB rules (e.g.
  sentence-final single-letter abbreviations, currency/units inside words, Unicode normalisation)
  are not reproduced, so scores can differ on unusual text.
- "auto" (default): "java" when available, else "python".
"""
from __future__ import annotations

import math
import re
import shutil
from collections import Counter

TOKENIZERS = ("auto", "java", "python")
# pycocoevalcap's list. The PTB tokenizer runs with -lowerCase, so brackets come out as "-lrb-" etc.
# and are NOT removed by this (upper-case) list: they stay tokens, as in the official pipeline.
PUNCTUATION_TOKENS = frozenset({"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
                                "--", "...", ";"})
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
# PTB lexer rules, in priority order (the regex takes the first alternative that matches at a position):
_PTB_TOKEN = re.compile(r"""
    \w+?(?=n't\b)                 # "don't" -> "do" + "n't", "can't" -> "ca" + "n't"
  | n't\b
  | '(?:s|re|ve|ll|m|d)\b          # clitics split off the word: "car's" -> "car" + "'s"
  | (?:[a-z]\.){2,}                # abbreviations: "e.g.", "u.s.a."
  | \d*(?:[.:,]\d+)+               # numbers, also with a leading separator: "1,000", "10:30", ",1088.3,497.5"
  | @?\w+(?:[-/]\w+)*              # words, hyphen/slash compounds: "left-turn", "x/y", "@home", "cam_back"
  | \.\.\.|--|``|''
  | [^\w\s]
""", re.VERBOSE)


def ptb_like_tokenize(text: str) -> list[str]:
    """Python approximation of PTBTokenizer(-lowerCase) + pycocoevalcap's punctuation removal."""
    tokens: list[str] = []
    for token in _PTB_TOKEN.findall(text.lower().replace("\n", " ")):
        if token == '"':
            continue  # PTB turns double quotes into `` and '', both removed
        if token == "cannot":
            tokens.extend(("can", "not"))
            continue
        token = _BRACKETS.get(token, token)
        if token not in PUNCTUATION_TOKENS:
            tokens.append(token)
    return tokens


def java_tokenizer_available() -> bool:
    """True when pycocoevalcap (with its Stanford CoreNLP jar) is importable and `java` is on PATH."""
    if shutil.which("java") is None:
        return False
    try:
        import pycocoevalcap.tokenizer.ptbtokenizer  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_tokenizer(tokenizer: str = "auto") -> str:
    """"java" or "python" for a requested backend; "java" without Java/pycocoevalcap is an error."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"caption_metrics: tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
    if tokenizer == "auto":
        return "java" if java_tokenizer_available() else "python"
    if tokenizer == "java" and not java_tokenizer_available():
        raise RuntimeError("caption_metrics: tokenizer='java' needs `pip install pycocoevalcap` and a `java` binary "
                           "(e.g. apt-get install default-jre-headless)")
    return tokenizer


def java_ptb_tokenize(texts: list[str]) -> list[list[str]]:
    """pycocoevalcap's PTBTokenizer (Java) on each text, punctuation tokens removed, in order."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    if not texts:
        return []
    tokenized = PTBTokenizer().tokenize({index: [{"caption": text}] for index, text in enumerate(texts)})
    return [tokenized[index][0].split() for index in range(len(texts))]


def tokenize_captions(texts: list[str], tokenizer: str = "auto") -> list[list[str]]:
    """Token lists for `texts` with the resolved backend (see module docstring)."""
    if resolve_tokenizer(tokenizer) == "java":
        return java_ptb_tokenize(texts)
    return [ptb_like_tokenize(text) for text in texts]


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
    references, clipped similarity, Gaussian length penalty, mean over n, times 10, mean over items.

    As in `cider_scorer.py`, the "length" in the penalty is the number of bigrams (len - 1, 0 for
    an empty text), which only differs from the token count when a text is empty.
    """
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
        return vectors, norms, max(len(tokens) - 1, 0)

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


def coco_language_scores(predictions: list[str], references: list[str], tokenizer: str = "auto") -> dict[str, float]:
    """{"Bleu_1".."Bleu_4", "ROUGE_L", "CIDEr"} in pycocoevalcap's key order (DriveLM's language
    score relies on that order). `tokenizer`: "auto" | "java" | "python" (see module docstring)."""
    if len(predictions) != len(references):
        raise ValueError(f"caption_metrics: {len(predictions)} predictions vs {len(references)} references")
    hypotheses = tokenize_captions(predictions, tokenizer)
    tokenized_refs = tokenize_captions(references, tokenizer)
    bleu = corpus_bleu(hypotheses, tokenized_refs)
    scores = {f"Bleu_{n + 1}": value for n, value in enumerate(bleu)}
    scores["ROUGE_L"] = rouge_l(hypotheses, tokenized_refs)
    scores["CIDEr"] = cider_d(hypotheses, tokenized_refs)
    return scores
