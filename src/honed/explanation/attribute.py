"""Integrated gradients (Sundararajan et al., 2017) with Captum, checked for completeness.

Text models are attributed at the layer that holds one vector per token (Captum's
LayerIntegratedGradients): a bag's or a text-linear model's token vectors before pooling
(`TokenPool.token_vectors`), an RNN's or a CNN's embedding output, a Transformer's word embeddings.
The baseline is every token's vector at zero, which is what padding gives (row 0 is zero in every
honed text model); masks and lengths still come from the real text. Tables are attributed at the
input, against the training mean (zero after standardization), so each column's attribution is in
the units of the model's output.

Completeness: the attributions of an example must add up to its output minus the baseline's. The gap
(relative to that difference) is checked for every example, and the
number of steps doubles until every gap is within 5% (or MAX_STEPS is reached, which is reported).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from honed.errors import UserError

TOLERANCE = 0.05
MAX_STEPS = 400
EXAMPLES = 16  # inputs attributed together
INTERNAL_BATCH = 4 * EXAMPLES  # rows (inputs x steps) Captum evaluates in one pass: bounds the memory


@dataclass
class Attribution:
    values: torch.Tensor  # (N, L) per token position, or (N, F) per column
    outputs: torch.Tensor  # (N,) the explained output (the logit of the target class)
    baseline_outputs: torch.Tensor  # (N,) the same output at the baseline
    gaps: torch.Tensor  # (N,) |sum(values) - (output - baseline output)| / max(|output - baseline output|, eps)
    steps: int
    converged: bool


def captum():
    try:
        from captum import attr
    except ImportError:
        raise UserError("honed explain needs Captum: pip install 'honed[explain]'") from None
    return attr


def token_layer(model: nn.Module) -> nn.Module:
    """The layer whose output holds one vector per token of the text."""
    pool = getattr(model, "pool", None)
    if pool is not None and hasattr(pool, "token_vectors"):
        return pool.token_vectors
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "get_input_embeddings"):
        return encoder.get_input_embeddings()
    embedding = getattr(model, "embedding", None)
    if isinstance(embedding, nn.Embedding):
        return embedding
    raise UserError(f"honed explain: the {type(model).__name__} model has no token embedding to attribute")


@contextlib.contextmanager
def per_token(model: nn.Module):
    """Pools hand their token vectors through `token_vectors` while explaining (see layers.TokenPool)."""
    pools = [m for m in model.modules() if hasattr(m, "per_token")]
    for p in pools:
        p.per_token = True
    try:
        yield
    finally:
        for p in pools:
            p.per_token = False


def explained(out: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """(N,) the logit being explained: the one logit of a binary or regression model, else the target class's."""
    return out if out.dim() == 1 else out.gather(1, target.view(-1, 1)).squeeze(1)


METHODS = ("ig", "gradient_shap", "occlusion")


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None, tokens: bool,
                         steps: int = 50, baseline: torch.Tensor | None = None, method: str = "ig") -> Attribution:
    """Attributions of `model`'s explained output for the rows of `x` (token ids or feature rows), EXAMPLES
    rows at a time so that memory stays bounded whatever the number of inputs."""
    if method not in METHODS:
        raise UserError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    parts = []
    for i in range(0, len(x), EXAMPLES):
        rows, targets = x[i : i + EXAMPLES], None if target is None else target[i : i + EXAMPLES]
        parts.append(attribute_rows(model, rows, targets, tokens, steps, baseline) if method == "ig" else
                     other_method(model, rows, targets, tokens, steps, baseline, method))
    width = max(p.values.shape[1] for p in parts)  # token rows of different chunks may differ in padding
    values = torch.cat([nn.functional.pad(p.values, (0, width - p.values.shape[1])) for p in parts])
    return Attribution(values, torch.cat([p.outputs for p in parts]), torch.cat([p.baseline_outputs for p in parts]),
                       torch.cat([p.gaps for p in parts]), max(p.steps for p in parts), all(p.converged for p in parts))


