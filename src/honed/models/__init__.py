"""Models by name. A model is a plain nn.Module built from its ModelSpec and the data's shape.

Every model returns raw scores: shape (N,) for regression and binary
classification (a logit), (N, K) for K classes. Sigmoid/softmax live in the
loss and in prediction, where they are numerically safe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, TYPE_CHECKING

import torch
from torch import nn

from honed.errors import UserError
from honed.registry import Registry

MODELS: Registry = Registry("model")


@dataclass(frozen=True)
class Shape:
    """What a model needs to know about its data."""

    input_kind: str  # features | tokens
    input_dim: int  # features, or vocabulary size
    output_dim: int
    image_shape: Optional[tuple[int, ...]] = None
    encoder: Optional[str] = None  # the pretrained encoder whose tokenizer made the token ids
    features_dim: int = 0  # size of the sentence vector beside each text's tokens (data.encoder_features)
    numeric_dim: int = 0  # tables: the leading inputs that are scaled numbers (the rest are 0/1 columns)

    @classmethod
    def of(cls, bundle) -> "Shape":
        """The shape of a DataBundle's inputs and outputs: its fitted preprocessor's."""
        return cls.of_preprocessor(bundle.preprocessor)

    @classmethod
    def of_preprocessor(cls, pre) -> "Shape":
        """The shape a fitted preprocessor's inputs give a model (the same as `of` its bundle)."""
        return cls("tokens" if pre.kind in ("text", "chat") else "features", pre.input_dim, pre.output_dim,
                   getattr(pre, "image_shape", None), getattr(pre, "pretrained", None),
                   getattr(pre, "features_dim", 0), getattr(pre, "numeric_dim", 0))

    def to_dict(self) -> dict:
        """model.json's "shape": what rebuilds the module, written and read only here."""
        return {"input_kind": self.input_kind, "input_dim": self.input_dim, "output_dim": self.output_dim,
                "image_shape": list(self.image_shape) if self.image_shape else None, "encoder": self.encoder,
                "features_dim": self.features_dim, "numeric_dim": self.numeric_dim}

    @classmethod
    def from_dict(cls, d: dict) -> "Shape":
        """The inverse of to_dict; a damaged entry raises ValueError, KeyError or TypeError (the caller names the file)."""
        if d["input_kind"] not in ("features", "tokens"):
            raise ValueError(f"input_kind {d['input_kind']!r}")
        return cls(d["input_kind"], int(d["input_dim"]), int(d["output_dim"]),
                   tuple(int(v) for v in d["image_shape"]) if d.get("image_shape") else None, d.get("encoder"),
                   int(d.get("features_dim", 0)), int(d.get("numeric_dim", 0)))


from honed.models import bag, causal_lm, cnn, efficientnet, linear, mlp, resnet, rnn, transformer  # noqa: E402,F401  (registers)
from honed.models.init import INITS, initialize  # noqa: E402

if TYPE_CHECKING:
    from honed.recipe.schema import ModelSpec


SENTENCE_FEATURE_MODELS = ("linear", "logistic", "bag")
PRETRAINED = ("transformer", "causal_lm")  # models that start from data.pretrained's weights  # the models that read TextBatch.features
# Weights a model may have: 4 GB of float32, 16 GB with Adam's two moments and the gradients. A recipe or a
# run's model.json asking for more is refused before a byte of it is allocated.
MAX_PARAMETERS = int(os.environ.get("HONED_MAX_PARAMETERS", 1_000_000_000))


class _SkipFills(torch.overrides.TorchFunctionMode):
    """Initializers (normal_, uniform_, ...) on meta tensors do nothing: torch's reference normal_ for the meta
    device imports the compiler (0.8 s) to fill values that are not there."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        target = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes it by name
        if name.endswith("_") and not name.startswith("__") and getattr(target, "is_meta", False):
            return target
        return func(*args, **kwargs)


def member_specs(spec: ModelSpec) -> list[tuple[float, ModelSpec]]:
    """model.members as (weight, the member's own model section): the section with the member's keys set."""
    base = spec.model_dump(exclude={"members"})
    return [(m.weight, type(spec).model_validate(base | m.set)) for m in spec.members]


def construct(spec: ModelSpec, shape: Shape) -> nn.Module:
    """The registered model `spec` names, or `model.bags` of them bagged (models/bagged.py), or model.members'
    weighted ensemble of such; not initialized."""
    if spec.members:
        from honed.models.bagged import Bagged

        weighted = member_specs(spec)
        return Bagged([construct(member, shape) for _, member in weighted], [w for w, _ in weighted])
    if spec.bags == 1:
        return MODELS.get(spec.name)(spec, shape)
    from honed.models.bagged import Bagged

    if spec.bags == "auto":
        raise ValueError("model.bags = auto must be resolved first (honed.api.sized_for_rows)")
    one = spec.model_copy(update={"bags": 1})
    return Bagged([MODELS.get(spec.name)(one, shape) for _ in range(spec.bags)])


def meta_model(spec: ModelSpec, shape: Shape) -> nn.Module:
    """The model `spec` builds on `shape`, on PyTorch's meta device (shapes only, no memory), refused in one line
    when larger than MAX_PARAMETERS."""
    with torch.device("meta"), _SkipFills():
        model = construct(spec, shape)
    weights = count_params(model)
    if weights > MAX_PARAMETERS:
        raise UserError(f"model.name = {spec.name!r} with these settings on {shape.input_dim:,} inputs would have "
                        f"{weights:,} weights ({weights * 4 / 1e9:.1f} GB), more than {MAX_PARAMETERS:,} "
                        "($HONED_MAX_PARAMETERS): make model.hidden (or embedding_dim, channels) smaller")
    return model


def meta_state_shapes(spec: ModelSpec, shape: Shape) -> dict[str, list[int]]:
    """Every tensor of the model's state_dict and its shape (nothing allocated)."""
    return {k: list(v.shape) for k, v in meta_model(spec, shape).state_dict().items()}


def build_model(spec: ModelSpec, shape: Shape) -> nn.Module:
    if shape.features_dim and spec.name not in SENTENCE_FEATURE_MODELS:
        raise UserError(f"data.encoder_features is read by models {', '.join(SENTENCE_FEATURE_MODELS)}, "
                        f"not model.name = {spec.name!r}")
    if spec.name not in PRETRAINED:  # a pretrained model's size is its own; any other is bounded before it is made
        meta_model(spec, shape)
    model = construct(spec, shape)
    # a pretrained model initializes only its new parts (e.g. the classification head)
    initialize(getattr(model, "fresh", model), spec.init, spec.embedding_init, spec.embedding_scale)
    return model


def count_params(model: nn.Module, trainable: bool = False) -> int:
    """Parameters of `model`; with trainable=True only those training changes (frozen ones left out)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


__all__ = ["MODELS", "INITS", "Shape", "build_model", "count_params", "initialize"]
