"""Folders of images: one sub-folder per class (`cat/*.jpg`), optionally under `train/` and `test/`; the same
packed as .tar, .tar.gz or .zip; or a CSV / JSON lines file of `path,label` (paths relative to it).

Every image is decoded once with Pillow (JPEG, PNG, WebP, BMP, GIF's first frame; RGB, grey, palette, RGBA,
16-bit), brought to `data.size` pixels a side (`data.resize`: crop, pad or stretch) and kept as 8-bit pixels;
the run then sees C x size x size numbers in [0, 1] per image (`RawData.image_shape`), standardized with the
training images' statistics like any table. Hidden files and folders and files that are not images are
skipped and counted; an unreadable image is named in one line (or skipped and counted with
`data.skip_unreadable`); an image with more pixels than `data.max_pixels` is refused before it is decoded.
"""

from __future__ import annotations

import logging
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from honed.data import parallel
from honed.data.pixels import MAX_FILE_BYTES, SUFFIXES, UnreadableImage, decode_file, stacked, stacked8
from honed.data.raw import RawData, RawSplit
from honed.data.sources import SOURCES
from honed.errors import UserError

if TYPE_CHECKING:
    from honed.recipe.schema import ImageData

log = logging.getLogger("honed")

IMAGE_SUFFIXES = set(SUFFIXES)
ARCHIVES = (".tar", ".tar.gz", ".tgz", ".zip")
LISTS = (".csv", ".tsv", ".jsonl", ".json")


@dataclass
class Found:
    """One image file: its split (train/test/None), class, name for messages, and how to read its bytes."""

    split: str | None
    label: str
    name: str
    read: Callable[[], bytes]


@dataclass
class Tally:
    """What was skipped while listing and decoding, said in one log line."""

    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def skip(self, why: str, name: str) -> None:
        self.counts[why] += 1
        self.examples.setdefault(why, name)

    def say(self, where: str) -> None:
        if self.counts:
            log.info(f"data: {where}: skipped " + ", ".join(f"{n:,} {why} (e.g. {self.examples[why]})"
                                                           for why, n in self.counts.items()))


@SOURCES.register("images")
def load(spec: ImageData) -> RawData:
    if not spec.path:
        raise UserError("data.path is required for data.source = images: a folder with one sub-folder per class, "
                        "an archive of one, or a CSV/JSONL of path,label")
    tally = Tally()
    found = list(listing(Path(spec.path).expanduser(), "data.path", tally, spec.max_images))
    if spec.test:
        found = [f for f in found if f.split != "test"] + [
            Found("test", f.label, f.name, f.read)
            for f in listing(Path(spec.test).expanduser(), "data.test", tally, spec.max_images)]
    train = [f for f in found if f.split != "test"]
    test = [f for f in found if f.split == "test"]
    if not train:
        raise UserError(f"data.path = {spec.path!r}: no image found (JPEG, PNG, WebP, BMP or GIF in one sub-folder "
                        "per class)")
    classes = sorted({f.label for f in train})
    if len(classes) < 2:
        raise UserError(f"data.path = {spec.path!r}: one class ({classes[0]!r}); give one sub-folder per class, two "
                        "or more")
    unknown = sorted({f.label for f in test} - set(classes))
    if unknown:
        raise UserError(f"the test images have class(es) the training images lack: {', '.join(unknown[:5])}")
    train_pixels, train_labels = decode_all(train, spec, tally)
    grey = spec.channels == "grey" or (spec.channels == "auto" and all(p.ndim == 2 for p in train_pixels))
    x_train = stacked8(train_pixels, grey)  # 8 bits until the preprocessing scales them: a quarter of the memory
    raw_test = None
    if test:
        test_pixels, test_labels = decode_all(test, spec, tally)
        raw_test = RawSplit(stacked8(test_pixels, grey), np.asarray(test_labels, dtype=object))
    tally.say(spec.path)
    channels = 1 if grey else 3
    log.info(f"data: {len(x_train):,} training images{f' and {len(raw_test):,} test images' if raw_test else ''} "
             f"in {len(classes)} classes, as {channels} x {spec.size} x {spec.size} ({spec.resize})")
    names = pixel_names(channels, spec.size)
    return RawData(kind="table", task="classification", train=RawSplit(x_train, np.asarray(train_labels, dtype=object)),
                   test=raw_test, feature_names=names, image_shape=(channels, spec.size, spec.size))


