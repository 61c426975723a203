"""Bag of embeddings: EmbeddingBag (mean over the real tokens) -> dense layers -> output.

With hidden [24], relu and one sigmoid output this is the classic Keras IMDB model
(Embedding 16 -> GlobalAveragePooling1D -> Dense 24 relu -> Dense 1 sigmoid), except
that padding is left out of the average instead of diluting it.

With hashed n-grams (data.ngrams) the table grows to millions of rows, of which one
batch touches a few thousand: `model.sparse` then makes the embedding's gradient sparse,
and the loop steps it with a sparse optimizer (see training/optimizers.py).
"""

from __future__ import annotations

import torch
from torch import nn

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.layers import Head, dense_stack, real_tokens


class BagOfEmbeddings(nn.Module):
    def __init__(self, vocab_size: int, dim: int, hidden: list[int], activation: str, dropout: float, n_out: int,
                 sparse: bool = False) -> None:
        super().__init__()
        # Id 0 is padding: forward hands the table only the real ids of each row (see real_tokens),
        # so padded and unpadded rows pool the same and row 0 is never read.
        self.embedding = nn.EmbeddingBag(vocab_size, dim, mode="mean", sparse=sparse)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        self.dense = dense_stack([dim, *hidden], activation, dropout)
        self.head = Head(([dim, *hidden])[-1], n_out)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pooled = self.masked_mean(tokens) if torch.compiler.is_exporting() else self.embedding(*real_tokens(tokens))
        return self.head(self.dense(pooled))

    def masked_mean(self, tokens: torch.Tensor) -> torch.Tensor:
        """The same mean as the EmbeddingBag, as a gather and a sum: for export, where ONNX's form of
        EmbeddingBag (a loop over bags) runs 30x slower in ONNX Runtime than this."""
        real = (tokens != 0).unsqueeze(-1).to(self.embedding.weight.dtype)
        vectors = nn.functional.embedding(tokens, self.embedding.weight)
        return (vectors * real).sum(dim=1) / real.sum(dim=1).clamp(min=1.0)


@MODELS.register("bag")
def build(spec, shape: Shape) -> nn.Module:
    if shape.input_kind != "tokens":
        raise UserError("model.name = 'bag' needs text data (data.source imdb or text_files)")
    return BagOfEmbeddings(shape.input_dim, spec.embedding_dim, spec.hidden, spec.activation, spec.dropout,
                           shape.output_dim, spec.sparse)
