"""IMDB movie reviews (Maas et al., 2011): the official archive, its extracted folder, or a download.

Layout: aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt. The unlabeled train/unsup
reviews are ignored. Reviews are returned in a fixed order (split, label, id) so
that runs are repeatable whatever order the archive stores them in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import logging
import re
import tarfile
from pathlib import Path

import numpy as np

from honed.data import parallel
from honed.data.download import cache_dir, download
from honed.data.raw import RawData, RawSplit
from honed.data.sources import SOURCES
from honed.errors import UserError

if TYPE_CHECKING:
    from honed.recipe.schema import ImdbData

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
REVIEW = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


@SOURCES.register("imdb")
def load(spec: ImdbData) -> RawData:
    path = Path(spec.path).expanduser() if spec.path else fetch()
    if not path.exists():
        raise UserError(f"data.path = {spec.path!r}: no IMDB archive or folder there")
    # read in a worker process: tarfile parses 50,000 headers in Python, which would hold up the background imports
    reviews = parallel.in_worker(read_folder if path.is_dir() else read_archive, path)
    splits = {name: to_split(reviews, name) for name in ("train", "test")}
    for name, split in splits.items():
        if len(split) == 0:
            raise UserError(f"data.path = {str(path)!r}: no aclImdb/{name}/{{pos,neg}}/*.txt reviews found")
    return RawData(kind="text", task="classification", train=splits["train"], test=splits["test"])


def fetch() -> Path:
    """The official archive in the cache directory, downloaded and checksummed on first use."""
    return download(URL, cache_dir() / "imdb" / "aclImdb_v1.tar.gz", md5=MD5)


MAX_REVIEW_BYTES = 1 << 22  # 4 MiB: IMDB's longest review is 14 KB; a larger member is not a review


def read_archive(path: Path) -> list[tuple[str, str, int, str]]:
    """The reviews of an archive, through libarchive when it is installed (C: 0.5 s for IMDB's 50,000
    members, where tarfile parses their headers in Python for 1.5 s), else through tarfile."""
    logging.getLogger("libarchive").setLevel(logging.ERROR)  # its import logs which C features it lacks
    try:
        import libarchive
    except (ImportError, OSError):  # the package, or the C library it binds, is not there
        return read_tar(path)
    try:
        reviews = []
        with libarchive.file_reader(str(path)) as archive:
            for entry in archive:
                m = REVIEW.search(entry.pathname or "")
                if m and entry.isfile:
                    checked_size(path, entry.pathname, entry.size or 0)
                    blocks, size = [], 0
                    for block in entry.get_blocks():  # bounded as read too: a size the header left out
                        size += len(block)
                        checked_size(path, entry.pathname, size)
                        blocks.append(block)
                    reviews.append((m[1], m[2], int(m[3]), b"".join(blocks).decode("utf-8", errors="replace")))
        return reviews
    except (libarchive.ArchiveError, OSError) as e:  # its message, without the C call's return codes
        raise unreadable(path, getattr(e, "msg", None) or e) from None


def read_tar(path: Path) -> list[tuple[str, str, int, str]]:
    try:
        reviews = []
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                m = REVIEW.search(member.name)
                if m and member.isfile():
                    checked_size(path, member.name, member.size)
                    text = tar.extractfile(member).read().decode("utf-8", errors="replace")
                    reviews.append((m[1], m[2], int(m[3]), text))
        return reviews
    except (tarfile.TarError, OSError, EOFError) as e:  # tarfile lists each compression it tried: a line
        raise unreadable(path, str(e) if "\n" not in str(e) else "not a .tar, .tar.gz, .tar.bz2 or .tar.xz file") \
            from None


def unreadable(path: Path, why) -> UserError:
    return UserError(f"data.path = {str(path)!r}: not a readable IMDB archive ({why})")


def checked_size(path: Path, name: str, size: int) -> None:
    if size > MAX_REVIEW_BYTES:
        raise UserError(f"data.path = {str(path)!r}: {name} holds {size:,} bytes; a review may hold at most "
                        f"{MAX_REVIEW_BYTES:,}")


def read_folder(path: Path) -> list[tuple[str, str, int, str]]:
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    reviews = []
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            for f in (root / split / label).glob("*.txt"):
                m = REVIEW.search(f"aclImdb/{split}/{label}/{f.name}")
                if m:
                    reviews.append((split, label, int(m[3]), f.read_text(encoding="utf-8", errors="replace")))
    return reviews


def to_split(reviews, name: str) -> RawSplit:
    chosen = sorted((r for r in reviews if r[0] == name), key=lambda r: (r[1], r[2]))
    return RawSplit([r[3] for r in chosen], np.array([r[1] for r in chosen], dtype=object))