def pixel_names(channels: int, size: int) -> list[str]:
    """The feature names of an image's pixels, channel by channel, row by row: grey_0_0 ..., or r_0_0 ... b_..."""
    return [f"{c}_{i}_{j}" for c in (["grey"] if channels == 1 else ["r", "g", "b"]) for i in range(size)
            for j in range(size)]


# Files are decoded in windows: their bytes read here (an archive streams in order), then decoded over every core.
# A window ends at WINDOW_BYTES of encoded files or WINDOW_FILES files, whichever comes first: the bytes held at
# once stay bounded (photos of 5 MB: 13 a window) and small files still go out in batches worth shipping.
WINDOW_BYTES = 64 * 2**20
WINDOW_FILES = 2048
PARALLEL_MIN_FILES = 256  # a smaller window decodes in this process (shipping it costs more than it saves)


def decode_all(found: list[Found], spec: ImageData, tally: Tally) -> tuple[list[np.ndarray], list[str]]:
    pixels, labels = [], []
    for files, encoded in windows(found):
        decoded = [p for part in parallel.map_chunks(_decode_chunk, encoded, (spec.size, spec.resize, spec.max_pixels),
                                                     min_items=PARALLEL_MIN_FILES) for p in part]
        for f, result in zip(files, decoded):
            if isinstance(result, np.ndarray):
                pixels.append(result)
                labels.append(f.label)
            elif not spec.skip_unreadable:
                raise UserError(f"{f.name}: cannot read this image ({result}); remove it, or set "
                                "data.skip_unreadable=true to skip such files")
            else:
                tally.skip("unreadable images", f.name)
    return pixels, labels


def windows(found: list[Found]) -> Iterator[tuple[list[Found], list[bytes | Exception]]]:
    """(files, each one's bytes or the error reading it), WINDOW_BYTES or WINDOW_FILES at a time."""
    files: list[Found] = []
    encoded: list[bytes | Exception] = []
    held = 0
    for f in found:
        try:
            data: bytes | Exception = f.read()
        except (UnreadableImage, OSError) as e:
            data = e
        files.append(f)
        encoded.append(data)
        held += len(data) if isinstance(data, bytes) else 0
        if held >= WINDOW_BYTES or len(files) >= WINDOW_FILES:
            yield files, encoded
            files, encoded, held = [], [], 0
    if files:
        yield files, encoded


def _decode_chunk(job: tuple) -> list[np.ndarray | str]:
    """(encoded files (bytes, or the error reading them), size, resize, max_pixels) -> each file's 8-bit pixels, or
    why it cannot be read (a worker process runs this: errors come back as text)."""
    encoded, size, resize, max_pixels = job
    out: list[np.ndarray | str] = []
    for data in encoded:
        try:
            if isinstance(data, Exception):
                raise data
            out.append(decode_file(data, size, resize, max_pixels))
        except (UnreadableImage, OSError) as e:
            out.append(str(e))
    return out


def decoding(recipe: dict | None, image_shape) -> dict | None:
    """How a run decodes an image file (its recipe's data settings and channels), as serving and ONNX bundles
    repeat it; None for runs not trained on image files."""
    data = (recipe or {}).get("data") or {}
    if data.get("source") != "images" or not image_shape:
        return None
    return {"size": data["size"], "resize": data["resize"], "max_pixels": data["max_pixels"],
            "channels": int(image_shape[0]), "pixels": "channels first, each 8-bit value / 255, then standardized "
            "by preprocess.json's mean and std"}


