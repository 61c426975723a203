"""Recurrent text classifier: Embedding -> LSTM/GRU over the real tokens -> final state -> head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.layers import Head

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
        """The top layer's output at each text's last real token: what packing gives, without packing.

        For export (ONNX has no packed sequences). Right padding comes after the last real token,
        so a forward recurrence has not seen it there yet; a backward one would, hence one direction only.
        """
        if self.rnn.bidirectional:
            raise NotImplementedError("bidirectional recurrent models cannot be exported yet")
        outputs, _ = self.rnn(self.embedding(tokens))
        last = ((tokens != 0).sum(dim=1).clamp(min=1) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[2])
        return outputs.gather(1, last).squeeze(1)


@MODELS.register("rnn")
def build(spec, shape: Shape) -> nn.Module:
    if shape.input_kind != "tokens":
        raise UserError("model.name = 'rnn' needs text data (data.source imdb or text_files)")
    return RNNClassifier(shape.input_dim, spec.embedding_dim, spec.cell, spec.hidden_size, spec.layers,
                         spec.bidirectional, spec.dropout, shape.output_dim)
