"""Bag of embeddings: EmbeddingBag (mean over the real tokens) -> dense layers -> output.

With hidden [24], relu and one sigmoid output this is the classic Keras IMDB model
(Embedding 16 -> GlobalAveragePooling1D -> Dense 24 relu -> Dense 1 sigmoid), except
that padding is left out of the average instead of diluting it.

With hashed n-grams (data.ngrams) the table grows to millions of rows, of which one
batch touches a few thousand: `model.sparse` then makes the embedding's gradient sparse,
and the loop steps it with a sparse optimizer (see training/optimizers.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.layers import Head, TokenPool, dense_stack

if TYPE_CHECKING:
    from honed.recipe.schema import ModelSpec


class BagOfEmbeddings(nn.Module):
    def __init__(self, vocab_size: int, dim: int, hidden: list[int], activation: str, dropout: float, n_out: int,
                 sparse: bool = False, pooling: str = "mean", features_dim: int = 0, filled: bool = True) -> None:
        super().__init__()
        self.pool = TokenPool(vocab_size, dim, pooling, sparse, filled)
        # with sentence vectors (data.encoder_features) the pooled tokens and the vector go in side by side
        widths = [dim + features_dim, *hidden]
        self.dense = dense_stack(widths, activation, dropout)
        self.head = Head(widths[-1], n_out)

    @property
    def embedding(self) -> nn.EmbeddingBag:
        return self.pool.embedding

    def forward(self, tokens) -> torch.Tensor:
        pooled = self.pool(getattr(tokens, "ids", tokens))  # a TextBatch: ids + sentence vectors
        if hasattr(tokens, "features"):
            pooled = torch.cat([pooled, tokens.features], dim=1)
        return self.head(self.dense(pooled))


@MODELS.register("bag")
def build(spec: ModelSpec, shape: Shape) -> nn.Module:
    if shape.input_kind != "tokens":
        raise UserError("model.name = 'bag' needs text data (data.source imdb or text_files)")
    return BagOfEmbeddings(shape.input_dim, spec.embedding_dim, spec.hidden, spec.activation, spec.dropout,
                           shape.output_dim, spec.sparse, spec.pooling, shape.features_dim,
                           filled=spec.embedding_init == "default")  # else initialize fills the table
