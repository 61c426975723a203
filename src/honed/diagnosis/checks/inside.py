"""Inside the model: gradients that vanish or explode from layer to layer, ReLU units that never fire,
sigmoid/tanh units pinned at their limits (a probe over a few training batches), and weights that keep
growing (the history's weight norm)."""

from __future__ import annotations

import numpy as np

from honed.diagnosis.checks import check
from honed.diagnosis.evidence import RunEvidence
from honed.diagnosis.finding import Finding, change

VANISHING, EXPLODING = 1e-3, 1e3  # first layer's relative gradient against the last layer's


def hidden_layers(ev: RunEvidence) -> int:
    """Hidden layers with an activation module, from the recipe (no model needs loading to know there are none)."""
    m = ev.recipe.model
    if m.name in ("mlp", "bag"):
        return len(m.hidden)
    if m.name == "resnet":  # the stem, then a convolution per stage and two per residual stage
        return len(m.channels) + 2 * min(2, len(m.channels) - 1)
    return len(m.channels) if m.name == "cnn" else 0


@check("gradient_flow", needs="probe")
def gradient_flow(ev: RunEvidence) -> list[Finding]:
    if not ev.can_probe or hidden_layers(ev) < 2:  # a gradient needs depth to vanish
        return []
    layers = [layer for layer in ev.probe.layers if layer["weight_norm"] > 0]
    if len(layers) < 3:
        return []
    # relative gradients (|g| / |w|): comparable across layers of different sizes
    rel = [layer["grad_norm"] / layer["weight_norm"] for layer in layers]
    first, last = rel[0], rel[-1]
    if last <= 0:
        return []
    ratio = first / last
    shown = ", ".join(f"{layer['name']} {r:.2g}" for layer, r in zip(layers, rel))
    if ratio < VANISHING:
        return [Finding("vanishing_gradients", "problem", f"the first layer's gradient, relative to its weights, is "
                        f"{ratio:.1e} of the last layer's ({shown})",
                        [change(**{"model.activation": "relu", "model.init": "he_normal"}),
                         change(**{"optimizer.name": "adam"})], strength=-np.log10(ratio))]
    if ratio > EXPLODING:
        return [Finding("exploding_gradients", "problem", f"the first layer's gradient, relative to its weights, is "
                        f"{ratio:.1e} times the last layer's ({shown})",
                        [change(**{"train.clip_grad_norm": 1.0}), change(**{"optimizer.lr": ev.recipe.optimizer.lr / 10})],
                        strength=np.log10(ratio))]
    return []


@check("dead_relus", needs="probe")
def dead_relus(ev: RunEvidence) -> list[Finding]:
    if not ev.can_probe or not hidden_layers(ev) or ev.recipe.model.activation != "relu" or not ev.probe.relus:
        return []
    worst = max(ev.probe.relus, key=lambda r: r["dead"] / max(r["units"], 1))
    share = worst["dead"] / max(worst["units"], 1)
    if share < 0.2:
        return []
    total = sum(r["dead"] for r in ev.probe.relus), sum(r["units"] for r in ev.probe.relus)
    return [Finding("dead_relus", "problem" if share >= 0.5 else "warning",
                    f"{worst['dead']} of {worst['units']} units of {worst['name']} ({share:.0%}) never fired on "
                    f"{ev.probe.rows} training rows ({total[0]} of {total[1]} in all ReLU layers)",
                    [change(**{"model.activation": "leaky_relu"}), change(**{"model.init": "he_normal"}),
                     change(**{"optimizer.lr": ev.recipe.optimizer.lr / 3})], strength=share)]


@check("saturated_units", needs="probe")
def saturated_units(ev: RunEvidence) -> list[Finding]:
    if not ev.can_probe or not hidden_layers(ev) or ev.recipe.model.activation not in ("sigmoid", "tanh") \
            or not ev.probe.squashing:
        return []
    worst = max(ev.probe.squashing, key=lambda s: s["saturated_share"])
    if worst["saturated_share"] < 0.5:
        return []
    return [Finding("saturated_units", "warning", f"{worst['saturated_share']:.0%} of the {worst['kind']} outputs after "
                    f"{worst['name']} sit within 1% of their limits on {ev.probe.rows} training rows, where the "
                    "gradient is almost zero", [change(**{"model.activation": "relu", "model.init": "he_normal"}),
                                                change(**{"model.init": "xavier_normal"})],
                    strength=worst["saturated_share"])]


@check("weights_growing")
def weights_growing(ev: RunEvidence) -> list[Finding]:
    norms = ev.series("weight_norm")
    if len(norms) < 5 or not ev.finite(norms) or norms[0] <= 0:
        return []
    growth = np.diff(norms) / np.asarray(norms[:-1])
    if norms[-1] < 3 * norms[0] or not np.all(growth[-3:] > 0.05):
        return []
    reg = ev.recipe.regularization
    return [Finding("weights_growing", "warning", f"the weights' norm grew from {norms[0]:.3g} to {norms[-1]:.3g} "
                    f"and still rose {growth[-1]:.0%} in the last epoch",
                    [change(**{"regularization.l2": max(1e-4, reg.l2 * 10)}),
                     change(**{"optimizer.weight_decay": max(0.01, ev.recipe.optimizer.weight_decay * 10)})],
                    strength=norms[-1] / norms[0])]
