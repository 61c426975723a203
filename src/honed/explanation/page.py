"""explain.html: one self-contained page (Jinja2, no scripts, no outside files).

Text: every word shaded by its attribution, red toward the explained class's logit, blue against,
the strength scaled to the largest attribution of that text; the prediction, its probability and the
completeness gap beside it. Tables: one horizontal bar per column. Images: the image beside its
attribution map (also written as saliency-N.png).
"""

from __future__ import annotations

import numpy as np

from honed.report.shading import shaded

TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>honed explain: {{ run }}</title>
<style>
body { font-family: sans-serif; margin: 2em; max-width: 70em; }
.item { border: 1px solid #ddd; border-radius: 6px; padding: 0.8em 1em; margin: 1em 0; }
.meta { color: #555; font-size: 0.9em; margin-bottom: 0.5em; }
.word { padding: 1px 2px; border-radius: 3px; line-height: 1.9; }
.legend span { padding: 2px 8px; margin-right: 4px; border-radius: 3px; }
table { border-collapse: collapse; } td { padding: 2px 8px; font-size: 0.9em; }
.bar { height: 0.9em; display: inline-block; vertical-align: middle; }
.warn { color: #a33; }
</style></head><body>
<h1>Why the model said what it said</h1>
<p>Run <code>{{ run }}</code>. {{ method_name }} ({{ steps }} {{ "samples" if method == "gradient_shap" else "steps" }})
from a baseline of {{ baseline }}.
{% if method == "ig" %}Each input's attributions add up to its explained output minus the baseline's; the gap is shown.{% endif %}
{% if not converged %}<span class="warn">Some inputs did not reach a gap within 5% at the most steps tried.</span>{% endif %}</p>
{% if sanity %}<p>Randomization check: median rank correlation with a re-initialized model
{{ "%.2f"|format(sanity.median_rank_correlation) }} —
{% if sanity.passed %}passed (the attributions depend on what was learned){% else %}<span class="warn">failed:
these attributions look much the same for a model with random weights</span>{% endif %}.</p>{% endif %}
<p class="legend"><span style="background:rgba(214,39,40,0.6)">pushes the output up</span>
<span style="background:rgba(31,119,180,0.6)">pushes it down</span></p>
{% if overall %}<h2>Across {{ items|length }} test inputs: what pushes toward each class</h2>
{% for label, words in overall.items() %}<h3>toward {{ label }}</h3><table>{% for w in words %}<tr><td>{{ w.name }}</td>
<td>{{ '%.3f'|format(w.mean) }} per input</td><td><span class="bar" style="width:{{ 12 * w.mean / (words[0].mean or 1) }}em;
background:rgba(214,39,40,0.6)"></span></td><td>in {{ w.inputs }} inputs</td></tr>{% endfor %}</table>{% endfor %}
<h2>Each input</h2>{% endif %}
{% for it in items %}<div class="item">
<div class="meta">{{ it.prediction }}{% if it.probability is defined %} ({{ "%.1f"|format(100 * it.probability) }}%){% endif %}
· explains {{ it.explains }} · output {{ "%.3f"|format(it.output) }} vs baseline {{ "%.3f"|format(it.baseline_output) }}
{% if it.completeness_gap is not none %}· completeness gap {{ "%.1f"|format(100 * it.completeness_gap) }}%{% endif %}</div>
{% if kind == "image" %}<img alt="input and attribution map" src="data:image/png;base64,{{ it.png }}">
{% elif kind == "text" %}<div>{% for w in it.shaded %}<span class="word" style="background:{{ w.colour }}"
title="{{ '%+.4f'|format(w.value) }}">{{ w.word }}</span> {% endfor %}</div>
{% else %}<table>{% for c in it.shaded %}<tr><td>{{ c.word }}</td><td>{{ '%+.4f'|format(c.value) }}</td>
<td><span class="bar" style="width:{{ c.width }}em;background:{{ c.colour }}"></span></td></tr>{% endfor %}</table>{% endif %}
</div>{% endfor %}
</body></html>
"""


METHOD_NAMES = {"ig": "Integrated gradients", "gradient_shap": "GradientSHAP", "occlusion": "Occlusion"}


def saliency_png(item: dict, shape: list[int]) -> bytes:
    """The input image beside its attribution map (diverging colours, symmetric about zero)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side = shape[-2:] if len(shape) >= 2 else [1, shape[0]]
    pixels = np.array(list(item["input"].values()), dtype=float).reshape(-1, *side).mean(axis=0)
    values = np.array(item["attributions"], dtype=float).reshape(-1, *side).sum(axis=0)
    largest = float(np.abs(values).max()) or 1.0
    fig, axes = plt.subplots(1, 2, figsize=(5, 2.6))
    axes[0].imshow(pixels, cmap="gray")
    axes[0].set_title("input")
    shown = axes[1].imshow(values, cmap="RdBu_r", vmin=-largest, vmax=largest)
    axes[1].set_title("attribution")
    for a in axes:
        a.axis("off")
    fig.colorbar(shown, ax=axes[1], fraction=0.046)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def page(explanation, pngs: list[bytes] | None = None) -> str:
    import base64

    from jinja2 import Environment

    template = Environment(autoescape=True).from_string(TEMPLATE)
    items = [it | {"shaded": shaded(it)} for it in explanation.items]
    for it, png in zip(items, pngs or []):
        it["png"] = base64.b64encode(png).decode("ascii")
    return template.render(run=str(explanation.run_dir), steps=explanation.steps, kind=explanation.kind,
                           converged=explanation.converged, sanity=explanation.sanity, items=items,
                           overall=explanation.overall, method=explanation.method,
                           method_name=METHOD_NAMES[explanation.method], baseline=explanation.baseline)
