"""Run directories: everything written to disk goes through here (atomic, safe formats)."""

from honed.run.checkpoints import Checkpoints, Resume, load_latest
from honed.run.checkpoints import remove_all as remove_checkpoints
from honed.files import atomic_write, load_weights, read_json, save_weights, write_json, write_text
from honed.run.plots import plot_curves
from honed.run.progress import ProgressBar
from honed.run.rundir import (CURVES, METRICS, MODEL, RECIPE, SUMMARY, WEIGHTS, MetricsLog, check_run_dir,
                              check_out_free, new_run_dir, read_metrics, remove_run_dir, read_summary, timestamped, write_recipe,
                              write_summary)

__all__ = ["Checkpoints", "Resume", "load_latest", "remove_checkpoints", "atomic_write", "load_weights", "read_json", "save_weights", "write_json", "write_text", "plot_curves",
           "ProgressBar", "MetricsLog", "check_run_dir", "check_out_free", "new_run_dir", "remove_run_dir", "timestamped", "read_metrics", "read_summary",
           "write_recipe", "write_summary", "CURVES", "METRICS", "MODEL", "RECIPE", "SUMMARY", "WEIGHTS"]
