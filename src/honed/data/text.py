"""Text tokenizers by name, each with fit (on training texts only), encode, save and load.

- `words`: lowercased word tokens (`[\\w']+` after removing HTML line breaks), a vocabulary of
  the `num_words` most frequent training words; id 0 = <pad>, id 1 = <unk>. Tokenization
  runs in parallel worker processes on large inputs. On this kind of data it measured
  faster than a Rust WordLevel tokenizer, whose per-text Encoding objects cost more than
  the regex itself.
- `bpe`: byte-pair-encoding sub-words from Hugging Face `tokenizers` (no unknown words).

Encoded texts are TokenRows (data/tokens.py): ids back to back, padded with 0 only batch by batch.
With `ngrams` > 1 (words only), each row also carries hashed n-gram ids after its word ids,
in `buckets` extra ids above the vocabulary (fastText's trick: no n-gram vocabulary to build).
With `unique` (words only), a row is the sorted set of its ids: a binary bag of words and n-grams.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from honed.data import parallel
from honed.data.tokens import TokenRows
from honed.data.words import PAD, UNK, texts_ids, words_of
from honed.errors import UserError
from honed.registry import Registry

TOKENIZERS: Registry = Registry("tokenizer")


def _count(args: tuple[list[str], bool]) -> Counter:
    texts, lowercase = args
    counts: Counter = Counter()
    for t in texts:
        counts.update(words_of(t, lowercase))
    return counts


def _encode(args: tuple[list[str], bool, dict[str, int], int, bool, int, int, bool]) -> tuple[np.ndarray, np.ndarray]:
    """(ids of all texts back to back as int32, ids per text): compact to ship back from a worker."""
    texts, lowercase, index, max_len, keep_last, ngrams, buckets, unique = args
    return texts_ids(texts, index, lowercase, max_len, keep_last, ngrams, buckets, unique)


@TOKENIZERS.register("words")
class WordTokenizer:
    FILE = "vocab.json"

    def __init__(self, num_words: int, max_len: int, lowercase: bool = True, keep_last: bool = False,
                 vocab: list[str] | None = None, ngrams: int = 1, buckets: int = 0, unique: bool = False,
                 pretrained: str | None = None):
        self.num_words, self.max_len, self.lowercase, self.keep_last = num_words, max_len, lowercase, keep_last
        self.ngrams, self.buckets, self.unique = ngrams, buckets, unique
        self.vocab = vocab or []
        self.index = {w: i for i, w in enumerate(self.vocab)}

    def fit(self, texts: list[str]) -> "WordTokenizer":
        counts: Counter = Counter()
        for part in parallel.map_chunks(_count, texts, (self.lowercase,)):
            counts.update(part)
        # Most frequent first; ties keep first-seen order (Counter is insertion ordered), so it is repeatable.
        top = [w for w, _ in counts.most_common(self.num_words - 2)]
        self.vocab = [PAD, UNK] + top
        self.index = {w: i for i, w in enumerate(self.vocab)}
        return self

    def encode(self, texts: list[str]) -> TokenRows:
        parts = parallel.map_chunks(_encode, texts, (self.lowercase, self.index, self.max_len, self.keep_last,
                                                     self.ngrams, self.buckets, self.unique))
        if not parts:
            return TokenRows.from_lists([])
        return TokenRows.from_arrays(np.concatenate([v for v, _ in parts]), np.concatenate([n for _, n in parts]))

    @property
    def vocab_size(self) -> int:
        """Words plus n-gram buckets: the rows an embedding table needs."""
        return len(self.vocab) + (self.buckets if self.ngrams > 1 else 0)

    def save(self, folder: Path) -> Path:
        path = folder / self.FILE
        path.write_text(json.dumps(self.vocab, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, folder: Path, num_words: int, max_len: int, lowercase: bool, keep_last: bool,
             ngrams: int = 1, buckets: int = 0, unique: bool = False, pretrained: str | None = None) -> "WordTokenizer":
        vocab = json.loads((folder / cls.FILE).read_text())
        return cls(num_words, max_len, lowercase, keep_last, vocab, ngrams, buckets, unique)


@TOKENIZERS.register("bpe")
class BpeTokenizer:
    """Byte-pair-encoding sub-words (Hugging Face tokenizers), saved as tokenizer.json."""

    FILE = "tokenizer.json"

    def __init__(self, num_words: int, max_len: int, lowercase: bool = True, keep_last: bool = False,
                 tokenizer=None, ngrams: int = 1, buckets: int = 0, unique: bool = False, pretrained: str | None = None):
        self.num_words, self.max_len, self.lowercase, self.keep_last = num_words, max_len, lowercase, keep_last
        self.tokenizer, self.pretrained = tokenizer, pretrained

    def fit(self, texts: list[str]) -> "BpeTokenizer":
        from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

        steps = [normalizers.Replace(Regex(r"<br\s*/?>"), " ")] + ([normalizers.Lowercase()] if self.lowercase else [])
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.normalizer = normalizers.Sequence(steps)
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.BpeTrainer(vocab_size=self.num_words, special_tokens=[PAD, UNK], show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
        tok.enable_truncation(max_length=self.max_len, direction="left" if self.keep_last else "right")
        self.tokenizer = tok
        return self

    def encode(self, texts: list[str]) -> TokenRows:
        return TokenRows.from_lists([e.ids for e in self.tokenizer.encode_batch_fast(texts)])

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def save(self, folder: Path) -> Path:
        path = folder / self.FILE
        self.tokenizer.save(str(path))
        return path

    @classmethod
    def load(cls, folder: Path, num_words: int, max_len: int, lowercase: bool, keep_last: bool,
             ngrams: int = 1, buckets: int = 0, unique: bool = False, pretrained: str | None = None) -> "BpeTokenizer":
        from tokenizers import Tokenizer

        return cls(num_words, max_len, lowercase, keep_last, Tokenizer.from_file(str(folder / cls.FILE)),
                   pretrained=pretrained)


@TOKENIZERS.register("pretrained")
class PretrainedTokenizer(BpeTokenizer):
    """A pretrained encoder's own tokenizer (data.pretrained), used as it was trained: nothing to fit.

    Its padding is turned off (honed pads each batch with id 0, which is BERT's [PAD]) and its
    truncation set to data.max_len; the tokenizer, so configured, is saved with the run.
    """

    def fit(self, texts: list[str]) -> "PretrainedTokenizer":
        from tokenizers import Tokenizer

        from honed.pretrained import encoder_folder

        tok = Tokenizer.from_file(str(encoder_folder(self.pretrained) / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_len, direction="left" if self.keep_last else "right")
        if tok.token_to_id("[PAD]") not in (None, 0):
            raise UserError(f"data.pretrained = {self.pretrained!r}: its padding token is not id 0")
        self.tokenizer = tok
        return self
