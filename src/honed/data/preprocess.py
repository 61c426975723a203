"""Preprocessing fitted on the training split only, then applied to every split and at prediction.

Two kinds: `TablePreprocessor` (standardized numeric features) and
`TextPreprocessor` (a tokenizer chosen by name, see text.py).
Both share target handling: class labels -> ids, or a (optionally standardized)
regression target. State is saved as JSON (vocab.json or tokenizer.json), never pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from honed.data.labels import LabelEncoder
from honed.data.profile import column_moments, sample_rows
from honed.data.raw import RawSplit
from honed.data.tokens import TokenRows
from honed.data.words import TextSettings
from honed.errors import UserError
from honed.files import loads_json
from honed.runfiles import PREPROCESS

STATE_FILE = PREPROCESS


class Preprocessor:
    kind = "base"

    def __init__(self, task: str, standardize_target: bool = False, label_column: str = "label") -> None:
        self.task = task  # regression | binary | multiclass (binary/multiclass known after fit)
        self.standardize_target = standardize_target
        self.label_column = label_column
        self.labels: LabelEncoder | None = None
        self.target_mean = 0.0
        self.target_std = 1.0
        self.profile: dict = {}  # what the training inputs look like (data/profile.py); the report reads it

    # targets ---------------------------------------------------------------------------
    def fit_targets(self, y: np.ndarray) -> None:
        if self.task == "regression":
            if self.standardize_target:
                self.target_mean, self.target_std = float(np.mean(y)), float(np.std(y) or 1.0)
            return
        self.labels = LabelEncoder().fit(y, self.label_column)
        self.task = "binary" if len(self.labels.classes) == 2 else "multiclass"

    def targets(self, y: np.ndarray) -> torch.Tensor:
        if self.task == "regression":
            return torch.from_numpy(((np.asarray(y, dtype=np.float32) - self.target_mean) / self.target_std).astype(np.float32))
        ids = torch.from_numpy(self.labels.transform(y))
        return ids.float() if self.task == "binary" else ids

    def unscale(self, outputs: torch.Tensor) -> torch.Tensor:
        """Regression outputs back in the target's own units."""
        return outputs * self.target_std + self.target_mean

    @property
    def output_dim(self) -> int:
        return len(self.labels.classes) if self.task == "multiclass" else 1

    # the whole thing ------------------------------------------------------------------------
    def fit(self, train: RawSplit) -> "Preprocessor":
        self.fit_targets(train.y)
        self.fit_inputs(train.x)
        self.profile = self.profile_inputs(train.x)
        return self

    def fit_transform(self, train: RawSplit):
        """fit(train), then train's inputs as inputs(train.x) gives them (some preprocessors make both at once)."""
        return self.fit(train).inputs(train.x)

    def fit_inputs(self, x) -> None:
        raise NotImplementedError

    def profile_inputs(self, x) -> dict:
        return {}

    def inputs(self, x) -> torch.Tensor:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task": self.task,
            "standardize_target": self.standardize_target,
            "label_column": self.label_column,
            "labels": self.labels.classes if self.labels else None,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "profile": self.profile,
        }

    def restore(self, state: dict[str, Any], folder: Path) -> None:
        self.task = state["task"]
        self.target_mean, self.target_std = state["target_mean"], state["target_std"]
        self.profile = state.get("profile") or {}
        if state["labels"] is not None:
            self.labels = LabelEncoder(state["labels"])

    def save(self, folder: Path, profile: bool = True) -> list[Path]:
        """preprocess.json (and the tokenizer's file); `profile=False` leaves out the training data's profile
        (a private run publishes nothing measured on its training rows beyond the weights)."""
        from honed.files import write_json

        state = self.state()
        if not profile:
            state["profile"] = {}
        return [write_json(folder / STATE_FILE, state)]


def pixel_unit(x) -> float:
    """1/255 for 8-bit rows (an image folder's pixels, data/pixels.stacked8), which mean value / 255; else 1."""
    return 1.0 / 255.0 if getattr(x, "dtype", None) == np.uint8 else 1.0


