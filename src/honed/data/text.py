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
With `char_ngrams` (words only), the character n-grams of every word (scikit-learn's char_wb) are
hashed into the same buckets: spelling variants, typos and word pieces share rows.
With `unique` (words only), a row is the sorted set of its ids: a binary bag of words and n-grams.
Every tokenizer takes one TextSettings (words.py) and is saved and loaded with it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from honed.data import parallel
from honed.data.tokens import TokenRows
from honed.data.words import PAD, UNK, TextSettings, ids_of_words, texts_ids, word_kinds
from honed.errors import UserError
from honed.registry import Registry

TOKENIZERS: Registry = Registry("tokenizer")


def _encode(args: tuple[list[str], dict[str, int], TextSettings]) -> tuple[np.ndarray, np.ndarray]:
    """(ids of all texts back to back as int32, ids per text): compact to ship back from a worker."""
    texts, index, settings = args
    return texts_ids(texts, index, settings)


def _read(args: tuple[list[str], TextSettings]) -> tuple:
    """A chunk's words read once (word_kinds with every word counted): what fitting and encoding both need."""
    texts, settings = args
    return word_kinds(texts, settings, count_all=True)


def _encode_read(args: tuple[list[tuple], dict[str, int], TextSettings]) -> tuple[np.ndarray, np.ndarray]:
    """_encode of chunks already read by _read."""
    readings, index, settings = args
    parts = [ids_of_words(types, kind, lengths, index, settings) for types, kind, lengths, _ in readings]
    return np.concatenate([v for v, _ in parts]), np.concatenate([n for _, n in parts])


@TOKENIZERS.register("words")
class WordTokenizer:
    FILE = "vocab.json"

    def __init__(self, settings: TextSettings, vocab: list[str] | None = None):
        self.settings = settings
        self.vocab = vocab or []
        self.index = {w: i for i, w in enumerate(self.vocab)}

    def fit(self, texts: list[str]) -> "WordTokenizer":
        if self.settings.hash_words:  # nothing to learn: every word has its bucket already
            self.vocab, self.index = [PAD, UNK], {PAD: 0, UNK: 1}
            return self
        self._keep_most_frequent(parallel.map_chunks(_read, texts, (self.settings,)))
        return self

    def _keep_most_frequent(self, readings: list[tuple]) -> None:
        """The vocabulary: the words of `_read`'s readings (chunk by chunk, in order), most frequent first; ties
        keep first-seen order (Counter is insertion ordered), so it is repeatable."""
        counts: Counter = Counter()
        for types, _, _, per_type in readings:
            counts.update(dict(zip(types, per_type.tolist())))
        top = [w for w, _ in counts.most_common(self.settings.num_words - 2)]
        self.vocab = [PAD, UNK] + top
        self.index = {w: i for i, w in enumerate(self.vocab)}

    def fit_encode(self, texts: list[str]) -> TokenRows:
        """fit(texts) then encode(texts), reading each text once: the regex, the costliest part of both, runs
        once per text, and the words each chunk's worker read are counted and encoded from the same reading."""
        if self.settings.hash_words:
            return self.fit(texts).encode(texts)
        readings = parallel.map_chunks(_read, texts, (self.settings,))
        self._keep_most_frequent(readings)
        return self._rows(parallel.map_chunks(_encode_read, readings, (self.index, self.settings), min_items=2))

    def encode(self, texts: list[str]) -> TokenRows:
        return self._rows(parallel.map_chunks(_encode, texts, (self.index, self.settings)))

    @staticmethod
    def _rows(parts: list[tuple[np.ndarray, np.ndarray]]) -> TokenRows:
        if not parts:
            return TokenRows.from_lists([])
        return TokenRows.from_arrays(np.concatenate([v for v, _ in parts]), np.concatenate([n for _, n in parts]))

    @property
    def vocab_size(self) -> int:
        """Words plus n-gram buckets: the rows an embedding table needs."""
        return len(self.vocab) + (self.settings.buckets if self.settings.hashed else 0)

    def save(self, folder: Path) -> Path:
        from honed.files import write_text

        return write_text(folder / self.FILE, json.dumps(self.vocab, ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path, settings: TextSettings) -> "WordTokenizer":
        from honed.errors import UserError
        from honed.files import loads_json

        path = folder / cls.FILE
        try:
            vocab = loads_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: damaged ({str(e)[:80]}); train the run again") from None
        if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab):
            raise UserError(f"{path}: damaged (not a list of words); train the run again")
        return cls(settings, vocab)


@TOKENIZERS.register("bpe")
class BpeTokenizer:
    """Byte-pair-encoding sub-words (Hugging Face tokenizers), saved as tokenizer.json."""

    FILE = "tokenizer.json"

    def __init__(self, settings: TextSettings, tokenizer=None):
        self.settings, self.tokenizer = settings, tokenizer

    def fit(self, texts: list[str]) -> "BpeTokenizer":
        from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

        s = self.settings
        steps = [normalizers.Replace(Regex(r"<br\s*/?>"), " ")] + ([normalizers.Lowercase()] if s.lowercase else [])
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.normalizer = normalizers.Sequence(steps)
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.BpeTrainer(vocab_size=s.num_words, special_tokens=[PAD, UNK], show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
        tok.enable_truncation(max_length=s.max_len, direction="left" if s.keep_last else "right")
        self.tokenizer = tok
        return self

    def encode(self, texts: list[str]) -> TokenRows:
        return TokenRows.from_lists([e.ids for e in self.tokenizer.encode_batch_fast(texts)])

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def save(self, folder: Path) -> Path:
        from honed.files import write_text

        return write_text(folder / self.FILE, self.tokenizer.to_str())

    @classmethod
    def load(cls, folder: Path, settings: TextSettings) -> "BpeTokenizer":
        from tokenizers import Tokenizer

        return cls(settings, Tokenizer.from_file(str(folder / cls.FILE)))


@TOKENIZERS.register("pretrained")
class PretrainedTokenizer(BpeTokenizer):
    """A pretrained encoder's own tokenizer (data.pretrained), used as it was trained: nothing to fit.

    Its padding is turned off (honed pads each batch with id 0, which is BERT's [PAD]) and its
    truncation set to data.max_len; the tokenizer, so configured, is saved with the run.
    """

    def fit(self, texts: list[str]) -> "PretrainedTokenizer":
        from tokenizers import Tokenizer

        from honed.pretrained import encoder_folder

        tok = Tokenizer.from_file(str(encoder_folder(self.settings.pretrained) / "tokenizer.json"))
        tok.no_padding()
        s = self.settings
        tok.enable_truncation(max_length=s.max_len, direction="left" if s.keep_last else "right")
        if tok.token_to_id("[PAD]") not in (None, 0):
            raise UserError(f"data.pretrained = {s.pretrained!r}: its padding token is not id 0")
        self.tokenizer = tok
        return self
