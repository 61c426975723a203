"""Recurrent text classifier: Embedding -> LSTM/GRU over the real tokens -> final state -> head."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.layers import Head

if TYPE_CHECKING:
    from honed.recipe.schema import ModelSpec

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RNNClassifier(nn.Module):
    def __init__(self, vocab_size: int, dim: int, cell: str, hidden: int, layers: int, bidirectional: bool,
                 dropout: float, n_out: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.rnn = CELLS[cell](dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                               dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = Head(hidden * (2 if bidirectional else 1), n_out)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_exporting():
            return self.head(self.dropout(self.last_real_state(tokens)))
        # Packing makes the recurrence stop at each text's last real token, so padding never
        # reaches the final state (right padding would otherwise wash it out).
        lengths = (tokens != 0).sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h = state[0] if isinstance(state, tuple) else state  # LSTM returns (h, c)
        last = torch.cat([h[-2], h[-1]], dim=1) if self.rnn.bidirectional else h[-1]
        return self.head(self.dropout(last))

    def last_real_state(self, tokens: torch.Tensor) -> torch.Tensor:
        """What packing gives (each direction's final state over the real tokens), without packing.

        For export: ONNX has no packed sequences. A forward direction reads the right-padded rows as
        they are (padding comes after the last real token, so the output there has not seen it).
        A backward one, layer by layer, reads each row reversed within its own length, so it too
        starts at the last real token. Dropout between layers is off in inference.
        """
        lengths = (tokens != 0).sum(dim=1).clamp(min=1)
        x = self.embedding(tokens)
        if not self.rnn.bidirectional:
            return at_steps(self.rnn(x)[0], (lengths - 1).unsqueeze(1)).squeeze(1)
        flip = reversal_within(lengths, tokens.shape[1])
        for layer in range(self.rnn.num_layers):
            forward = self.direction(x, layer, "")
            backward = at_steps(self.direction(at_steps(x, flip), layer, "_reverse"), flip)
            x = torch.cat([forward, backward], dim=2)
        # forward: the output at the last real token; backward: at the first, after reading the text end to start
        last = at_steps(x, (lengths - 1).unsqueeze(1)).squeeze(1)
        return torch.cat([last[:, : self.rnn.hidden_size], x[:, 0, self.rnn.hidden_size:]], dim=1)

    def direction(self, x: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
        """One layer, one direction of self.rnn: a one-layer cell of the same kind run with that layer's weights."""
        rnn = self.rnn
        cell = type(rnn)(x.shape[2], rnn.hidden_size, 1, bias=rnn.bias, batch_first=True)
        weights = {name.removesuffix(f"_l{layer}{suffix}") + "_l0": p for name, p in rnn.named_parameters()
                   if name.endswith(f"_l{layer}{suffix}")}
        return torch.func.functional_call(cell, weights, (x,))[0]


def reversal_within(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """Per row, the step order that reverses its first `length` steps and leaves padding in place (its own inverse)."""
    steps = torch.arange(width, device=lengths.device).unsqueeze(0)
    return torch.where(steps < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - steps, steps)


def at_steps(x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """x[b, steps[b, j]] for every row b: (batch, len(steps), features)."""
    return x.gather(1, steps.unsqueeze(2).expand(-1, -1, x.shape[2]))


@MODELS.register("rnn")
def build(spec: ModelSpec, shape: Shape) -> nn.Module:
    if shape.input_kind != "tokens":
        raise UserError("model.name = 'rnn' needs text data (data.source imdb or text_files)")
    return RNNClassifier(shape.input_dim, spec.embedding_dim, spec.cell, spec.hidden_size, spec.layers,
                         spec.bidirectional, spec.dropout, shape.output_dim)
