"""A causal language model's run exported as a folder transformers loads: the adapter merged into the weights.

`honed export RUN` on a causal LM run writes RUN/merged/ (`AutoModelForCausalLM.from_pretrained(folder)` and
`AutoTokenizer.from_pretrained(folder)` take it as it is: config.json, model.safetensors, the tokenizer files)
and checks it: the folder is loaded back with transformers alone and its logits on test rows are compared with
the run's own model. (torch.onnx has no export for a generation loop with its cache; the folder is what other
runtimes — vLLM, llama.cpp's converters, TGI — read.)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from honed import runfiles
from honed.errors import UserError
from honed.files import Written, building

log = logging.getLogger("honed")
TOLERANCE = 1e-3  # max |reloaded - run| over the checked logits (float32 on both sides)
CHECKED_ROWS = 2


def export_merged(run_dir, out=None) -> Written:
    """Write the run's merged model and tokenizer to `out` (default RUN/merged), checked; returns export.json."""
    from honed.api import Run
    from honed.run import write_json

    run = Run.open(run_dir)
    recipe, model, pre = run.load()  # the adapter is merged as the run loads
    rows = run.test_split((recipe, model, pre)).x[:CHECKED_ROWS]
    final = Path(out) if out else run.path / runfiles.MERGED_DIR
    started = time.perf_counter()
    with building(final) as folder:
        model.base.save_pretrained(folder, safe_serialization=True)
        pre.tokenizer.save_pretrained(folder)
        difference = reloaded_difference(folder, model, rows)
        if difference > TOLERANCE:
            raise UserError(f"the merged folder's logits differ from the run's by {difference:.3g} (> {TOLERANCE:g}); "
                            "not written")
        info = {"format": "transformers", "model_type": model.base.config.model_type,
                "parameters": sum(p.numel() for p in model.parameters()),
                "check": {"rows": len(rows), "max_abs_difference": difference},
                "bytes": sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
                "seconds": round(time.perf_counter() - started, 2)}
        write_json(folder / runfiles.MERGED_REPORT, info)
    log.info(f"export: {final} ({info['bytes'] / 1e6:.1f} MB), max |reloaded - run| {difference:.2e} on "
             f"{len(rows)} test rows")
    return Written(info | {"path": str(final)})


def reloaded_difference(folder: Path, model, rows: torch.Tensor) -> float:
    """max |logits of the folder loaded by transformers alone - the run model's| on packed `rows`."""
    from transformers import AutoModelForCausalLM

    from honed.models.causal_lm import example_mask, example_positions

    reloaded = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        ids, tags = rows[:, 0], rows[:, 1]
        theirs = reloaded(input_ids=ids, attention_mask=example_mask(tags), position_ids=example_positions(tags),
                          use_cache=False).logits
        ours = model.logits(rows)
    real = (tags > 0).unsqueeze(-1)  # padding positions read only themselves: not a prediction anyone uses
    return float(((theirs - ours).abs() * real).max())
