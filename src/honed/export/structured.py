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


TRANSFORMER_KEYS = ("attention_heads", "ffn_width")
Widths = dict[str, list[int] | int]  # recipe key under model. -> its widths (rnn: hidden_size, one number)


def widths_of(spec: ModelSpec, model: nn.Module) -> Widths:
    """The widths a prune may shrink: mlp/bag hidden layers, cnn/resnet channels, a transformer's attention heads
    and feed-forward units per layer (read off its encoder); one line for other models."""
    if spec.name == "transformer":
        from honed.models.bagged import Bagged
        from honed.models.transformer import layer_widths

        return dict(zip(TRANSFORMER_KEYS, layer_widths((model.members[0] if isinstance(model, Bagged) else model).base)))
    if spec.name == "rnn":
        return {"hidden_size": spec.hidden_size}
    key = WIDTH_KEYS.get(spec.name)
    if key is None:
        raise UserError(f"honed prune works on {', '.join([*WIDTH_KEYS, 'rnn', 'transformer'])} models; this run's "
                        f"model is {spec.name!r}")
    widths = list(getattr(spec, key))
    if not widths:
        raise UserError(f"model.{key} is empty: this {spec.name} has no hidden width to prune")
    return {key: widths}


def kept(widths: Widths, share: float) -> Widths:
    """Every width less `share` of it (attention heads: at least one is left)."""
    return {key: [max(1, round(h * (1 - share))) for h in values] if key == "attention_heads"
            else kept_widths([values], share)[0] if isinstance(values, int)
            else kept_widths(values, share) for key, values in widths.items()}


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
        # a whitening stem (model.stem = whiten) is fixed by the images: its width is never pruned
        layers = [[model.stem[0]] if isinstance(model.stem, nn.Sequential) else []]
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
                loss_of=None) -> Widths:
    """Take `share` of every recipe width out of `model` in place; answers the new widths. `loss_of(model)` is a
    training loss whose gradients the taylor criterion reads. A bag (model.bags) has each member pruned to the
    same widths, each by its own units' importance."""
    from honed.models.bagged import Bagged

    new = kept(widths_of(spec, model), share)
    model.eval()
    if criterion == "taylor":  # the gradients of the whole model's loss (a bag's: of the mean of its members)
        model.zero_grad()
        loss_of(model).backward()
    for member in model.members if isinstance(model, Bagged) else [model]:
        if spec.name == "transformer":
            prune_encoder(member.base, new, criterion)
        elif spec.name == "rnn":
            prune_recurrent(member, new["hidden_size"], criterion)
        else:
            prune_one(member, spec, new[WIDTH_KEYS[spec.name]], example, criterion)
    model.zero_grad(set_to_none=True)
    return new


def unit_scores(weights: list[tuple], criterion: str) -> torch.Tensor:
    """One score per unit from the tensors that hold it, each (parameter, the dimension its units run along[,
    the shape to view it in first]): the sum of squared weights (magnitude), of |weight x gradient| (taylor), or
    random numbers."""
    total = None
    for parameter, dim, *shape in weights:
        w = parameter.detach()
        if criterion == "magnitude":
            part = w.pow(2)
        elif criterion == "taylor":
            grad = parameter.grad if parameter.grad is not None else torch.zeros_like(w)
            part = (w * grad).abs()
        else:
            part = torch.rand_like(w)
        part = part.view(*shape[0]) if shape else part
        part = part.sum(dim=[d for d in range(part.dim()) if d != dim]) if part.dim() > 1 else part
        total = part if total is None else total + part
    return total


