"""Bag of embeddings: Embedding -> mean over the real tokens -> dense layers -> output.

With hidden [24], relu and one sigmoid output this is the classic Keras IMDB model
(Embedding 16 -> GlobalAveragePooling1D -> Dense 24 relu -> Dense 1 sigmoid), except
that padding is masked out of the average instead of diluting it.
"""

from __future__ import annotations

import torch
from torch import nn

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.layers import Head, dense_stack, masked_mean


class BagOfEmbeddings(nn.Module):
    def __init__(self, vocab_size: int, dim: int, hidden: list[int], activation: str, dropout: float, n_out: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.dense = dense_stack([dim, *hidden], activation, dropout)
        self.head = Head(([dim, *hidden])[-1], n_out)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pooled = masked_mean(self.embedding(tokens), tokens != 0)
        return self.head(self.dense(pooled))


@MODELS.register("bag")
def build(spec, shape: Shape) -> nn.Module:
    if shape.input_kind != "tokens":
        raise UserError("model.name = 'bag' needs text data (data.source imdb or text_files)")
    return BagOfEmbeddings(shape.input_dim, spec.embedding_dim, spec.hidden, spec.activation, spec.dropout, shape.output_dim)
