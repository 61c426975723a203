"""Finding good settings by measuring: the learning-rate range test, budgeted search, side-by-side comparison
(of recipes, of finished runs, and of a student trained with and without a teacher), cross-validation.

These stand above the pipeline: each runs ordinary honed training runs (honed.api) and reports on them.
"""

from honed.tuning.compare import compare, compare_runs
from honed.tuning.cv import cross_validate
from honed.tuning.distill import distill
from honed.tuning.lr_find import lr_find
from honed.tuning.tune import tune

__all__ = ["lr_find", "tune", "compare", "compare_runs", "distill", "cross_validate"]
cv = cross_validate