def prune_encoder(base: nn.Module, new: Widths, criterion: str) -> None:
    """Keep in each encoder layer the heads and feed-forward units that score highest, as many as `new` says.
    A head is its rows of the query, key and value projections (with their biases) and its columns of the
    attention's output; a unit its row of the first feed-forward layer and its column of the second. Written
    here: Torch-Pruning's graph would also narrow the hidden size that every layer's residual sum shares."""
    from honed.models.transformer import encoder_layers, layer_parts, narrow

    heads, units = [], []
    for layer, n_heads, n_units in zip(encoder_layers(base), new["attention_heads"], new["ffn_width"]):
        parts = layer_parts(layer)
        size = layer.attention.self.attention_head_size
        projections = [parts[f"attention.self.{n}"] for n in ("query", "key", "value")]
        rows = unit_scores([(p.weight, 0) for p in projections] + [(p.bias, 0) for p in projections]
                           + [(parts["attention.output.dense"].weight, 1)], criterion)
        heads.append(torch.argsort(rows.view(-1, size).sum(1), descending=True)[:n_heads].tolist())
        first, second = parts["intermediate.dense"], parts["output.dense"]
        scores = unit_scores([(first.weight, 0), (first.bias, 0), (second.weight, 1)], criterion)
        units.append(torch.argsort(scores, descending=True)[:n_units].tolist())
    narrow(base, heads, units)


def prune_recurrent(model: nn.Module, hidden: int, criterion: str) -> None:
    """Keep `hidden` units in every layer and direction of the RNN classifier's LSTM/GRU, those that score highest
    (a unit: its row in every gate of the input and recurrent weights and biases, its recurrent column, and its
    column where the next layer or the head reads it). The recurrent module is made again at the new size.
    Written here: Torch-Pruning's LSTM rule takes one-layer LSTMs only (no GRU, no stacks)."""
    rnn = model.rnn
    size, gates = rnn.hidden_size, rnn.weight_ih_l0.shape[0] // rnn.hidden_size
    suffixes = ["", "_reverse"] if rnn.bidirectional else [""]
    head = model.head.linear

    kept: list[list[torch.Tensor]] = []
    for layer in range(rnn.num_layers):
        # where the layer's output is read (columns: each direction's units side by side): the next layer, or the head
        readers = [getattr(rnn, f"weight_ih_l{layer + 1}{s}") for s in suffixes] \
            if layer + 1 < rnn.num_layers else [head.weight]
        read = unit_scores([(w, 1) for w in readers], criterion)
        kept.append([])
        for direction, suffix in enumerate(suffixes):
            own = [(getattr(rnn, f"{kind}_l{layer}{suffix}"), 1, (gates, size, -1))
                   for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if hasattr(rnn, f"{kind}_l{layer}{suffix}")]
            scores = unit_scores(own + [(getattr(rnn, f"weight_hh_l{layer}{suffix}"), 1)], criterion) \
                + read[direction * size:(direction + 1) * size]
            kept[-1].append(torch.sort(torch.argsort(scores, descending=True)[:hidden]).values)
    model.rnn = narrowed_recurrent(rnn, kept, gates)
    read_columns = set(torch.cat([k + i * size for i, k in enumerate(kept[-1])]).tolist())
    torch_pruning().prune_linear_in_channels(head, [c for c in range(head.in_features) if c not in read_columns])


def narrowed_recurrent(rnn: nn.RNNBase, kept: list[list[torch.Tensor]], gates: int) -> nn.RNNBase:
    """A new LSTM/GRU like `rnn` with the units `kept[layer][direction]` of each, their weights copied."""
    size, hidden = rnn.hidden_size, len(kept[0][0])
    smaller = type(rnn)(rnn.input_size, hidden, num_layers=rnn.num_layers, bias=rnn.bias, batch_first=rnn.batch_first,
                        dropout=rnn.dropout, bidirectional=rnn.bidirectional)
    suffixes = ["", "_reverse"] if rnn.bidirectional else [""]
    with torch.no_grad():
        for layer in range(rnn.num_layers):
            inputs = None if layer == 0 else torch.cat([k + i * size for i, k in enumerate(kept[layer - 1])])
            for direction, suffix in enumerate(suffixes):
                units = kept[layer][direction]
                rows = torch.cat([units + g * size for g in range(gates)])
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    name = f"{kind}_l{layer}{suffix}"
                    if not hasattr(rnn, name):
                        continue
                    value = getattr(rnn, name)[rows]
                    if kind == "weight_hh":
                        value = value[:, units]
                    elif kind == "weight_ih" and inputs is not None:
                        value = value[:, inputs]
                    getattr(smaller, name).copy_(value)
    return smaller.to(rnn.weight_ih_l0.device)


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
