"""A pretrained Transformer encoder (BERT family, Hugging Face transformers) with a classification head.

tokens -> encoder (attention masked to the real tokens) -> mean of the real tokens' states -> dropout
-> head. Padding (id 0, BERT's [PAD]) is masked everywhere, so trailing padding never changes an
output. The encoder starts from its pretrained weights and is fine-tuned with the head; only the
head is initialized by model.init.
"""

from __future__ import annotations

import torch
from torch import nn

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.layers import Head, masked_mean


class TransformerClassifier(nn.Module):
    max_tokens_per_batch = 16384  # in evaluation: activations grow with batch x length (attention, with its square)

    def __init__(self, folder, n_out: int, dropout: float) -> None:
        super().__init__()
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        self.encoder = transformers.AutoModel.from_pretrained(str(folder))
        self.dropout = nn.Dropout(dropout)
        self.head = Head(self.encoder.config.hidden_size, n_out)

    @property
    def fresh(self) -> nn.Module:
        """What model.init initializes: the new head, not the pretrained encoder."""
        return self.head

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = tokens != 0
        hidden = self.encoder(input_ids=tokens, attention_mask=mask.long()).last_hidden_state
        return self.head(self.dropout(masked_mean(hidden, mask)))


@MODELS.register("transformer")
def build(spec, shape: Shape) -> nn.Module:
    if shape.input_kind != "tokens" or not shape.encoder:
        raise UserError("model.name = 'transformer' needs text data tokenized by its encoder "
                        "(data.tokenizer = pretrained, data.pretrained = all-minilm-l6-v2)")
    from honed.pretrained import encoder_folder

    try:
        return TransformerClassifier(encoder_folder(shape.encoder), shape.output_dim, spec.dropout)
    except ImportError:
        raise UserError("model.name = 'transformer' needs transformers: pip install 'honed[transformer]'") from None
