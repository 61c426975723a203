"""Downloading data sets into honed's cache directory, with a progress bar and a checksum."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from honed.digest import file_digest
from honed.errors import UserError


def cache_dir() -> Path:
    """$HONED_CACHE, or the platform's user cache directory."""
    env = os.environ.get("HONED_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("honed"))


def md5_of(path: Path) -> str:
    return file_digest(path, "md5")


def download(url: str, dest: Path, md5: str) -> Path:
    """`dest`, downloaded from `url` unless a file with the right checksum is already there."""
    if dest.is_file() and md5_of(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            copy_with_progress(response, out, int(response.headers.get("Content-Length") or 0), dest.name)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise UserError(
            f"cannot download {url} ({e}); download it yourself and set data.path to the archive or its folder"
        ) from None
    got = md5_of(partial)
    if got != md5:
        partial.unlink(missing_ok=True)
        raise UserError(f"downloaded {url} has md5 {got}, expected {md5}; the download was damaged, try again")
    os.replace(partial, dest)
    return dest


def copy_with_progress(src, out, total: int, label: str) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()) as bar:
        task = bar.add_task(f"downloading {label}", total=total or None)
        for chunk in iter(lambda: src.read(1 << 16), b""):
            out.write(chunk)
            bar.advance(task, len(chunk))