class TablePreprocessor(Preprocessor):
    """Feature rows -> float32. A numeric matrix (generated and bundled sets) is standardized column by column;
    a table's columns of any type (a DataFrame from the tabular source) go through a ColumnEncoder
    (data/columns.py: inferred types, scaling, missing-value indicators, one-hot categories, dates)."""

    kind = "table"

    def __init__(self, task: str, columns: list[str], standardize: bool = True, standardize_target: bool = False,
                 image_shape: tuple[int, ...] | None = None, label_column: str = "label", encoder=None) -> None:
        super().__init__(task, standardize_target, label_column)
        self.columns = list(columns)
        self.standardize = standardize
        self.image_shape = tuple(image_shape) if image_shape else None
        self.column_encoder = encoder  # a ColumnEncoder for tables read from files, else None
        self.mean = np.zeros(len(columns), dtype=np.float32)
        self.std = np.ones(len(columns), dtype=np.float32)

    def fit_inputs(self, x) -> None:
        if self.column_encoder is not None:
            self.column_encoder.fit(x)
            return
        if self.standardize:  # in float64 over chunks of rows: no whole-size temporary (1.1 GB for CIFAR-10)
            mean, std = column_moments(np.asarray(x))
            unit = pixel_unit(x)
            self.mean, std = (mean * unit).astype(np.float32), (std * unit).astype(np.float32)
            self.std = np.where(std > 0, std, 1.0).astype(np.float32)  # constant columns stay put

    def profile_inputs(self, x) -> dict:
        from honed.data.profile import table_profile

        if self.column_encoder is None:
            return table_profile(x, self.columns, pixel_unit(x))
        encoded = self.column_encoder.transform(x.iloc[sample_rows(len(x))])
        return table_profile(encoded, self.feature_names) | {"columns": self.column_encoder.profile(x)}

    def inputs(self, x) -> torch.Tensor:
        if self.column_encoder is not None:
            import pandas as pd

            if not isinstance(x, pd.DataFrame):  # rows as a matrix of the table's columns, in training's order
                x = pd.DataFrame(np.asarray(x), columns=self.columns)
            return torch.from_numpy(self.column_encoder.transform(x))
        scaled = np.array(x, dtype=np.float32)  # one copy, scaled in place: CIFAR-10's is 550 MB
        if pixel_unit(x) != 1.0:
            scaled /= 255.0  # as pixels.stacked: the same float32 values as rows read through it
        scaled -= self.mean
        scaled /= self.std
        return torch.from_numpy(scaled)

    def picture(self, row: torch.Tensor) -> np.ndarray | None:
        """One image row as the model read it, back to 8-bit pixels (height, width, channels) for a person to look
        at; None for tables. Pixels stored as value / 255 come back as they were; others (scikit-learn's digits,
        0-16) are stretched to 0-255."""
        if self.image_shape is None or self.column_encoder is not None:
            return None
        raw = np.asarray(row, dtype=np.float32) * self.std + self.mean
        if raw.min() < -0.01 or raw.max() > 1.01:
            raw = (raw - raw.min()) / max(float(raw.max() - raw.min()), 1e-6)
        pixels = (np.clip(raw, 0.0, 1.0) * 255).round().astype(np.uint8).reshape(self.image_shape)
        return pixels.transpose(1, 2, 0)

    @property
    def input_dim(self) -> int:
        return len(self.feature_names)

    @property
    def numeric_dim(self) -> int:
        """Leading inputs that are scaled numbers (numeric embeddings read them); the rest are 0/1 columns."""
        return self.column_encoder.numeric_dim if self.column_encoder is not None else len(self.columns)

    @property
    def feature_names(self) -> list[str]:
        """The model's input columns: the table's own, or their encoded parts (workclass=Private, age=missing)."""
        return self.column_encoder.output_names if self.column_encoder is not None else list(self.columns)

    @property
    def feature_sources(self) -> list[str]:
        """The table column each model input comes from (attributions are summed back onto it)."""
        return self.column_encoder.output_columns if self.column_encoder is not None else list(self.columns)

    def state(self) -> dict[str, Any]:
        return super().state() | {
            "columns": self.columns,
            "standardize": self.standardize,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "column_encoder": self.column_encoder.state() if self.column_encoder is not None else None,
        }

    def restore(self, state: dict[str, Any], folder: Path) -> None:
        from honed.data.columns import ColumnEncoder

        super().restore(state, folder)
        self.mean = np.asarray(state["mean"], dtype=np.float32)
        self.std = np.asarray(state["std"], dtype=np.float32)
        self.column_encoder = ColumnEncoder.from_state(state["column_encoder"]) if state.get("column_encoder") else None