def decode(data: bytes, spec: ImageData) -> np.ndarray:
    """One image file's bytes -> 8-bit pixels at the recipe's size and resize policy (data/pixels.py)."""
    return decode_file(data, spec.size, spec.resize, spec.max_pixels)


def listing(path: Path, key: str, tally: Tally, limit: int) -> Iterator[Found]:
    """Every image under `path` (a folder, an archive, or a list file), with its split and class."""
    name = path.name.lower()
    if path.is_dir():
        items = folder_items(path, tally)
    elif path.is_file() and name.endswith(ARCHIVES):
        items = archive_items(path, key, tally)
    elif path.is_file() and name.endswith(LISTS):
        items = list_items(path, key)
    elif not path.exists():
        raise UserError(f"{key} = {str(path)!r}: not found")
    else:
        raise UserError(f"{key} = {str(path)!r}: give a folder of class folders, a .tar/.tar.gz/.zip of one, or a "
                        "CSV/JSONL of path,label")
    for count, (parts, read) in enumerate(items, 1):
        if count > limit:
            raise UserError(f"{key} = {str(path)!r}: more than data.max_images = {limit:,} images")
        yield placed(parts, read, str(path))


def placed(parts: tuple[str, ...], read: Callable[[], bytes], where: str) -> Found:
    """A file's place (folders under the root, then its name) -> split and class: train/cat/x.jpg, cat/x.jpg."""
    name = f"{where}/{'/'.join(parts)}"
    if len(parts) >= 3 and parts[0].lower() in ("train", "test", "training", "testing"):
        return Found("test" if parts[0].lower().startswith("test") else "train", parts[1], name, read)
    return Found(None, parts[-2], name, read)


def wanted(parts: tuple[str, ...], tally: Tally, name: str) -> bool:
    """Whether a file at `parts` is an image to read: not hidden, in a class folder, with an image suffix."""
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        tally.skip("hidden files", name)
        return False
    if PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
        tally.skip("files that are not images", name)
        return False
    if len(parts) < 2:
        tally.skip("images outside a class folder", name)
        return False
    return True


def sized_read(read: Callable[[], bytes], size: int) -> Callable[[], bytes]:
    def bounded() -> bytes:
        if size > MAX_FILE_BYTES:
            raise UnreadableImage(f"{size:,} bytes; an image file is at most {MAX_FILE_BYTES:,}")
        return read()

    return bounded


def folder_items(root: Path, tally: Tally) -> Iterator[tuple[tuple[str, ...], Callable[[], bytes]]]:
    """Files under `root`, sorted (the same order on every machine), as (parts under the root, reader)."""
    top = single_top(sorted(p.name for p in root.iterdir() if not p.name.startswith(".")))
    base = root / top if top and (root / top).is_dir() and not looks_like_split(top) else root
    for p in sorted(base.rglob("*")):
        if p.is_file() and not p.is_symlink():
            parts = p.relative_to(base).parts
            if wanted(parts, tally, str(p)):
                yield parts, sized_read(p.read_bytes, p.stat().st_size)


def archive_items(path: Path, key: str, tally: Tally, classes: bool = True
                  ) -> Iterator[tuple[tuple[str, ...], Callable[[], bytes]]]:
    """Members of a .tar(.gz) or .zip, in the archive's order; one top folder holding the layout is looked into.
    With `classes=False` (images to predict on) a file needs no class folder."""
    try:
        if path.name.lower().endswith(".zip"):
            archive = zipfile.ZipFile(path)
            members = [(m.filename, m.file_size, (lambda m=m: archive.read(m))) for m in archive.infolist()
                       if not m.is_dir()]
        else:
            archive = tarfile.open(path)
            members = [(m.name, m.size, (lambda m=m: archive.extractfile(m).read())) for m in archive.getmembers()
                       if m.isfile()]
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise UserError(f"{key} = {str(path)!r}: cannot read the archive ({str(e)[:80]})") from None
    names = [PurePosixPath(n).parts for n, _, _ in members]
    tops = {p[0] for p in names if len(p) > 1 and not p[0].startswith(".") and p[0] != "__MACOSX"}
    strip = 1 if len(tops) == 1 and not looks_like_split(next(iter(tops))) and all(
        len(p) >= 3 for p in names if p and p[0] in tops and PurePosixPath(p[-1]).suffix.lower() in IMAGE_SUFFIXES
    ) else 0  # a README or LICENSE beside the layout in the top folder does not make the top folder a class
    for (name, size, read), parts in zip(members, names):
        parts = parts[strip:] if parts and parts[0] in tops else parts
        if parts and wanted(parts if classes else ("predict", *parts), tally, f"{path}:{name}"):
            yield parts, sized_read(read, size)


