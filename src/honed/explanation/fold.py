"""Token attributions back onto the words a person reads.

A text's token ids are its words, then (words tokenizer) hashed word n-grams and character n-grams,
possibly as a sorted set (data.unique_tokens). Attributions are first summed per id; each id's
attribution is then shared among the pieces of text that produced it: a word's own id and its
character n-grams go to that word, an n-gram of k words gives each of them 1/k, and an id produced by
several pieces (a repeated word, a hash collision) is split among them by those shares. Every
attribution lands on some word, so the words' attributions still add up to the text's.

Sub-word tokenizers (bpe, pretrained) show their pieces; a piece starting with "##" joins the word
before it.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from honed.data.words import bucket_ids, ngram_hashes, word_char_ngrams, words_of


def word_pieces(text: str, index: dict[str, int], settings) -> tuple[list[str], list[tuple[int, int, float]]]:
    """(the words the tokenizer kept, [(word position, id, share)]) for the words tokenizer."""
    s = settings
    words = words_of(text, s.lowercase)
    words = words[-s.max_len:] if s.keep_last else words[: s.max_len]
    ids = np.array([index.get(w, 1) for w in words], dtype=np.int64)
    pieces = [(i, int(t), 1.0) for i, t in enumerate(ids)]
    if s.ngrams > 1 and len(words) > 1:
        row = np.zeros(len(words), dtype=np.int64)
        for k, hashed, _ in ngram_hashes(words, ids, row, s.ngrams):
            for start, gram in enumerate(bucket_ids(hashed + np.uint64(k), s.buckets, len(index)).tolist()):
                pieces += [(start + j, int(gram), 1.0 / (k + 1)) for j in range(k + 1)]
    if s.char_ngrams is not None:
        for i, w in enumerate(words):
            grams = np.array(word_char_ngrams(w, *s.char_ngrams), dtype=np.uint64)
            pieces += [(i, int(g), 1.0) for g in bucket_ids(grams, s.buckets, len(index)).tolist()]
    return words, pieces


def fold_to_words(ids: list[int], values: list[float], words: list[str],
                  pieces: list[tuple[int, int, float]]) -> list[float]:
    """Per-word attributions from per-position ones (`ids[i]` carries `values[i]`)."""
    per_id: dict[int, float] = defaultdict(float)
    for token, value in zip(ids, values):
        if token != 0:
            per_id[token] += value
    shares: dict[int, float] = defaultdict(float)
    for _, token, share in pieces:
        shares[token] += share
    out = [0.0] * len(words)
    for position, token, share in pieces:
        if token in per_id and shares[token] > 0:
            out[position] += per_id[token] * share / shares[token]
    return out


def subword_words(pieces: list[str], values: list[float]) -> tuple[list[str], list[float]]:
    """WordPiece pieces joined into words ("play", "##ing" -> "playing"), their attributions summed."""
    words, out = [], []
    for piece, value in zip(pieces, values):
        if piece.startswith("##") and words:
            words[-1] += piece[2:]
            out[-1] += value
        elif piece in ("[CLS]", "[SEP]", "[PAD]", "<pad>"):
            continue
        else:
            words.append(piece)
            out.append(value)
    return words, out
