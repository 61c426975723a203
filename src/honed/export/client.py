"""Predict with an exported honed ONNX bundle, without honed: numpy and onnxruntime (and `tokenizers` for
sub-word and pretrained-encoder bundles; pandas for tables with encoded columns).

`honed export` copies this file into each bundle as predict.py, beside bundle_words.py and bundle_tables.py:

    python predict.py "a wonderful film" "a dull, boring mess"     texts, one per argument
    python predict.py --rows rows.json                             feature rows: [[...], ...] or [{column: value}, ...]
                                                                   (tables: text, numbers or null in any cell)
    python predict.py --images cat.jpg photos/                     image files, or folders of them (image models:
                                                                   decoded as bundle.json's "image" says; Pillow)

    import sys; sys.path.insert(0, "path/to/onnx")
    from predict import Bundle
    Bundle("path/to/onnx").predict(["a wonderful film"])  # [{"prediction": ..., "probabilities": {...}}]

The preprocessing is the one fitted in training, read from preprocess.json (+ vocab.json or tokenizer.json);
the post-processing (sigmoid, softmax, regression scale) is the one bundle.json names.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

if __package__:  # imported as part of honed
    from honed.data import pixels
    from honed.data import table_encoding as tables
    from honed.data.words import TextSettings, text_ids
else:  # run or imported from the bundle folder: the copies exported with the model
    import bundle_pixels as pixels
    import bundle_tables as tables
    from bundle_words import TextSettings, text_ids

BATCH = 1024


class Bundle:
    """An exported model with its preprocessing: raw texts or feature rows in, predictions out."""

    def __init__(self, folder, model_file: str = "model.onnx") -> None:
        import onnxruntime

        self.folder = Path(folder)
        self.info = json.loads((self.folder / "bundle.json").read_text())
        self.pre = json.loads((self.folder / "preprocess.json").read_text())
        self.session = onnxruntime.InferenceSession(str(self.folder / model_file), providers=["CPUExecutionProvider"])
        self.encode = self._text_encoder() if self.pre["kind"] == "text" else None

    def predict(self, items: list) -> list[dict]:
        """[{prediction, probabilities: {label: p}}] for classes, [{prediction: value}] for regression."""
        scores = np.concatenate([self.scores(self.inputs(items[i: i + BATCH])) for i in range(0, len(items), BATCH)])
        post = self.info["output"]
        if self.info["task"] == "regression":
            values = scores.reshape(-1) * post["target_std"] + post["target_mean"]
            return [{"prediction": float(v)} for v in values]
        if self.info["task"] == "binary":
            p1 = 1 / (1 + np.exp(-scores.reshape(-1).astype(np.float64)))
            probs = np.stack([1 - p1, p1], axis=1)
        else:
            e = np.exp(scores - scores.max(axis=1, keepdims=True))
            probs = e / e.sum(axis=1, keepdims=True)
        labels = [str(c) for c in self.info["labels"]]
        return [{"prediction": labels[int(row.argmax())], "probabilities": dict(zip(labels, map(float, row)))}
                for row in probs]

    def image_rows(self, files: list) -> np.ndarray:
        """Image files -> pixel rows, decoded, resized and scaled as training did them (bundle.json's "image")."""
        image = self.info.get("image")
        if not image:
            raise ValueError("this model was not trained on image files: give texts or --rows")
        decoded = []
        for f in files:
            try:
                decoded.append(pixels.read_file(f, image["size"], image["resize"], image["max_pixels"]))
            except (pixels.UnreadableImage, OSError) as e:
                raise ValueError(f"{f}: cannot read this image ({e})") from None
        return pixels.stacked(decoded, image["channels"] == 1)

    def scores(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.info["input"]["name"]: x})[0]

    def inputs(self, items: list) -> np.ndarray:
        """Texts -> int64 token ids right-padded with 0; rows -> float32 features (standardized, or encoded)."""
        if self.encode is not None:
            rows = [self.encode(str(t)) for t in items]
            out = np.zeros((len(rows), max(1, max(map(len, rows), default=1))), dtype=np.int64)
            for i, ids in enumerate(rows):
                out[i, : len(ids)] = ids
            return out
        if self.pre.get("column_encoder"):
            return self._encoded_rows(items)
        columns = self.pre["columns"]
        x = np.array([[row[c] for c in columns] if isinstance(row, dict) else row for row in items], dtype=np.float32)
        return ((x - np.array(self.pre["mean"], dtype=np.float32)) / np.array(self.pre["std"], dtype=np.float32))

    def _encoded_rows(self, items: list) -> np.ndarray:
        """Table rows ({column: cell} or lists in the training columns' order) encoded as training fitted them:
        missing cells and values never seen in training are encoded, not refused."""
        import pandas as pd

        state = self.pre["column_encoder"]
        columns = [tables.Column(**c) for c in state["columns"]]
        names = [c.name for c in columns]
        if all(isinstance(row, dict) for row in items):
            absent = sorted({n for n in names for row in items if n not in row})
            if absent:
                raise ValueError(f"rows lack column(s) {', '.join(map(repr, absent[:5]))}; the model reads: "
                                 f"{', '.join(names)}")
            frame = pd.DataFrame([{n: row[n] for n in names} for row in items], columns=names)
        else:
            frame = pd.DataFrame([list(row) for row in items], columns=names)
        return tables.encode(columns, state["scaling"], frame)

    def _text_encoder(self):
        settings = TextSettings.from_dict(self.pre["text"])
        if settings.tokenizer == "words":
            index = {w: i for i, w in enumerate(json.loads((self.folder / "vocab.json").read_text(encoding="utf-8")))}
            return lambda text: text_ids(text, index, settings)
        from tokenizers import Tokenizer  # sub-words and pretrained encoders: the saved Hugging Face tokenizer

        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))  # truncation to max_len is saved in it
        return lambda text: tokenizer.encode(text).ids


def image_files(paths: list[str]) -> list[str]:
    """The files named, and the image files under the folders named (sorted; hidden ones skipped)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += [str(f) for f in sorted(path.rglob("*")) if f.is_file() and f.suffix.lower() in pixels.SUFFIXES
                      and not any(part.startswith(".") for part in f.relative_to(path).parts)]
        else:
            files.append(str(path))
    return files


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Predict with this exported model (prints JSON lines).")
    p.add_argument("texts", nargs="*", help="texts to classify (text models)")
    p.add_argument("--rows", help="JSON file of feature rows (tabular models)")
    p.add_argument("--images", nargs="+", help="image files, or folders searched for them (image models)")
    p.add_argument("--bundle", default=str(Path(__file__).resolve().parent), help="bundle folder (default: here)")
    args = p.parse_args(argv)
    bundle = Bundle(args.bundle)
    files = image_files(args.images or [])
    items = json.loads(Path(args.rows).read_text()) if args.rows else (files or args.texts)
    if not items:
        p.error("give texts, --rows FILE or --images FILE...")
    try:
        results = bundle.predict(bundle.image_rows(files) if files else items)
    except ValueError as e:  # rows that lack a column the model reads: one line, exit 2
        p.error(str(e))
    for item, result in zip(items, results):
        json.dump({"input": item} | result, sys.stdout)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
