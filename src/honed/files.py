"""Writing artifacts safely: atomic replace, JSON, safetensors. Nothing here unpickles."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from honed.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


MODE = 0o666 & ~_umask()  # what open() would give a new file (mkstemp's temp files are 0600)


def atomic_write(path: Path, write) -> Path:
    """Call write(tmp_path) then rename over `path`, so readers never see half a file. A path that exists and is
    no regular file (a pipe, a device) or a link (/dev/stdout) is written in place, through the link: renaming
    over it would replace the device or the link itself."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        if path.is_dir():
            raise UserError(f"{path}: is a folder; name a file to write")
        try:
            write(path)
        except OSError as e:
            raise UserError(f"{path}: cannot write there ({e.strerror or e})") from None
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:  # a path the user gave (--out, --output, --apply) that cannot be written
        raise UserError(f"{path}: cannot write there ({e.strerror or e})") from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, MODE)
        os.replace(tmp, path)
    except OSError as e:  # a full disk, a folder made read-only meanwhile: the old file (if any) is left whole
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write it ({e.strerror or e}); nothing was replaced") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


LOCK = ".honed.lock"  # in every folder a command writes: who writes there now
_held: dict[Path, int] = {}


def hold(folder: Path, what: str = "--out") -> None:
    """Take `folder` for this process (an exclusive lock on its .honed.lock) until `release(folder)` or the
    process ends (the kernel drops the lock of a killed process). A folder another honed process holds is
    refused in one line: two writers in one run, study or output folder interleave their files."""
    key = folder.resolve()
    if key in _held:
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return
    for _ in range(3):
        try:
            fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, MODE)
        except OSError as e:
            raise UserError(f"{what} {folder}: cannot write there ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(f"{what} {folder}: another honed process (pid {holder}) is writing there; wait for it "
                            "to end, or choose another folder") from None
        try:  # the holder before us removes the file as it lets go: ours must still be the one at that path
            if os.fstat(fd).st_ino == os.stat(folder / LOCK).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:
        raise UserError(f"{what} {folder}: other honed processes keep taking this folder; try again")
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held[key] = fd


def release(folder: Path) -> None:
    """Give up `folder` (taken by `hold`): the lock file is removed, then the lock dropped (a process that opened
    the file meanwhile sees it is gone and takes a new one)."""
    fd = _held.pop(folder.resolve(), None)
    if fd is not None:
        try:
            os.unlink(folder / LOCK)
        except OSError:  # the folder is gone (removed by its owner) or read-only: nothing left to tidy
            pass
        os.close(fd)  # closing the last descriptor drops the flock


@contextlib.contextmanager
def releasing() -> Iterator[None]:
    """Every folder taken by `hold` within the block is given up when it ends (a command's own folders)."""
    before = set(_held)
    try:
        yield
    finally:
        for folder in set(_held) - before:
            release(folder)


@contextlib.contextmanager
def holding(folder: Path, what: str = "--out") -> Iterator[Path]:
    """`hold(folder)` for the length of a block."""
    hold(folder, what)
    try:
        yield folder
    finally:
        release(folder)


@contextlib.contextmanager
def building(final: Path) -> Iterator[Path]:
    """A private folder beside `final` to write a whole folder into (a cache entry, an ONNX bundle): renamed to
    `final` when the block ends (an older `final` replaced whole), removed when it fails. Readers see a whole
    folder or none; one left by a killed process is removed by the next writer beside it."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(final.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".building-{os.getpid()}-", dir=final.parent))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as e:
        raise UserError(f"{final}: cannot write there ({e.strerror or e})") from None
    try:
        yield tmp
        publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, final: Path) -> None:
    """Rename `tmp` to `final`. An entry already there (damaged, or another writer's) is first renamed aside,
    atomically; if another writer's entry lands in between, ours is dropped: it holds the same data."""
    if final.exists():
        stale = final.with_name(f".stale-{os.getpid()}-{final.name}")
        try:
            os.rename(final, stale)
        except OSError:  # another process moved or replaced it first
            pass
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another writer stored the same entry a moment ago


def remove_abandoned(root: Path) -> None:
    """Remove half-written entries (`.building-PID-*`, `.stale-PID-*`) whose process is gone (a killed run)."""
    for folder in root.glob(".[bs][ut]*-*"):
        parts = folder.name.split("-")
        if len(parts) >= 3 and parts[0] in (".building", ".stale") and parts[1].isdigit() and not alive(int(parts[1])):
            shutil.rmtree(folder, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True



def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=_plain) + "\n")


def loads_json(text: str | bytes) -> Any:
    """json.loads, with nesting too deep for the parser (100,000 brackets) a ValueError like any other bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_json(path: Path) -> Any:
    return loads_json(path.read_text(encoding="utf-8"))


def save_weights(path: Path, state: dict[str, torch.Tensor]) -> Path:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))


def load_weights(path: Path, model: nn.Module) -> nn.Module:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))
    return model


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class Written(dict):
    """A command's JSON report (what it wrote to its folder) that also names the folder as `.path`, as every other
    result does (`Run.path`, `TuneResult.path`): `honed.export_onnx(run).path`, or `["path"]` as JSON has it."""

    @property
    def path(self) -> Path:
        return Path(self["path"])
