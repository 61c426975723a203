"""Chat and instruction data for causal language models: read, template, mask, pack.

A JSONL file holds one example per line, in any of the three forms people have:

    {"text": "..."}                                   plain text: every token is learned
    {"prompt": "...", "completion": "..."}            the loss on the completion's tokens only
    {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}, ...]}
                                                      the tokenizer's own chat template; the loss on the
                                                      assistant turns only

(`data.train_on = all` learns every token of every form.) Each example becomes token ids and a 0/1 "learn
this token" mask, cut at `data.max_length` tokens (the cuts are counted and logged). Examples are then
packed back to back into rows of `data.max_length` tokens, each token tagged with its example's number in
the row (0: padding), so the model can keep attention inside each example (see models/causal_lm.py): a row
costs what its tokens cost, not what the longest example would.

A row travels as one (3, L) long tensor: the ids, the example tags, and the label of each position — the
id of the next token when that token is learned and belongs to the same example, else -100 (ignored) —
so the model answers its own loss, as transformers' models do when given labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from honed.data.preprocess import Preprocessor
from honed.errors import UserError
from honed.files import loads_json

log = logging.getLogger("honed")

ROLES = ("system", "user", "assistant")
IGNORE = -100  # a label no loss reads (PyTorch's cross_entropy ignore_index)
MAX_FILE_BYTES = 2**30  # a chat file read whole; larger: split it
MAX_EXAMPLES = 1_000_000
FORMS = ("text", "prompt/completion", "messages")


@dataclass
class Example:
    """One training example as read: plain text, a prompt and its completion, or chat messages."""

    text: str | None = None
    prompt: str | None = None
    completion: str | None = None
    messages: list[dict] | None = None

    @property
    def form(self) -> str:
        return "messages" if self.messages is not None else "prompt/completion" if self.prompt is not None else "text"


def read_chat(path: str | Path, key: str, max_chars: int, prompts: bool = False) -> list[Example]:
    """The examples of a chat JSONL file named by recipe key `key`; one line names the first bad one. With
    `prompts`, lines to complete: a prompt needs no completion, a conversation no assistant turn."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"{key} = {str(path)!r}: no such file (a JSONL file: one example per line)")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise UserError(f"{key} = {str(path)!r}: {p.stat().st_size:,} bytes, more than {MAX_FILE_BYTES:,}; split it")
    examples: list[Example] = []
    try:
        with open(p, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if len(examples) >= MAX_EXAMPLES:
                    raise UserError(f"{key} = {str(path)!r}: more than {MAX_EXAMPLES:,} examples; split the file")
                try:
                    row = loads_json(line)
                except ValueError as e:
                    raise UserError(f"{key} = {str(path)!r}, line {number}: not JSON ({str(e)[:80]})") from None
                examples.append(example_of(row, f"{key} = {str(path)!r}, line {number}", max_chars, prompts))
    except UnicodeDecodeError:
        raise UserError(f"{key} = {str(path)!r}: not UTF-8 text (a JSONL file: one example per line)") from None
    if not examples:
        raise UserError(f"{key} = {str(path)!r}: the file has no examples")
    return examples


def example_of(row: object, where: str, max_chars: int, prompts: bool = False) -> Example:
    """One JSON line as an Example, or one line saying what is wrong with it (`where` names the line)."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: not a JSON object; each line is one of {{'text'}}, {{'prompt', 'completion'}}, "
                        "{'messages'}")
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise UserError(f"{where}: 'messages' is empty or not a list of {{'role', 'content'}} objects")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                raise UserError(f"{where}: message {i + 1} is not a {{'role', 'content'}} object with text content")
            if m.get("role") not in ROLES:
                raise UserError(f"{where}: message {i + 1} has role {str(m.get('role'))[:40]!r}; allowed: "
                                f"{', '.join(ROLES)}")
            bounded(m["content"], f"{where}: message {i + 1}", max_chars)
        if not prompts and not any(m["role"] == "assistant" for m in messages):
            raise UserError(f"{where}: no 'assistant' message: nothing to learn from")
        return Example(messages=[{"role": m["role"], "content": m["content"]} for m in messages])
    if prompts and isinstance(row.get("prompt"), str):
        return Example(prompt=bounded(row["prompt"], f"{where}: the prompt", max_chars))
    if "prompt" in row or "completion" in row:
        prompt, completion = row.get("prompt"), row.get("completion")
        if not isinstance(prompt, str) or not isinstance(completion, str) or not completion:
            raise UserError(f"{where}: 'prompt' and 'completion' must both be text, the completion not empty")
        return Example(prompt=bounded(prompt, f"{where}: the prompt", max_chars),
                       completion=bounded(completion, f"{where}: the completion", max_chars))
    if isinstance(row.get("text"), str) and row["text"]:
        return Example(text=bounded(row["text"], f"{where}: the text", max_chars))
    raise UserError(f"{where}: no 'text', 'prompt'/'completion' or 'messages' field (has: "
                    f"{', '.join(sorted(map(str, row))[:8]) or 'nothing'})")


def bounded(text: str, what: str, max_chars: int) -> str:
    if len(text) > max_chars:
        raise UserError(f"{what} has {len(text):,} characters, more than {max_chars:,} (data.max_chars, or a "
                        "server's limit)")
    return text


def tokenized(example: Example, tokenizer, train_on: str) -> tuple[list[int], list[int]]:
    """(ids, learn) of one example: learn[i] = 1 where the loss reads token i."""
    if example.text is not None:
        ids = tokenizer(example.text, add_special_tokens=True)["input_ids"]
        if tokenizer.eos_token_id is not None:
            ids = ids + [tokenizer.eos_token_id]  # a text ends: the model learns to stop
        return ids, [1] * len(ids)
    if example.prompt is not None:
        head = tokenizer(example.prompt, add_special_tokens=True)["input_ids"]
        tail = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
        if tokenizer.eos_token_id is not None:
            tail = tail + [tokenizer.eos_token_id]
        return head + tail, [int(train_on == "all")] * len(head) + [1] * len(tail)
    return templated(example.messages, tokenizer, train_on)


def templated(messages: list[dict], tokenizer, train_on: str) -> tuple[list[int], list[int]]:
    """The chat template's ids for `messages`; an assistant turn's tokens are those the template adds for it
    (the ids of the conversation up to and including it, less those of the conversation before it, with the
    generation prompt that opens the turn)."""
    ids: list[int] = []
    learn: list[int] = []
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            opened = chat_ids(tokenizer, messages[:i], generation_prompt=True) if i else []
            if opened[: len(ids)] == ids and len(opened) > len(ids):  # the turn's opening ("<|im_start|>assistant")
                learn += [int(train_on == "all")] * (len(opened) - len(ids))
                ids = opened
        upto = chat_ids(tokenizer, messages[: i + 1], generation_prompt=False)
        if upto[: len(ids)] != ids:  # a template that rewrites earlier turns: learn what it gives for this turn
            raise UserError("data: the tokenizer's chat template does not extend a conversation turn by turn; "
                            "use prompt/completion examples instead")
        added = len(upto) - len(ids)
        learn += [int(message["role"] == "assistant" or train_on == "all")] * added
        ids = upto
    return ids, learn


def chat_ids(tokenizer, messages: list[dict], generation_prompt: bool) -> list[int]:
    if not messages:
        return []
    if tokenizer.chat_template is None:
        raise UserError("data: 'messages' examples need a tokenizer with a chat template (data.pretrained's "
                        "tokenizer has none); use prompt/completion examples")
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
    if not isinstance(ids, list):  # transformers 5 answers a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def packed_rows(examples: list[tuple[list[int], list[int]]], length: int, pack: bool) -> torch.Tensor:
    """(rows, 3, length) long: ids, example tags (1, 2, ... within a row; 0: padding) and labels.

    First fit: each example goes into the first row with room for it (examples are already cut to `length`),
    so the rows stay full; without packing, one example per row."""
    rows: list[list[tuple[list[int], list[int]]]] = []
    room: list[int] = []
    for ids, learn in examples:
        at = next((r for r, free in enumerate(room) if free >= len(ids)), None) if pack else None
        if at is None:
            rows.append([])
            room.append(length)
            at = len(rows) - 1
        rows[at].append((ids, learn))
        room[at] -= len(ids)
    out = torch.zeros(len(rows), 3, length, dtype=torch.long)
    out[:, 2] = IGNORE
    for r, members in enumerate(rows):
        start = 0
        for tag, (ids, learn) in enumerate(members, 1):
            end = start + len(ids)
            out[r, 0, start:end] = torch.tensor(ids)
            out[r, 1, start:end] = tag
            # position t predicts token t + 1 of the same example, when that token is learned
            nxt = torch.tensor(ids[1:])
            keep = torch.tensor(learn[1:], dtype=torch.bool)
            out[r, 2, start:end - 1] = torch.where(keep, nxt, torch.full_like(nxt, IGNORE))
            start = end
    return out


def encode_examples(examples: list[Example], tokenizer, length: int, train_on: str, pack: bool,
                    split: str) -> torch.Tensor:
    """Examples -> packed rows; the examples cut at `length` tokens and those with nothing to learn are logged."""
    encoded, cut, empty = [], 0, 0
    for example in examples:
        ids, learn = tokenized(example, tokenizer, train_on)
        if len(ids) > length:
            cut += 1
            ids, learn = ids[:length], learn[:length]
        if sum(learn[1:]) == 0:
            empty += 1
            continue
        encoded.append((ids, learn))
    if cut:
        log.info(f"data: {split}: {cut:,} of {len(examples):,} examples cut at data.max_length = {length:,} tokens")
    if empty:
        log.warning(f"data: {split}: {empty:,} examples left out: nothing to learn within data.max_length tokens "
                    "(a prompt that fills them)")
    if not encoded:
        raise UserError(f"data: {split}: no example has a token to learn within data.max_length = {length:,} "
                        "(prompts longer than that?); raise data.max_length")
    rows = packed_rows(encoded, length, pack)
    tokens = int((rows[:, 1] > 0).sum())
    log.info(f"data: {split}: {len(encoded):,} examples, {tokens:,} tokens in {len(rows):,} rows of {length:,}"
             f"{' (packed)' if pack else ''}; {int((rows[:, 2] != IGNORE).sum()):,} tokens learned")
    return rows


def row_prompts(rows: torch.Tensor, count: int) -> list[list[int]]:
    """The prompts of the first examples of packed `rows`: each example's ids up to its first learned token."""
    prompts = []
    for row in rows:
        tags, labels = row[1], row[2]
        first = (tags == 1) & (labels != IGNORE)
        if first.any():
            end = int(first.nonzero()[0]) + 1  # label t is token t + 1: the prompt ends where learning starts
            prompts.append(row[0, :end].tolist())
        if len(prompts) == count:
            break
    return prompts


def load_tokenizer(source: str, key: str = "data.pretrained"):
    """The tokenizer of a causal LM: a Hugging Face folder, or a GGUF file (its tokenizer rebuilt by transformers)."""
    from honed.pretrained import causal_lm_files

    folder, gguf = causal_lm_files(source, key)
    try:
        import transformers
    except ImportError:
        raise UserError("data.source = chat needs transformers: pip install 'honed[transformer]'") from None
    from transformers import AutoTokenizer

    transformers.utils.logging.disable_progress_bar()  # a GGUF file's tokenizer is rebuilt behind a bar
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf) if gguf else \
        AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class ChatPreprocessor(Preprocessor):
    """Examples -> packed rows through data.pretrained's own tokenizer; nothing is fitted on the training rows
    (the tokenizer is the model's), so preprocess.json holds the settings alone."""

    kind = "chat"

    def __init__(self, pretrained: str, max_length: int, train_on: str, pack: bool) -> None:
        super().__init__("language_modeling")
        self.pretrained, self.max_length, self.train_on, self.pack = pretrained, max_length, train_on, pack
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.pretrained)
        return self._tokenizer

    def fit(self, train) -> "ChatPreprocessor":  # no labels to learn: the examples' forms, for the page
        self.profile = {"examples": len(train.x), "forms": {f: sum(e.form == f for e in train.x) for f in FORMS}}
        return self

    def rows(self, examples: list[Example], split: str) -> torch.Tensor:
        """The split's examples as packed rows (see packed_rows)."""
        return encode_examples(examples, self.tokenizer, self.max_length, self.train_on, self.pack, split)

    @property
    def input_dim(self) -> int:
        return len(self.tokenizer)

    @property
    def output_dim(self) -> int:
        return len(self.tokenizer)

    def state(self) -> dict:
        return super().state() | {"pretrained": self.pretrained, "max_length": self.max_length,
                                  "train_on": self.train_on, "pack": self.pack, "vocabulary": len(self.tokenizer)}

    @classmethod
    def restored(cls, state: dict) -> "ChatPreprocessor":
        pre = cls(str(state["pretrained"]), int(state["max_length"]), str(state["train_on"]), bool(state["pack"]))
        pre.profile = state.get("profile") or {}
        return pre
