"""What the report needs from the test split, kept beside the run so that the page can be rebuilt
without the model or the data:

    test_outputs.npz   the model's raw outputs and the targets on the test split (numpy, no pickles)
    mistakes.json      the test examples predicted wrong with the highest probability, texts included (images as
                       small PNGs)

Written once by `honed train` from the outputs it scored the test split with; a run made without them
(an older run) gets them by scoring its test split again.
"""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from honed.evaluation.calibration import confident_mistakes
from honed.files import atomic_write, read_json, write_json
from honed import runfiles

OUTPUTS, MISTAKES = runfiles.TEST_OUTPUTS, runfiles.MISTAKES
SHOWN_CHARS = 1200  # a mistake's text beyond this is cut (the page stays readable; the row number finds it)
log = logging.getLogger("honed")


def save_test_evidence(run_dir: Path, scores: torch.Tensor, targets: torch.Tensor, task: str,
                       texts=None, pictures: Callable[[int], np.ndarray | None] | None = None) -> None:
    """test_outputs.npz, and for classifiers mistakes.json (with the texts of the rows shown, if text; with each
    row's image as a small PNG, if images: `pictures(row)` gives its 8-bit pixels)."""
    outputs, truth = scores.detach().float().cpu().numpy(), targets.detach().cpu().numpy()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, outputs=outputs, targets=truth)

    atomic_write(run_dir / OUTPUTS, write)
    if task in ("regression", "language_modeling"):  # no classes, so no confident mistakes
        return
    mistakes = confident_mistakes(scores, targets, task)
    for m in mistakes:
        if texts is not None:
            text = texts[m["row"]]
            m["text"] = text[:SHOWN_CHARS] + (" …" if len(text) > SHOWN_CHARS else "")
        if pictures is not None and (png := png_uri(pictures(m["row"]))):
            m["image"] = png
    write_json(run_dir / MISTAKES, mistakes)


def png_uri(pixels: np.ndarray | None) -> str | None:
    """8-bit pixels (height, width, channels) as a PNG data URI for the page; None without Pillow or pixels."""
    if pixels is None:
        return None
    try:
        from PIL import Image
    except ImportError:
        return None
    buffer = io.BytesIO()
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def load_test_outputs(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(outputs, targets) from test_outputs.npz, or None when the run has none or it is damaged."""
    path = run_dir / OUTPUTS
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["outputs"], data["targets"]
    except (OSError, ValueError, KeyError) as e:
        log.warning(f"report: {path} is damaged ({type(e).__name__}); the test figures are left out")
        return None


def load_mistakes(run_dir: Path) -> list[dict]:
    path = run_dir / MISTAKES
    if not path.is_file():
        return []
    try:
        mistakes = read_json(path)
    except ValueError:
        return []
    return [m for m in mistakes if isinstance(m, dict)] if isinstance(mistakes, list) else []