class TextPreprocessor(Preprocessor):
    kind = "text"

    def __init__(self, task: str, settings: TextSettings, label_column: str = "label") -> None:
        super().__init__(task, False, label_column)
        self.settings = settings
        self.tokenizer = None
        self.features_dim = 0  # size of each text's sentence vector (data.encoder_features), else 0
        self.remember_vectors = False  # cache sentence vectors (preparing data; not when serving requests)
        self._encoder = None

    @property
    def pretrained(self) -> str | None:
        return self.settings.pretrained

    def fit_inputs(self, texts: list[str]) -> None:
        from honed.data.text import TOKENIZERS

        self.tokenizer = TOKENIZERS.get(self.settings.tokenizer)(self.settings).fit(texts)
        if self.settings.encoder_features:
            self.features_dim = self.encoder.dim

    def fit_transform(self, train: RawSplit) -> TokenRows:
        """The words tokenizer reads each training text once for its vocabulary and its ids (fit_encode)."""
        from honed.data.text import TOKENIZERS

        tokenizer = TOKENIZERS.get(self.settings.tokenizer)(self.settings)
        if not hasattr(tokenizer, "fit_encode"):
            return super().fit_transform(train)
        self.fit_targets(train.y)
        self.tokenizer, rows = tokenizer, tokenizer.fit_encode(train.x)
        if self.settings.encoder_features:
            self.features_dim = self.encoder.dim
        self.profile = self.profile_inputs(train.x)
        return self._with_features(rows, train.x)

    def profile_inputs(self, texts: list[str]) -> dict:
        from honed.data.profile import text_profile

        learned = self.settings.tokenizer == "words" and not self.settings.hash_words
        return text_profile(texts, self.settings, self.tokenizer.index if learned else None)

    def inputs(self, texts: list[str]) -> TokenRows:
        return self._with_features(self.tokenizer.encode(texts), texts)

    def _with_features(self, rows: TokenRows, texts: list[str]) -> TokenRows:
        """The rows with each text's sentence vector beside its ids (data.encoder_features)."""
        if self.settings.encoder_features:
            rows = rows.with_features(torch.from_numpy(self.encoder.vectors(texts, self.remember_vectors)))
        return rows

    @property
    def encoder(self):
        """The frozen sentence encoder (data.encoder_features), loaded on first use."""
        if self._encoder is None:
            from honed.data.embed import encoder_of

            self._encoder = encoder_of(self.settings.encoder_features)
        return self._encoder

    @property
    def input_dim(self) -> int:
        return self.tokenizer.vocab_size

    def state(self) -> dict[str, Any]:
        return super().state() | {"text": self.settings.to_dict(), "features_dim": self.features_dim}

    def restore(self, state: dict[str, Any], folder: Path) -> None:
        from honed.data.text import TOKENIZERS

        super().restore(state, folder)
        self.tokenizer = TOKENIZERS.get(self.settings.tokenizer).load(folder, self.settings)
        self.features_dim = int(state.get("features_dim", 0))

    def save(self, folder: Path, profile: bool = True) -> list[Path]:
        return super().save(folder, profile) + [self.tokenizer.save(folder)]


def load_preprocessor(folder: Path) -> Preprocessor:
    path = folder / STATE_FILE
    if not path.is_file():
        raise UserError(f"{folder} is not a honed run: {STATE_FILE} is missing")
    try:
        state = loads_json(path.read_text(encoding="utf-8"))
        return _rebuild(state, folder)
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: damaged ({type(e).__name__}: {str(e)[:80]}); train the run again") from None


def _rebuild(state: dict[str, Any], folder: Path) -> Preprocessor:
    if state["kind"] == "chat":
        from honed.data.chat import ChatPreprocessor

        return ChatPreprocessor.restored(state)
    if state["kind"] == "table":
        pre: Preprocessor = TablePreprocessor(state["task"], state["columns"], state["standardize"],
                                              state["standardize_target"], state["image_shape"], state["label_column"])
    else:
        pre = TextPreprocessor(state["task"], TextSettings.from_dict(state["text"]), state["label_column"])
    pre.restore(state, folder)
    return pre
