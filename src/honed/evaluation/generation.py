"""Predictions of a causal language model: completions of prompts.

A prompt is what training's examples began with: `{"messages": [...]}` (the tokenizer's chat template with the
assistant's turn opened), `{"prompt": "..."}` (the text as it is, as prompt/completion examples were read) or
a plain string. Greedy at temperature 0 (the same prompt always gets the same completion), else sampled with
nucleus top-p; a completion ends at the model's end-of-text token, at max_new_tokens, or just before the first
stop string.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from honed.data.chat import Example, chat_ids, example_of, read_chat
from honed.errors import UserError

MAX_NEW_TOKENS = 4096
MAX_PROMPTS = 100_000


@dataclass
class Sampling:
    """How completions are drawn (honed predict's --max-new-tokens, --temperature, --top-p, --stop)."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise UserError(f"--max-new-tokens {self.max_new_tokens}: allowed 1 to {MAX_NEW_TOKENS:,}")
        if not 0 <= self.temperature <= 10:
            raise UserError(f"--temperature {self.temperature:g}: allowed 0 (greedy) to 10")
        if not 0 < self.top_p <= 1:
            raise UserError(f"--top-p {self.top_p:g}: allowed above 0, at most 1")
        if any(not s for s in self.stop) or len(self.stop) > 16:
            raise UserError("--stop: at most 16 stop strings, none empty")


def read_prompts(inputs, max_chars: int) -> list[Example]:
    """Prompts from a JSONL file (`prompt`, `messages` or `text` per line), or a list of strings / message lists."""
    if isinstance(inputs, (str, Path)):
        if Path(inputs).suffix.lower() not in (".jsonl", ".json"):
            raise UserError(f"--input {inputs}: a causal language model reads prompts from a JSONL file "
                            '({"prompt": ...} or {"messages": [...]} per line)')
        return [prompt_only(e) for e in read_chat(inputs, "--input", max_chars, prompts=True)]
    items = list(inputs)
    if len(items) > MAX_PROMPTS:
        raise UserError(f"{len(items):,} prompts, more than {MAX_PROMPTS:,}")
    rows = [{"prompt": i} if isinstance(i, str) else {"messages": i} if isinstance(i, list) else i for i in items]
    return [prompt_only(example_of(r, f"prompt {n}", max_chars, prompts=True)) for n, r in enumerate(rows, 1)]


def prompt_only(example: Example) -> Example:
    """A prompt: a text's or a prompt's words as they are, or a conversation without a closing assistant turn."""
    if example.messages is not None and example.messages[-1]["role"] == "assistant":
        return Example(messages=example.messages[:-1])
    if example.text is not None:
        return Example(prompt=example.text)
    return Example(prompt=example.prompt, messages=example.messages)


def prompt_ids(example: Example, tokenizer) -> list[int]:
    if example.messages is not None:
        return chat_ids(tokenizer, example.messages, generation_prompt=True)
    return tokenizer(example.prompt, add_special_tokens=True)["input_ids"]


def complete(model, tokenizer, prompts: list[Example], sampling: Sampling, context: int) -> list[str]:
    """One completion per prompt; a prompt that leaves no room for a new token within `context` is one line."""
    eos = eos_of(tokenizer)
    out = []
    for number, example in enumerate(prompts, 1):
        ids = fitting_ids(example, tokenizer, context, number)
        new = model.generate(ids, min(sampling.max_new_tokens, context - len(ids)), sampling.temperature,
                             sampling.top_p, eos)
        text = tokenizer.decode([t for t in new if t not in eos], skip_special_tokens=True)
        out.append(cut_at_stop(text, sampling.stop))
    return out


def eos_of(tokenizer) -> list[int]:
    return [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []


def fitting_ids(example: Example, tokenizer, context: int, number: int = 1) -> list[int]:
    """The prompt's token ids; one line when they leave no room for a new token within the model's context."""
    ids = prompt_ids(example, tokenizer)
    if len(ids) + 1 > context:
        raise UserError(f"prompt {number} has {len(ids):,} tokens; the model reads at most {context:,} "
                        "(its context): shorten it")
    return ids


def stream(model, tokenizer, ids: list[int], sampling: Sampling, context: int,
           deadline: float = float("inf"), writer: Executor | None = None) -> Iterator[str]:
    """A completion as it is written: pieces of text whose concatenation is `complete`'s completion of the same
    prompt (greedy: the same text). The model writes in a thread of its own, handing each token over a queue; the
    text so far is decoded whole after each token (a character cut between two tokens, or a stop string half
    written, is held back until the next one settles it). It ends at the end-of-text token, max_new_tokens,
    a stop string, or `deadline` (time.monotonic()); closed early (the reader went), the model stops after the
    token it is writing. `writer`: the one long-lived thread that does a served model's work (see
    serve/generate.py); else a thread of its own."""
    eos = eos_of(tokenizer)
    tokens, halt, failed = TokenQueue(), threading.Event(), []

    def write() -> None:
        try:
            model.generate(ids, min(sampling.max_new_tokens, context - len(ids)), sampling.temperature,
                           sampling.top_p, eos, streamer=tokens, halt=halt)
        except Exception as e:  # noqa: BLE001 - handed to the reader, which raises it
            failed.append(e)
        finally:
            tokens.end()

    if writer is not None:
        job = writer.submit(write)
    else:
        thread = threading.Thread(target=write, name="honed-generate", daemon=True)
        thread.start()
    new: list[int] = []
    sent = 0  # characters of the completion handed out
    held = max((len(s) for s in sampling.stop), default=1) - 1  # a stop string's start may be in the last ones
    try:
        while (token := tokens.next(deadline)) is not None:
            if token in eos:
                continue
            new.append(token)
            text = tokenizer.decode(new, skip_special_tokens=True)
            done = cut_at_stop(text, sampling.stop)
            if len(done) < len(text):  # a stop string: the completion ends before it
                yield done[sent:]
                return
            settled = len(text.rstrip("\ufffd")) - held  # U+FFFD: a character whose bytes are not all written yet
            if settled > sent:
                yield text[sent:settled]
                sent = settled
        if failed:
            raise failed[0]
        text = cut_at_stop(tokenizer.decode(new, skip_special_tokens=True), sampling.stop)
        if len(text) > sent:
            yield text[sent:]
    finally:
        halt.set()
        job.result() if writer is not None else thread.join()


class TokenQueue:
    """transformers' streamer interface (put, end) over a queue: each new token id, then None at the end. The
    prompt, which generate() puts first, is skipped."""

    def __init__(self) -> None:
        self.queue: queue.Queue[int | None] = queue.Queue()
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.queue.put(token)

    def end(self) -> None:
        self.queue.put(None)

    def next(self, deadline: float) -> int | None:
        """The next token; None at the end, or once `deadline` (time.monotonic()) has passed."""
        try:
            return self.queue.get(timeout=max(0.0, deadline - time.monotonic()) if deadline < float("inf") else None)
        except queue.Empty:
            return None


def cut_at_stop(text: str, stop: list[str]) -> str:
    cuts = [text.find(s) for s in stop if s in text]
    return text[: min(cuts)] if cuts else text


def shown_prompt(example: Example) -> str:
    """A prompt on one line, as predictions show it beside the completion."""
    if example.messages is not None:
        return " | ".join(f"{m['role']}: {m['content']}" for m in example.messages)
    return example.prompt
