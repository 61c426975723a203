"""Word-level tokenization with Hugging Face `tokenizers` (Rust, parallel).

Normalization: HTML line breaks removed, optional lowercasing, punctuation
stripped (apostrophes inside words kept). Vocabulary: the `num_words` most
frequent training words, with id 0 = <pad> and id 1 = <unk> (out of vocabulary).
"""

from __future__ import annotations

import numpy as np
import torch

PAD, UNK = "<pad>", "<unk>"


def train_tokenizer(texts: list[str], num_words: int, max_len: int, lowercase: bool = True):
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    steps = [normalizers.Replace(Regex(r"<br\s*/?>"), " ")]
    if lowercase:
        steps.append(normalizers.Lowercase())
    steps.append(normalizers.Replace(Regex(r"[^\w\s']|'(?!\w)|(?<!\w)'"), " "))
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(vocab_size=num_words, special_tokens=[PAD, UNK], show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    tok.enable_truncation(max_length=max_len)
    return tok


def encode(tokenizer, texts: list[str], max_len: int) -> torch.Tensor:
    """(N, L) int64 token ids, right-padded with 0; L = the longest text, at most max_len."""
    encodings = tokenizer.encode_batch_fast(texts) if hasattr(tokenizer, "encode_batch_fast") else tokenizer.encode_batch(texts)
    lengths = [len(e.ids) for e in encodings]
    width = max(1, max(lengths, default=1))
    out = np.zeros((len(texts), width), dtype=np.int64)
    for row, (e, n) in enumerate(zip(encodings, lengths)):
        out[row, :n] = e.ids
    return torch.from_numpy(out)
