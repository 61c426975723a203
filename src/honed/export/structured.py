"""Structured pruning: whole hidden units and channels taken out of a trained model together with everything
that reads them (the next layer's inputs, a BatchNorm, the other side of a residual sum), found by
Torch-Pruning's dependency graph (DepGraph, Fang et al., CVPR 2023). The same share is taken from every width
the recipe names (`model.hidden`, `model.channels`), so the pruned network *is* the recipe's model with smaller
widths: written as an ordinary run, it is rebuilt, loaded, exported, quantized and served like any other.
Masks (torch.nn.utils.prune) would leave the size and the speed as they were; this changes the shapes."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn

from honed.errors import UserError

if TYPE_CHECKING:
    from honed.recipe.schema import ModelSpec

WIDTH_KEYS = {"mlp": "hidden", "bag": "hidden", "cnn": "channels", "resnet": "channels"}
CRITERIA = ("magnitude", "taylor", "random")


def torch_pruning():
    try:
        import torch_pruning
    except ImportError:
        raise UserError("honed prune needs Torch-Pruning: pip install 'honed[prune]' (or torch-pruning)") from None
    return torch_pruning


def recipe_widths(spec: ModelSpec) -> list[int]:
    """The widths a prune may shrink: mlp/bag hidden layers, cnn/resnet channels; one line for other models."""
    key = WIDTH_KEYS.get(spec.name)
    if key is None:
        raise UserError(f"honed prune works on {', '.join(WIDTH_KEYS)} models; this run's model is {spec.name!r}")
    widths = list(getattr(spec, key))
    if not widths:
        raise UserError(f"model.{key} is empty: this {spec.name} has no hidden width to prune")
    return widths


ROUND_TO = 8  # widths of 16 or more stay multiples of 8: CPU kernels (oneDNN, ONNX Runtime) vectorize by 8
# and 16 lanes, and a 67-channel convolution measured slower than a 96-channel one


def kept_widths(widths: Sequence[int], share: float) -> list[int]:
    """Each width less `share` of it: a multiple of 8 when the width is 16 or more, else at least one unit."""
    kept = []
    for w in widths:
        target = w * (1 - share)
        kept.append(max(ROUND_TO, ROUND_TO * round(target / ROUND_TO)) if w >= 2 * ROUND_TO else max(1, round(target)))
    return kept


def groups_by_width(model: nn.Module, spec: ModelSpec) -> list[list[nn.Module]]:
    """For each recipe width, the layers whose output units are that width (pruned to the same count)."""
    if spec.name == "resnet":
        layers = [[model.stem[0]]]
        for stage in model.stages:
            convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
            layers.append(convs[:1] + convs[1:2])  # the stage's conv (the residual sum's other side follows it)
            # and the residual pair's inner conv, kept as wide as its stage so the recipe still describes it
        return layers
    kind: type | tuple = nn.Linear
    if spec.name == "cnn":
        kind = (nn.Conv1d, nn.Conv2d)
        body = getattr(model, "features", None) or model.convs  # images, or text
    else:
        body = model.dense if spec.name == "bag" else getattr(model, "body", None) or model[0]
    return [[m] for m in body.modules() if isinstance(m, kind)]


def member_heads_pruner():
    """Teaches the dependency graph the tabular ensemble's heads (einsum over (k, hidden, out) weights): their
    hidden inputs go with the last hidden layer's units; their outputs are the model's and stay. (Made here:
    Torch-Pruning's base class exists only once the optional package is imported.)"""
    tp = torch_pruning()

    class Pruner(tp.pruner.BasePruningFunc):
        def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
            dropped = set(idxs)
            keep = [i for i in range(layer.weight.shape[1]) if i not in dropped]
            layer.weight = nn.Parameter(layer.weight.data[:, keep, :].clone())
            return layer

        def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
            raise UserError("the ensemble's outputs are the model's: they are not pruned")

        def get_in_channels(self, layer: nn.Module) -> int:
            return layer.weight.shape[1]

        def get_out_channels(self, layer: nn.Module) -> int:
            return layer.weight.shape[2]

    return Pruner()


def importance(criterion: str):
    tp = torch_pruning()
    if criterion == "magnitude":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if criterion == "taylor":
        return tp.importance.GroupTaylorImportance()
    if criterion == "random":
        return tp.importance.RandomImportance()
    raise UserError(f"--criterion {criterion!r}: choose {', '.join(CRITERIA)}")


def prune_model(model: nn.Module, spec: ModelSpec, share: float, example: torch.Tensor, criterion: str = "magnitude",
                loss_of=None) -> list[int]:
    """Take `share` of every recipe width out of `model` in place; answers the new widths. `loss_of(model)` is a
    training loss whose gradients the taylor criterion reads. A bag (model.bags) has each member pruned to the
    same widths, each by its own units' importance."""
    from honed.models.bagged import Bagged

    new = kept_widths(recipe_widths(spec), share)
    model.eval()
    if criterion == "taylor":  # the gradients of the whole model's loss (a bag's: of the mean of its members)
        model.zero_grad()
        loss_of(model).backward()
    for member in model.members if isinstance(model, Bagged) else [model]:
        prune_one(member, spec, new, example, criterion)
    model.zero_grad(set_to_none=True)
    return new


def prune_one(model: nn.Module, spec: ModelSpec, new: list[int], example: torch.Tensor, criterion: str) -> None:
    """Prune one model's recipe widths down to `new` (gradients already in place for taylor)."""
    from honed.models.mlp import MemberHeads

    tp = torch_pruning()
    model.eval()
    with warnings.catch_warnings():  # the tabular MLP's per-input scales and frequencies: inputs are never pruned
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example,
                                                      customized_pruners={MemberHeads: member_heads_pruner()})
    score = importance(criterion)
    for layers, width in zip(groups_by_width(model, spec), new):
        for layer in layers:
            conv = isinstance(layer, (nn.Conv1d, nn.Conv2d))
            prune = tp.prune_conv_out_channels if conv else tp.prune_linear_out_channels
            count = layer.out_channels if conv else layer.out_features
            if count <= width:
                continue
            group = graph.get_pruning_group(layer, prune, idxs=list(range(count)))
            ranks = score(group)
            drop = torch.argsort(ranks)[: count - width].tolist()  # the least important units
            group = graph.get_pruning_group(layer, prune, idxs=drop)
            if not graph.check_pruning_group(group):
                raise UserError(f"cannot take {count - width} of {count} units out of a layer of this model")
            group.prune()
