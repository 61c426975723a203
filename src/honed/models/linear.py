"""Linear and logistic regression: one affine map (the loss makes it one or the other).

On numeric features: a Linear layer. On text: one weight vector per output for every token id,
pooled over a text (its TF-IDF weighted sum with model.pooling = tfidf: logistic regression on
TF-IDF features, held as an EmbeddingBag so that a text costs only its own ids).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from honed.models import MODELS, Shape
from honed.models.layers import Head, TokenPool

if TYPE_CHECKING:
    from honed.recipe.schema import ModelSpec


class TextLinear(nn.Module):
    """scores = pooled token weights + bias: a linear model on a bag of (hashed) words and n-grams,
    and on each text's sentence vector too when its batches carry one (data.encoder_features)."""

    def __init__(self, vocab_size: int, n_out: int, pooling: str, sparse: bool = False, features_dim: int = 0,
                 filled: bool = True) -> None:
        super().__init__()
        self.pool = TokenPool(vocab_size, n_out, pooling, sparse, filled)
        self.sentence = nn.Linear(features_dim, n_out, bias=False) if features_dim else None
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, tokens) -> torch.Tensor:
        out = self.pool(getattr(tokens, "ids", tokens)) + self.bias  # a TextBatch: ids + sentence vectors
        if self.sentence is not None:
            out = out + self.sentence(tokens.features)
        return out.squeeze(-1) if out.shape[-1] == 1 else out


def _affine(spec: ModelSpec, shape: Shape) -> nn.Module:
    if shape.input_kind == "tokens":
        return TextLinear(shape.input_dim, shape.output_dim, spec.pooling, spec.sparse, shape.features_dim,
                          filled=spec.embedding_init == "default")  # else initialize fills the table
    return Head(shape.input_dim, shape.output_dim)


MODELS.register("linear")(_affine)
MODELS.register("logistic")(_affine)