def list_items(path: Path, key: str) -> Iterator[tuple[tuple[str, ...], Callable[[], bytes]]]:
    """A CSV/JSONL of path,label: each path read relative to the list's folder."""
    from honed.data.files import read_columns

    rows = read_columns(path, key, {"path": key, "label": key})
    for file, label in zip(rows["path"], rows["label"]):
        if file is None or label is None or str(file) == "" or str(label) == "":
            raise UserError(f"{key} = {str(path)!r}: a row lacks its path or label")
        target = (path.parent / str(file)).expanduser()
        if not target.is_file():
            raise UserError(f"{key} = {str(path)!r}: {file!r} is not a file")
        yield (str(label), target.name), sized_read(target.read_bytes, target.stat().st_size)


def single_top(names: list[str]) -> str | None:
    return names[0] if len(names) == 1 else None


def looks_like_split(name: str) -> bool:
    return name.lower() in ("train", "test", "training", "testing")


def prediction_table(path: Path, spec: ImageData, channels: int):
    """Image files to predict on — one file, a folder (searched through), an archive or a path list — as a
    DataFrame: `path`, then the pixel columns training used, decoded and resized as in training."""
    import pandas as pd

    tally = Tally()
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        items = [((path.name,), sized_read(path.read_bytes, path.stat().st_size))]
    elif path.is_dir():
        items = [((str(p.relative_to(path)),), sized_read(p.read_bytes, p.stat().st_size))
                 for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink()
                 and wanted(("predict", *p.relative_to(path).parts), tally, str(p))]
    elif path.is_file() and path.name.lower().endswith(ARCHIVES):
        items = [((str(PurePosixPath(*parts)),), read)
                 for parts, read in archive_items(path, "--input", tally, classes=False)]
    elif path.is_file() and path.name.lower().endswith(LISTS):
        items = [((f"{parts[0]}",), read) for parts, read in list_paths(path)]
    else:
        raise UserError(f"--input {path}: give an image file, a folder of images, an archive of them or a CSV of "
                        "paths")
    if len(items) > spec.max_images:
        raise UserError(f"--input {path}: more than data.max_images = {spec.max_images:,} images")
    found = [Found(None, "", f"{path}/{parts[0]}" if path.is_dir() else parts[0], read) for parts, read in items]
    if not found:
        raise UserError(f"--input {path}: no image found")
    pixels = []
    for f in found:  # every file answered or named: a prediction per file, in order
        try:
            pixels.append(decode(f.read(), spec))
        except (UnreadableImage, OSError) as e:
            raise UserError(f"{f.name}: cannot read this image ({e})") from None
    tally.say(str(path))
    x = stacked(pixels, grey=channels == 1)
    frame = pd.DataFrame(x, columns=pixel_names(channels, spec.size))
    frame.insert(0, "path", [f.name for f in found])
    return frame


def list_paths(path: Path) -> Iterator[tuple[tuple[str, ...], Callable[[], bytes]]]:
    """The `path` column of a CSV/JSONL (relative to it): files to predict on."""
    from honed.data.files import read_columns

    for file in read_columns(path, "--input", {"path": "--input"})["path"]:
        target = (path.parent / str(file)).expanduser()
        if not target.is_file():
            raise UserError(f"--input {path}: {file!r} is not a file")
        yield (str(file),), sized_read(target.read_bytes, target.stat().st_size)
