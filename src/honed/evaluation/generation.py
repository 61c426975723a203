"""Predictions of a causal language model: completions of prompts.

A prompt is what training's examples began with: `{"messages": [...]}` (the tokenizer's chat template with the
assistant's turn opened), `{"prompt": "..."}` (the text as it is, as prompt/completion examples were read) or
a plain string. Greedy at temperature 0 (the same prompt always gets the same completion), else sampled with
nucleus top-p; a completion ends at the model's end-of-text token, at max_new_tokens, or just before the first
stop string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    out = []
    for number, example in enumerate(prompts, 1):
        ids = prompt_ids(example, tokenizer)
        if len(ids) + 1 > context:
            raise UserError(f"prompt {number} has {len(ids):,} tokens; the model reads at most {context:,} "
                            "(its context): shorten it")
        new = model.generate(ids, min(sampling.max_new_tokens, context - len(ids)), sampling.temperature,
                             sampling.top_p, eos)
        text = tokenizer.decode([t for t in new if t not in eos], skip_special_tokens=True)
        out.append(cut_at_stop(text, sampling.stop))
    return out


def cut_at_stop(text: str, stop: list[str]) -> str:
    cuts = [text.find(s) for s in stop if s in text]
    return text[: min(cuts)] if cuts else text


def shown_prompt(example: Example) -> str:
    """A prompt on one line, as predictions show it beside the completion."""
    if example.messages is not None:
        return " | ".join(f"{m['role']}: {m['content']}" for m in example.messages)
    return example.prompt
