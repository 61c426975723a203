"""Preprocessed datasets cached on disk, so later runs skip reading and tokenizing.

Key: a hash of the data settings (the whole `data` section), of the source files' identity
(absolute path, size, modification time) and of the cache format version. Content: one
.npy per tensor (loaded with allow_pickle=False), the fitted preprocessing as JSON, and
meta.json. An entry is written into a temporary folder and renamed into place, so a
crash never leaves half an entry behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from honed.data.bundle import DataBundle, Split
from honed.data.download import cache_dir
from honed.data.tokens import TokenRows
from honed.errors import UserError
from honed.files import building, loads_json, remove_abandoned

if TYPE_CHECKING:
    from honed.recipe.schema import DataSpec

FORMAT = 6  # 2: n-gram hashes scrambled with splitmix64; 3: token rows stored without padding; 4: test texts;
# 5: character n-grams from the first 64 characters of a word; 6: an archive's README beside train/ and test/
# no longer hides its test split
CACHED_SOURCES = {"imdb", "text_files", "images"}  # the ones whose preprocessing costs seconds (images: decoding)
SPLITS = ("train", "val", "test")
log = logging.getLogger("honed")


def preprocessed_root() -> Path:
    return cache_dir() / "preprocessed"


def file_identity(path: str | None) -> list:
    if not path:
        return []
    p = Path(path).expanduser().resolve()
    if p.is_file():
        st = p.stat()
        return [str(p), st.st_size, st.st_mtime_ns]
    if p.is_dir():  # a folder of files: its newest change and its entry count stand for it
        entries = list(p.rglob("*"))
        return [str(p), len(entries), max((e.stat().st_mtime_ns for e in entries), default=0)]
    return [str(p)]


def cache_key(spec: DataSpec) -> str:
    settings = spec.model_dump(mode="json")
    files = [file_identity(getattr(spec, k, None)) for k in ("path", "train", "test")]  # the files a source reads
    blob = json.dumps({"format": FORMAT, "data": settings, "files": files}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load_cached(spec: DataSpec) -> DataBundle | None:
    from honed.data.preprocess import load_preprocessor

    folder = preprocessed_root() / cache_key(spec)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = loads_json(meta_path.read_text())
        splits = {name: _load_split(folder, name) for name in SPLITS if name in meta["splits"]}
        bundle = DataBundle(task=meta["task"], input_kind=meta["input_kind"], input_dim=meta["input_dim"],
                            output_dim=meta["output_dim"], train=splits["train"], val=splits.get("val"),
                            test=splits["test"], preprocessor=load_preprocessor(folder),
                            image_shape=tuple(meta["image_shape"]) if meta["image_shape"] else None,
                            test_texts=StoredTexts(folder) if (folder / StoredTexts.OFFSETS).is_file() else None)
    except (OSError, ValueError, KeyError, UserError) as e:  # damaged entry: rebuild it
        log.warning("ignoring a damaged cache entry %s (%s)", folder, e)
        return None
    log.info("using preprocessed data from the cache (%s)", folder)
    return bundle


def store(spec: DataSpec, bundle: DataBundle) -> Path:
    """Write the entry into a private folder, then rename it into place: readers see a whole entry or none,
    and any number of processes may store the same key at once (the entries are identical; one stays)."""
    final = preprocessed_root() / cache_key(spec)
    with building(final) as tmp:
        splits = {"train": bundle.train, "val": bundle.val, "test": bundle.test}
        for name, split in splits.items():
            if split is not None:
                _save_inputs(tmp, name, split.x)
                np.save(tmp / f"{name}_y.npy", split.y.numpy())
        bundle.preprocessor.save(tmp)
        if bundle.test_texts is not None:
            StoredTexts.write(tmp, bundle.test_texts)
        meta = {"task": bundle.task, "input_kind": bundle.input_kind, "input_dim": bundle.input_dim,
                "output_dim": bundle.output_dim, "image_shape": list(bundle.image_shape) if bundle.image_shape else None,
                "splits": [n for n, s in splits.items() if s is not None]}
        (tmp / "meta.json").write_text(json.dumps(meta))
    log.info("cached the preprocessed data (%s)", final)
    return final


class StoredTexts:
    """The test split's raw texts in a cache entry: UTF-8 back to back (test_texts.bin) and where each ends
    (test_texts_offsets.npy). Read one text at a time, on demand: a run shows a handful of them in its
    report, and loading every IMDB review would cost more than the run's evaluation. The file stays open,
    so another process republishing the entry (renaming the folder away) cannot pull it from under us."""

    DATA, OFFSETS = "test_texts.bin", "test_texts_offsets.npy"

    def __init__(self, folder: Path) -> None:
        self.ends = np.load(folder / self.OFFSETS, allow_pickle=False)
        self.file = open(folder / self.DATA, "rb")  # noqa: SIM115 - held for the bundle's life
        size = os.fstat(self.file.fileno()).st_size
        if self.ends.ndim != 1 or (len(self.ends) and (int(self.ends[-1]) != size or np.any(np.diff(self.ends) < 0))):
            self.file.close()
            raise ValueError(f"{self.DATA} does not match {self.OFFSETS}")

    @classmethod
    def write(cls, folder: Path, texts) -> None:
        encoded = [texts[i].encode("utf-8", errors="replace") for i in range(len(texts))]
        with open(folder / cls.DATA, "wb") as f:
            for b in encoded:
                f.write(b)
        np.save(folder / cls.OFFSETS, np.cumsum([len(b) for b in encoded], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i: int) -> str:
        i = int(i)
        if not 0 <= i < len(self.ends):
            raise IndexError(i)
        start = int(self.ends[i - 1]) if i > 0 else 0
        return os.pread(self.file.fileno(), int(self.ends[i]) - start, start).decode("utf-8", errors="replace")

    def __del__(self) -> None:
        file = getattr(self, "file", None)
        if file is not None:
            file.close()


def _save_inputs(folder: Path, name: str, x) -> None:
    """Token rows as their ids (int32) and offsets; features as they are."""
    if isinstance(x, TokenRows):
        np.save(folder / f"{name}_ids.npy", x.values.numpy())
        np.save(folder / f"{name}_offsets.npy", x.offsets.numpy())
        if x.features is not None:
            np.save(folder / f"{name}_features.npy", x.features.numpy())
    else:
        np.save(folder / f"{name}_x.npy", x.numpy())


def _load_split(folder: Path, name: str) -> Split:
    y = torch.from_numpy(np.load(folder / f"{name}_y.npy", allow_pickle=False))
    if (folder / f"{name}_ids.npy").is_file():
        ids = np.load(folder / f"{name}_ids.npy", allow_pickle=False)
        offsets = np.load(folder / f"{name}_offsets.npy", allow_pickle=False)
        features = folder / f"{name}_features.npy"
        vectors = torch.from_numpy(np.load(features, allow_pickle=False)) if features.is_file() else None
        return Split(TokenRows(torch.from_numpy(ids), torch.from_numpy(offsets), vectors), y)
    return Split(torch.from_numpy(np.load(folder / f"{name}_x.npy", allow_pickle=False)), y)


def clear() -> tuple[int, int]:
    """Remove every cached preprocessed dataset; (entries, bytes) removed."""
    root = preprocessed_root()
    if not root.is_dir():
        return 0, 0
    entries = [p for p in root.iterdir() if p.is_dir()]
    size = folder_bytes(entries)
    shutil.rmtree(root)
    return len(entries), size


def info() -> tuple[Path, int, int]:
    """(the cache folder, preprocessed datasets in it, their bytes), after sweeping killed runs' leftovers."""
    root = preprocessed_root()
    if root.is_dir():
        remove_abandoned(root)  # half-written entries of killed runs
    entries = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    return root, len(entries), folder_bytes(entries)


def folder_bytes(folders: list[Path]) -> int:
    return sum(f.stat().st_size for p in folders for f in p.rglob("*") if f.is_file())
