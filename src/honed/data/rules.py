"""Settings chosen by rules that read the training data (never the validation or test split).

A recipe may leave a data setting as `auto`; the rule here reads the training texts, picks a
value, and says in the log which rule picked what. The run's recipe.yaml keeps `auto`;
preprocess.json keeps the value the rule chose, so predictions use exactly what training used.
"""

from __future__ import annotations

import logging

import numpy as np

from honed.data.words import TextSettings

log = logging.getLogger("honed")

SHORT_TEXT_WORDS = 50  # character n-grams pay on short texts (phrases, sentences, messages)
CHAR_NGRAMS = (2, 5)  # scikit-learn's char_wb range that text-classification baselines use


def median_words(texts: list[str], sample: int = 2000) -> float:
    """Median whitespace-separated words per text, over an evenly spaced sample of at most `sample` texts."""
    if not texts:
        return 0.0
    step = max(1, len(texts) // sample)
    return float(np.median([len(str(t).split()) for t in texts[::step]]))


def text_settings(spec, texts: list[str]) -> TextSettings:
    """The DataSpec's text settings, with every `auto` resolved from the training texts."""
    chars = spec.char_ngrams
    if chars == "auto":
        words = median_words(texts)
        short = words <= SHORT_TEXT_WORDS
        chars = CHAR_NGRAMS if short else None
        log.info(f"data: {len(texts):,} training texts, median {words:g} words: character n-grams "
                 f"{'%d-%d on' % CHAR_NGRAMS if short else 'off'} (data.char_ngrams: auto; on up to "
                 f"{SHORT_TEXT_WORDS} words)")
    return TextSettings(
        tokenizer=spec.tokenizer, num_words=spec.num_words, max_len=spec.max_len, lowercase=spec.lowercase,
        keep_last=spec.keep_tokens == "last", ngrams=spec.ngrams, buckets=spec.ngram_buckets,
        unique=spec.unique_tokens, char_ngrams=tuple(chars) if chars else None, pretrained=spec.pretrained)
