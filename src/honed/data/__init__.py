"""Data: sources by name -> splits -> preprocessing fitted on train -> DataBundle."""

from honed.data.build import build_data, load_raw, reuse_built_data, test_split
from honed.data.bundle import DataBundle, Split
from honed.data.preprocess import load_preprocessor
from honed.data.sources import SOURCES

__all__ = ["build_data", "reuse_built_data", "load_raw", "test_split", "DataBundle", "Split", "load_preprocessor", "SOURCES"]
