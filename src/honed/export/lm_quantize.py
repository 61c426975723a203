"""`honed quantize` on a causal language model's run: PyTorch's dynamic int8 on the merged model's Linear layers,
measured against float32 on the same test rows and prompts: the weights' size, milliseconds per generated token
(greedy, from the test prompts), and the test perplexity with its interval. `honed serve --backend torch-int8`
then serves the int8 model.

Dynamic int8 scales each layer's input by its largest value, so a layer whose inputs have a few huge features
(LLM.int8()'s outliers: SmolLM2's MLP down-projections see values 1,000x their 99th percentile) loses everything
else to rounding. Which layers those are is measured, not assumed: each kind of projection (q_proj, down_proj,
lm_head, ...) is quantized alone and kept in float32 when that raises the validation perplexity by more than 2%.
"""

from __future__ import annotations

import logging
import time

import torch

from honed import runfiles
from honed.files import Written

log = logging.getLogger("honed")
PROMPTS, NEW_TOKENS = 3, 32
TOLERANCE = 0.02  # a kind of layer stays float when quantizing it alone raises the validation perplexity by more
CALIBRATION_ROWS = 16


def quantize_causal_lm(run) -> Written:
    from honed.data.chat import row_prompts
    from honed.evaluation import metric_names, outputs_of, score_outputs
    from honed.export.quantize import state_bytes
    from honed.report import refresh_report
    from honed.run import write_json
    from honed.training import build_loss

    loaded = run.load()
    recipe, model, pre = loaded
    split = run.test_split(loaded)
    prompts = row_prompts(split.x, PROMPTS)
    names, loss_fn = metric_names([], pre.task), build_loss(recipe.loss, pre.task)
    kept_float = sensitive_kinds(model, validation_rows(recipe, pre), loss_fn)
    versions = {"float32 (PyTorch)": model, "int8 (PyTorch)": int8_except(model, kept_float),
                "int8, every Linear layer (PyTorch)": int8_except(model, [])}  # what the measured choice avoids
    rows = []
    with torch.inference_mode():
        for name, version in versions.items():
            scored = score_outputs(outputs_of(version, split.x, 4), split.y, pre.task, loss_fn, names, 0,
                                   with_intervals=True)
            rows.append({"version": name, "bytes": state_bytes(version), "ms per token": ms_per_token(version, prompts),
                         "test perplexity": scored["perplexity"],
                         "95% interval": scored.get("ci95", {}).get("perplexity")})
    base = rows[0]
    for row in rows:
        row["size vs float"] = row["bytes"] / base["bytes"]
        row["speed-up"] = base["ms per token"] / row["ms per token"]
    report = {"rows": len(split.x), "prompts": len(prompts), "new_tokens": NEW_TOKENS, "versions": rows,
              "kept_float": kept_float,
              "chosen": "int8 (PyTorch)", "backend": "torch-int8"}
    write_json(run.path / runfiles.QUANTIZED_DIR / runfiles.QUANTIZED_REPORT, report)
    refresh_report(run.path)
    return Written(report | {"path": str(run.path / runfiles.QUANTIZED_DIR)})


def ms_per_token(model, prompts: list[list[int]]) -> float:
    """Milliseconds per new token, greedy, exactly NEW_TOKENS from each prompt (no early end of text)."""
    model.generate(prompts[0], 2, 0.0, 1.0, [])  # warm up
    started = time.perf_counter()
    for ids in prompts:
        model.generate(ids, NEW_TOKENS, 0.0, 1.0, [])
    return 1000 * (time.perf_counter() - started) / (NEW_TOKENS * len(prompts))


def linear_kinds(model) -> dict[str, list[str]]:
    """{kind: module names}: the Linear layers by the last part of their name (q_proj, down_proj, lm_head, ...)."""
    kinds: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            kinds.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    return kinds


def int8_except(model, kept_float: list[str]) -> torch.nn.Module:
    """A copy with every Linear layer int8 but those of the `kept_float` kinds (per-output-channel weight scales)."""
    import copy
    import warnings

    from torch.ao import quantization as tq

    spec = {name: tq.per_channel_dynamic_qconfig for kind, names in linear_kinds(model).items()
            if kind not in kept_float for name in names}
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return tq.quantize_dynamic(copy.deepcopy(model).cpu().eval(), spec, dtype=torch.qint8)


def sensitive_kinds(model, rows: torch.Tensor, loss_fn) -> list[str]:
    """The kinds of Linear layer that, quantized alone, raise the perplexity on `rows` by more than TOLERANCE."""
    import math

    from honed.evaluation import outputs_of

    def loss(m) -> float:
        with torch.inference_mode():
            return float(loss_fn(outputs_of(m, rows, 4), None))

    base, kinds = loss(model), list(linear_kinds(model))
    kept = [kind for kind in kinds
            if loss(int8_except(model, [k for k in kinds if k != kind])) - base > math.log1p(TOLERANCE)]
    log.info(f"quantize: {', '.join(kept) or 'no'} layers kept in float32 (quantized alone, each raised the "
             f"validation perplexity by more than {TOLERANCE:.0%})")
    return kept


def validation_rows(recipe, pre) -> torch.Tensor:
    """A few of the run's validation rows (its test split is only for the figures), or training rows without any."""
    from honed.data.build import load_raw, split_raw, to_split

    train, val, _ = split_raw(load_raw(recipe.data), recipe.data)
    return to_split(pre, val if val is not None and len(val) else train, "calibration").x[:CALIBRATION_ROWS]
