"""Settings chosen by rules that read the training data (never the validation or test split).

A recipe may leave a data setting as `auto`; the rule here reads the training texts, picks a
value, and says in the log which rule picked what. The run's recipe.yaml keeps `auto`;
preprocess.json keeps the value the rule chose, so predictions use exactly what training used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import logging

import numpy as np

from honed.data.words import TextSettings

if TYPE_CHECKING:
    from honed.recipe.schema import TextData

log = logging.getLogger("honed")

SHORT_TEXT_WORDS = 50  # character n-grams and word trigrams pay on short texts (phrases, sentences, messages)
CHAR_NGRAMS = (2, 5)  # scikit-learn's char_wb range that text-classification baselines use
SHORT_NGRAMS, LONG_NGRAMS = 3, 2  # long texts: trigrams add ids (memory, time) for little


def median_words(texts: list[str], sample: int = 2000) -> float:
    """Median whitespace-separated words per text, over an evenly spaced sample of at most `sample` texts."""
    if not texts:
        return 0.0
    step = max(1, len(texts) // sample)
    return float(np.median([len(str(t).split()) for t in texts[::step]]))


def text_settings(spec: TextData, texts: list[str]) -> TextSettings:
    """The DataSpec's text settings, with every `auto` resolved from the training texts."""
    chars, ngrams = spec.char_ngrams, spec.ngrams
    if "auto" in (chars, ngrams):
        words = median_words(texts)
        short = words <= SHORT_TEXT_WORDS
        chosen = []
        if chars == "auto":
            chars = CHAR_NGRAMS if short else None
            chosen.append(f"character n-grams {'%d-%d on' % CHAR_NGRAMS if short else 'off'}")
        if ngrams == "auto":
            ngrams = SHORT_NGRAMS if short else LONG_NGRAMS
            chosen.append(f"word n-grams up to {ngrams}")
        log.info(f"data: {len(texts):,} training texts, median {words:g} words ({'short' if short else 'long'}: "
                 f"up to {SHORT_TEXT_WORDS}): {', '.join(chosen)} (auto)")
    return TextSettings(
        tokenizer=spec.tokenizer, num_words=spec.num_words, max_len=spec.max_len, lowercase=spec.lowercase,
        keep_last=spec.keep_tokens == "last", ngrams=ngrams, buckets=spec.ngram_buckets,
        unique=spec.unique_tokens, char_ngrams=tuple(chars) if chars else None, pretrained=spec.pretrained,
        encoder_features=spec.encoder_features, hash_words=spec.vocabulary == "hashed")
