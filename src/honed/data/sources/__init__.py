"""Data sources by name: each turns a DataSpec into RawData."""

from honed.registry import Registry

SOURCES: Registry = Registry("data source")

# Importing the modules registers them.
from honed.data.sources import chat, images, imdb, sklearn_sets, synthetic, tabular, text_files  # noqa: E402,F401

__all__ = ["SOURCES"]
