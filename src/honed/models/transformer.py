"""A pretrained Transformer encoder (BERT family, Hugging Face transformers) with a classification head.

tokens -> encoder (attention masked to the real tokens) -> mean of the real tokens' states -> dropout
-> head. Padding (id 0, BERT's [PAD]) is masked everywhere, so trailing padding never changes an
output. The encoder starts from its pretrained weights; only the head is initialized by model.init.

Spending less on a large encoder (each a recipe key):
    model.adapter    LoRA through Hugging Face peft: every encoder weight frozen, a low-rank update
                     trained beside the targeted linear layers; merged into the weights for inference
    model.freeze     the embeddings, the bottom N layers or the whole encoder keep their pretrained
                     weights (no gradients, so no optimizer state)
    train.activation_checkpointing   each layer's activations recomputed in the backward pass
The head always trains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import warnings

import torch
from torch import nn

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.layers import Head, masked_mean

if TYPE_CHECKING:
    from honed.recipe.schema import ModelSpec


class TransformerClassifier(nn.Module):
    max_tokens_per_batch = 16384  # in evaluation: activations grow with batch x length (attention, with its square)

    def __init__(self, folder, n_out: int, dropout: float, adapter=None, freeze: str | int = "none",
                 heads: list[int] = (), ffn: list[int] = ()) -> None:
        super().__init__()
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        self.encoder = transformers.AutoModel.from_pretrained(str(folder))
        if heads or ffn:  # a pruned encoder (honed prune): its layers at the recipe's widths, weights loaded after
            narrow_to(self.encoder, list(heads), list(ffn))
        self.dropout = nn.Dropout(dropout)
        self.head = Head(self.encoder.config.hidden_size, n_out)
        self.per_example_positions = False  # see prepare_for_privacy
        if getattr(self.encoder, "pooler", None) is not None:  # BERT's [CLS] pooler: unread (the head reads the mean)
            self.encoder.pooler.requires_grad_(False)
        if adapter is not None:
            self.encoder = with_lora(self.encoder, adapter)
        freeze_encoder(self.base, freeze)

    @property
    def base(self) -> nn.Module:
        """The pretrained encoder itself (inside peft's wrapper when an adapter is on)."""
        return self.encoder.get_base_model() if hasattr(self.encoder, "get_base_model") else self.encoder

    @property
    def fresh(self) -> nn.Module:
        """What model.init initializes: the new head, not the pretrained encoder."""
        return self.head

    def checkpoint_activations(self) -> None:
        """Recompute each layer's activations in the backward pass instead of keeping them (training only).
        Non-reentrant: gradients reach LoRA's matrices even when the layer's inputs need none."""
        base, kwargs = self.base, {"use_reentrant": False}
        if hasattr(base, "activation_checkpointing_enable"):  # transformers 5 names it so
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def prepare_for_privacy(self) -> None:
        """Give every row its own position and segment ids: BERT broadcasts one row of them, and a shared input
        has no per-example gradient for DP-SGD to clip (train.privacy)."""
        self.per_example_positions = True

    def merge_adapter(self) -> None:
        """Fold the adapter into the encoder's weights (W + scale B A): a plain encoder, no extra cost per call."""
        if hasattr(self.encoder, "merge_and_unload"):
            self.encoder = self.encoder.merge_and_unload()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = tokens != 0
        extra = {}
        if self.per_example_positions:
            extra = {"position_ids": torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens),
                     "token_type_ids": torch.zeros_like(tokens)}
        hidden = self.encoder(input_ids=tokens, attention_mask=mask.long(), **extra).last_hidden_state
        return self.head(self.dropout(masked_mean(hidden, mask)))


def with_lora(encoder: nn.Module, adapter) -> nn.Module:
    """`encoder` wrapped by peft with LoRA on `adapter.targets` (model.adapter); its own weights frozen."""
    linear = sorted({name.rsplit(".", 1)[-1] for name, m in encoder.named_modules() if isinstance(m, nn.Linear)})
    unknown = [t for t in adapter.targets if t not in linear]
    if unknown:
        raise UserError(f"model.adapter.targets: {', '.join(map(repr, unknown))} names no linear layer of the "
                        f"encoder; its linear layers: {', '.join(linear)}")
    try:
        import peft
    except ImportError:
        raise UserError("model.adapter needs peft: pip install 'honed[transformer]'") from None
    config = peft.LoraConfig(r=adapter.r, lora_alpha=adapter.alpha, lora_dropout=adapter.dropout,
                             target_modules=list(adapter.targets), bias="none")
    with warnings.catch_warnings():  # peft asks transformers 5 under an old name, which warns
        warnings.simplefilter("ignore", FutureWarning)
        return peft.get_peft_model(encoder, config)


def encoder_layers(base: nn.Module) -> nn.ModuleList:
    """The encoder's stack of layers: its ModuleList as long as config.num_hidden_layers (BERT: encoder.layer)."""
    count = base.config.num_hidden_layers
    for module in base.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise UserError(f"model.freeze: found no stack of {count} layers in {type(base).__name__}; "
                    "freeze 'embeddings' or 'encoder' instead")


