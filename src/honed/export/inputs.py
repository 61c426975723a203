"""Real inputs to check an exported or quantized model on: the run's test split, or a file the user gives."""

from __future__ import annotations

import torch

from honed.data.bundle import trim_padding
from honed.errors import UserError


def check_inputs(recipe, pre, inputs=None, rows: int = 256) -> torch.Tensor:
    """Preprocessed rows (at most `rows`) from `inputs` (a file), else from the run's test split."""
    from honed.data import test_split
    from honed.data.predict_inputs import read_inputs

    if inputs is not None:
        x = pre.inputs(read_inputs(inputs, pre, recipe.data))
    else:
        try:
            x = test_split(recipe.data, pre).x
        except UserError as e:
            raise UserError(f"{e} (the run's test data is needed to check the model; or give --input FILE)") from None
    return trim_padding(x[:rows]) if x.dtype == torch.int64 else x[:rows]
