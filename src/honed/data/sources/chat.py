"""Chat and instruction examples from JSONL files for causal language models (see honed/data/chat.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from honed.data.chat import read_chat
from honed.data.raw import RawData, RawSplit
from honed.data.sources import SOURCES
from honed.errors import UserError

if TYPE_CHECKING:
    from honed.recipe.schema import ChatData


@SOURCES.register("chat")
def load(spec: ChatData) -> RawData:
    if not spec.pretrained:
        raise UserError("data.pretrained is required for data.source=chat: the causal language model's folder (Hugging "
                        "Face layout) or .gguf file, whose tokenizer reads the examples")
    train_path = spec.train or spec.path
    if not train_path:
        raise UserError("data.train is required for data.source=chat (a JSONL file: one example per line)")
    train = read_chat(train_path, "data.train" if spec.train else "data.path", spec.max_chars)
    test = read_chat(spec.test, "data.test", spec.max_chars) if spec.test else None
    return RawData(kind="chat", task="language_modeling", train=RawSplit(train, np.zeros(len(train))),
                   test=RawSplit(test, np.zeros(len(test))) if test is not None else None)