# what a layer must hold for its heads and feed-forward units to be narrowed: BERT's layout (BERT, RoBERTa,
# MiniLM, ELECTRA, ...), read by name; the attention splits its projections by `attention_head_size`
LAYER_PARTS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
               "intermediate.dense", "output.dense")


def layer_parts(layer: nn.Module) -> dict[str, nn.Linear]:
    found = dict(layer.named_modules())
    if any(not isinstance(found.get(name), nn.Linear) for name in LAYER_PARTS) or \
            not hasattr(found["attention.self"], "attention_head_size"):
        raise UserError(f"this encoder's layers ({type(layer).__name__}) are not laid out as BERT's "
                        f"({', '.join(LAYER_PARTS)}): their heads and feed-forward units cannot be narrowed")
    return {name: found[name] for name in LAYER_PARTS}


def layer_widths(base: nn.Module) -> tuple[list[int], list[int]]:
    """(attention heads, feed-forward units) of each encoder layer."""
    heads, ffn = [], []
    for layer in encoder_layers(base):
        parts = layer_parts(layer)
        heads.append(parts["attention.self.query"].out_features // layer.attention.self.attention_head_size)
        ffn.append(parts["intermediate.dense"].out_features)
    return heads, ffn


def narrow(base: nn.Module, heads: list[list[int]], units: list[list[int]]) -> None:
    """Keep only the listed attention heads and feed-forward units of each encoder layer, in place: the query,
    key and value rows of a dropped head and its columns of the attention's output go; so do a dropped unit's
    row of the first feed-forward layer and its column of the second. Nothing else reads them."""
    from transformers.pytorch_utils import prune_linear_layer

    for layer, kept_heads, kept_units in zip(encoder_layers(base), heads, units):
        layer_parts(layer)
        attention = layer.attention.self
        size = attention.attention_head_size
        rows = torch.tensor([h * size + d for h in sorted(kept_heads) for d in range(size)], dtype=torch.long)
        for name in ("query", "key", "value"):
            setattr(attention, name, prune_linear_layer(getattr(attention, name), rows, dim=0))
        layer.attention.output.dense = prune_linear_layer(layer.attention.output.dense, rows, dim=1)
        attention.num_attention_heads, attention.all_head_size = len(kept_heads), len(rows)
        units_kept = torch.tensor(sorted(kept_units), dtype=torch.long)
        layer.intermediate.dense = prune_linear_layer(layer.intermediate.dense, units_kept, dim=0)
        layer.output.dense = prune_linear_layer(layer.output.dense, units_kept, dim=1)


def narrow_to(base: nn.Module, heads: list[int], ffn: list[int]) -> None:
    """Narrow each layer to these counts (model.attention_heads, model.ffn_width; empty: as they are), keeping
    the first heads and units: the shapes a pruned run's weights are then loaded into."""
    now_heads, now_ffn = layer_widths(base)
    for key, asked, now in (("model.attention_heads", heads, now_heads), ("model.ffn_width", ffn, now_ffn)):
        if asked and (len(asked) != len(now) or any(a > n for a, n in zip(asked, now))):
            raise UserError(f"{key} = {asked}: give one count per encoder layer ({len(now)}), each at most the "
                            f"pretrained encoder's ({now})")
    narrow(base, [list(range(n)) for n in heads or now_heads], [list(range(n)) for n in ffn or now_ffn])


def freeze_encoder(base: nn.Module, freeze: str | int) -> None:
    """Stop gradients to the pretrained parts model.freeze names (adapters inside them included)."""
    if freeze == "none":
        return
    if freeze == "encoder":
        frozen = [base]
    else:
        embeddings = getattr(base, "embeddings", None)  # BERT: words, positions, segments and their LayerNorm
        frozen = [embeddings if embeddings is not None else base.get_input_embeddings()]
        if isinstance(freeze, int):
            layers = encoder_layers(base)
            if freeze > len(layers):
                raise UserError(f"model.freeze = {freeze}: the encoder has {len(layers)} layers; freeze 0 to "
                                f"{len(layers)} of them, 'embeddings' or 'encoder'")
            frozen += list(layers[:freeze])
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)


@MODELS.register("transformer")
def build(spec: ModelSpec, shape: Shape) -> nn.Module:
    if shape.input_kind != "tokens" or not shape.encoder:
        raise UserError("model.name = 'transformer' needs text data tokenized by its encoder "
                        "(data.tokenizer = pretrained, data.pretrained = all-minilm-l6-v2)")
    from honed.pretrained import encoder_folder

    try:
        return TransformerClassifier(encoder_folder(shape.encoder), shape.output_dim, spec.dropout, spec.adapter,
                                     spec.freeze, spec.attention_heads, spec.ffn_width)
    except ImportError:
        raise UserError("model.name = 'transformer' needs transformers: pip install 'honed[transformer]'") from None