def attribute_rows(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None, tokens: bool, steps: int,
                   baseline: torch.Tensor | None) -> Attribution:
    attr = captum()
    model.eval()
    with per_token(model):
        if tokens:
            method = attr.LayerIntegratedGradients(model, token_layer(model))
            base = torch.zeros_like(x)
        else:
            method = attr.IntegratedGradients(model)
            base = torch.zeros_like(x) if baseline is None else baseline.expand_as(x).contiguous()
        with torch.no_grad():
            outputs = explained(model(x), target).detach()
            baseline_outputs = explained(baseline_output(model, x, tokens, base), target)
        while True:  # Captum picks the target's logit from each of its (steps x rows) evaluations
            values = method.attribute(x, baselines=base, target=target, n_steps=steps,
                                      internal_batch_size=INTERNAL_BATCH).detach()
            if tokens:
                values = values.sum(dim=-1)  # a token's share: summed over its vector's dimensions
            # the gap against the path's true start (Captum's own delta evaluates the model on all-padding
            # input, which for an RNN is not the real text's lengths with zero vectors)
            change = outputs - baseline_outputs
            gaps = (values.flatten(1).sum(dim=1) - change).abs() / change.abs().clamp(min=1e-6)
            if bool((gaps <= TOLERANCE).all()) or steps >= MAX_STEPS:
                return Attribution(values, outputs, baseline_outputs, gaps, steps, bool((gaps <= TOLERANCE).all()))
            steps *= 2


def other_method(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None, tokens: bool, samples: int,
                 baseline: torch.Tensor | None, method: str) -> Attribution:
    """GradientSHAP (expected gradients from the baseline plus noise: complete only on average, so the gap
    is reported, never chased) or occlusion (each token or column replaced by the baseline in turn: the
    output's drop; not meant to add up). Both with Captum."""
    attr = captum()
    model.eval()
    with per_token(model):
        base = torch.zeros_like(x) if tokens or baseline is None else baseline.expand_as(x).contiguous()
        with torch.no_grad():
            outputs = explained(model(x), target).detach()
            baseline_outputs = explained(baseline_output(model, x, tokens, base), target)
        forward = (lambda ids: model(ids.long())) if tokens else model  # noqa: E731 - Captum's arithmetic on ids
        if method == "gradient_shap":  # at the token layer for text: noise-free inputs, random points on the path
            explainer = attr.LayerGradientShap(forward, token_layer(model)) if tokens else attr.GradientShap(model)
            values = explainer.attribute(x, baselines=base[:1], target=target, n_samples=samples,
                                         stdevs=0.0 if tokens else 0.1).detach()
            if tokens:
                values = values.sum(dim=-1)
        else:
            explainer = attr.Occlusion(forward)
            values = explainer.attribute(x, sliding_window_shapes=(1,), baselines=0 if tokens else base, target=target,
                                         perturbations_per_eval=8).detach()
            if tokens:
                values = values * (x != 0)
    change = outputs - baseline_outputs
    gaps = (values.flatten(1).sum(dim=1) - change).abs() / change.abs().clamp(min=1e-6)
    if method == "occlusion":  # drops one token at a time: not meant to add up, so no gap to report
        gaps = torch.full_like(gaps, float("nan"))
    return Attribution(values.float(), outputs, baseline_outputs, gaps, samples, True)


def baseline_output(model: nn.Module, x: torch.Tensor, tokens: bool, base: torch.Tensor) -> torch.Tensor:
    """The model's outputs at the baseline: for text, the real text's structure (mask, lengths) with the token
    layer's output on all-padding input (zero vectors in honed's own models; a pretrained encoder's [PAD]
    embedding), exactly what the layer attribution integrates from."""
    if not tokens:
        return model(base)
    layer = token_layer(model)
    captured = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output.detach()))
    try:
        model(base)
    finally:
        handle.remove()
    handle = layer.register_forward_hook(lambda module, inputs, output: captured[0])
    try:
        return model(x)
    finally:
        handle.remove()
