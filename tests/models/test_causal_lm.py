"""Causal language models: a tiny random llama built from a config (no weights downloaded) with a word-level
tokenizer and a ChatML-like template. Each test checks the math against a reference: transformers' own chat
template and unpacked forward passes, peft's unmerged model, greedy decoding by hand."""

from __future__ import annotations

import json

import pytest
import torch

import honed
from honed.data.chat import Example, IGNORE, packed_rows, tokenized
from honed.errors import UserError

pytest.importorskip("transformers")
pytest.importorskip("peft")

WORDS = ["<pad>", "<unk>", "<s>", "<|im_start|>", "<|im_end|>", "system", "user", "assistant", "\n"] + \
    [f"w{i}" for i in range(40)] + ["what", "is", "the", "of"]
TEMPLATE = ("{% for m in messages %}{{ '<|im_start|> ' + m['role'] + ' \\n ' + m['content'] + ' <|im_end|> \\n ' }}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|> assistant \\n ' }}{% endif %}")


def tiny_lm_folder(folder, layers: int = 2, width: int = 32, words_: list[str] = WORDS):
    """A folder in Hugging Face layout: `layers` llama layers of `width`, tied embeddings, its tokenizer and
    template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words_)}, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="removed")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                        eos_token="<|im_end|>", additional_special_tokens=["<|im_start|>", "\n"])
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(words_), hidden_size=width, intermediate_size=2 * width,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, tie_word_embeddings=True, bos_token_id=2, eos_token_id=4,
                         pad_token_id=0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return tiny_lm_folder(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="module")
def tokenizer(tiny_lm):
    from honed.data.chat import load_tokenizer

    return load_tokenizer(str(tiny_lm))


def chat_files(folder, n: int = 60) -> dict[str, str]:
    """Examples in the three forms, with a rule to learn (the answer repeats the question's word)."""
    def example(i: int) -> dict:
        word = f"w{i % 40}"
        if i % 3 == 0:
            return {"messages": [{"role": "user", "content": f"what is {word}"},
                                 {"role": "assistant", "content": f"{word} is {word}"}]}
        return {"prompt": f"what is {word}", "completion": f"{word} is {word}"} if i % 3 == 1 else \
            {"text": f"the {word} is {word}"}
    paths = {}
    for name, count in (("train", n), ("test", 15)):
        paths[name] = str(folder / f"{name}.jsonl")
        with open(paths[name], "w") as f:
            f.writelines(json.dumps(example(i + (0 if name == "train" else 7))) + "\n" for i in range(count))
    return paths


def test_chat_examples_are_the_templates_tokens_with_the_loss_on_the_assistant_turn_only(tokenizer):
    messages = [{"role": "system", "content": "w1"}, {"role": "user", "content": "what is w2"},
                {"role": "assistant", "content": "w2 is w3"}, {"role": "user", "content": "w4"},
                {"role": "assistant", "content": "w5"}]
    ids, learn = tokenized(Example(messages=messages), tokenizer, "completion")
    expected = tokenizer.apply_chat_template(messages, tokenize=True)
    assert ids == (expected if isinstance(expected, list) else expected["input_ids"])  # as transformers applies it
    learned = tokenizer.convert_ids_to_tokens([i for i, keep in zip(ids, learn) if keep])
    assert learned == ["w2", "is", "w3", "<|im_end|>", "\n", "w5", "<|im_end|>", "\n"]  # both turns, not their openings
    prompt_ids, prompt_learn = tokenized(Example(prompt="what is w2", completion="w2 is w3"), tokenizer, "completion")
    assert [tokenizer.convert_ids_to_tokens(i) for i, k in zip(prompt_ids, prompt_learn) if k] == \
        ["w2", "is", "w3", "<|im_end|>"]  # the completion and the end of text, not the prompt
    assert all(tokenized(Example(prompt="what is w2", completion="w3"), tokenizer, "all")[1])


def test_packed_labels_are_the_next_learned_token_of_the_same_example():
    rows = packed_rows([([5, 6, 7], [0, 1, 1]), ([8, 9], [1, 1]), ([10, 11, 12, 13], [1, 0, 0, 1])], 6, pack=True)
    assert rows.shape == (2, 3, 6)  # [5 6 7 8 9 .] and [10 11 12 13 . .]: first fit
    assert rows[0, 0].tolist() == [5, 6, 7, 8, 9, 0] and rows[0, 1].tolist() == [1, 1, 1, 2, 2, 0]
    assert rows[0, 2].tolist() == [6, 7, IGNORE, 9, IGNORE, IGNORE]  # never across examples, never into padding
    assert rows[1, 2].tolist() == [IGNORE, IGNORE, 13, IGNORE, IGNORE, IGNORE]


def test_packing_never_attends_across_examples(tiny_lm):
    from honed.models.causal_lm import CausalLM

    model = CausalLM(str(tiny_lm)).eval()
    examples = [([3, 6, 8, 49, 50, 9], [0, 0, 0, 1, 1, 1]), ([49, 50, 12, 13, 4], [1, 1, 1, 1, 1]),
                ([7, 20, 21], [0, 1, 1])]
    with torch.no_grad():
        packed = model(packed_rows(examples, 16, pack=True))  # one row of three examples
        alone = model(packed_rows(examples, 16, pack=False))  # three rows of one each
    assert packed.shape == (1, 2) and alone.shape == (3, 2)
    torch.testing.assert_close(packed[0], alone.sum(dim=0), rtol=1e-5, atol=1e-5)
    assert packed[0, 1] == sum(sum(learn[1:]) for _, learn in examples)


def test_a_merged_adapter_answers_as_the_unmerged_model(tiny_lm):
    from honed.models.causal_lm import CausalLM
    from honed.recipe.schema import AdapterSpec

    model = CausalLM(str(tiny_lm), AdapterSpec(r=4, targets=["q_proj", "v_proj", "down_proj"])).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero, where merging is trivially exact
                p.normal_(0, 0.5)
        rows = packed_rows([([3, 6, 8, 49, 50, 9], [0, 0, 0, 1, 1, 1]), ([20, 21, 22], [1, 1, 1])], 12, pack=True)
        before = model.logits(rows)
        model.merge_adapter()
        after = model.logits(rows)
    assert not any("lora_" in name for name, _ in model.named_parameters())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_generation_at_temperature_zero_is_greedy_and_repeatable(tiny_lm):
    from honed.models.causal_lm import CausalLM

    model = CausalLM(str(tiny_lm)).eval()
    prompt = [3, 6, 8, 49, 50, 9]
    first = model.generate(prompt, 6, 0.0, 1.0, [])
    assert first == model.generate(prompt, 6, 0.0, 1.0, []) and len(first) == 6
    ids = list(prompt)  # greedy by hand: the argmax of the last position, one token at a time
    with torch.no_grad():
        for _ in range(6):
            ids.append(int(model.lm(torch.tensor([ids])).logits[0, -1].argmax()))
    assert first == ids[len(prompt):]


def test_a_streamed_completion_is_the_completion_and_ends_when_its_reader_goes(tiny_lm, tokenizer):
    import threading

    from honed.evaluation.generation import Sampling, complete, stream
    from honed.models.causal_lm import CausalLM

    model = CausalLM(str(tiny_lm)).eval()
    prompt = "w3 w5 w7"
    ids = tokenizer(prompt)["input_ids"]
    whole = complete(model, tokenizer, [Example(prompt=prompt)], Sampling(12), context=64)[0]
    pieces = list(stream(model, tokenizer, ids, Sampling(12), context=64))
    assert "".join(pieces) == whole and len(pieces) == len(whole.split())  # a piece per word as it is written
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as writer:  # written by a server's one long-lived thread instead: the same pieces
        assert list(stream(model, tokenizer, ids, Sampling(12), context=64, writer=writer)) == pieces
    stop = whole.split()[2]  # a stop string: both end before it, the streamed one never showing its start
    cut = complete(model, tokenizer, [Example(prompt=prompt)], Sampling(12, stop=[stop]), context=64)[0]
    assert "".join(stream(model, tokenizer, ids, Sampling(12, stop=[stop]), context=64)) == cut == whole[
        :whole.index(stop)]
    reader = stream(model, tokenizer, ids, Sampling(50), context=64)
    next(reader)
    reader.close()  # the reader went: the writing thread is told to stop, and is gone
    assert not any(t.name == "honed-generate" for t in threading.enumerate())
    halt = threading.Event()
    halt.set()
    assert len(model.generate(ids, 50, 0.0, 1.0, [], halt=halt)) == 1  # halted: ends after the token being written


@pytest.mark.parametrize("line, message", [
    ({"messages": []}, "'messages' is empty"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "role 'wizard'; allowed: system, user, assistant"),
    ({"messages": [{"role": "user", "content": "x" * 1_000_001}, {"role": "assistant", "content": "y"}]},
     "1,000,001 characters, more than 200,000 (data.max_chars"),
    ({"prompt": "only a prompt"}, "'prompt' and 'completion' must both be text"),
    ({"label": 3}, "no 'text', 'prompt'/'completion' or 'messages' field"),
])
def test_hostile_chat_lines_are_one_line_naming_the_line(tmp_path, line, message):
    from honed.data.chat import read_chat

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(UserError, match="line 2") as e:
        read_chat(path, "data.train", 200_000)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_train_evaluate_predict_a_lora_chat_run(tmp_path, tiny_lm):
    paths = chat_files(tmp_path)
    base = [f"data.pretrained={tiny_lm}", f"data.train={paths['train']}", f"data.test={paths['test']}",
            "data.max_length=32", "model.adapter.targets=[q_proj,v_proj]", "train.report=false"]
    untrained = honed.train("chat_lora", base + ["train.epochs=1", "optimizer.lr=1e-12"], out=tmp_path / "zero")
    run = honed.train("chat_lora", base + ["train.epochs=12", "optimizer.lr=0.02", "train.early_stopping=null"],
                      out=tmp_path / "run")
    assert run.summary["task"] == "language_modeling"
    written = run.summary["generations"]  # greedy completions of test prompts before and after, for the page
    assert len(written) == 3 and all(g["prompt"].startswith("<|im_start|>") or g["prompt"].startswith("what")
                                     or g["prompt"].startswith("the") for g in written)
    page = honed.build_report(run.path).read_text()
    assert "What it writes" in page and all(g["after"] in page for g in written if "<" not in g["after"])
    assert run.summary["test"]["perplexity"] < 0.8 * untrained.summary["test"]["perplexity"]  # it learned
    low, high = run.summary["test"]["ci95"]["perplexity"]
    assert low <= run.summary["test"]["perplexity"] <= high
    stored = set(honed.load_run(run.path).model.state_dict())  # merged on load: no adapter left
    assert not any("lora_" in k for k in stored)
    from safetensors import safe_open

    with safe_open(str(run.path / "model.safetensors"), "pt") as f:  # the run keeps the adapter alone
        assert f.keys() and all("lora_" in k for k in f.keys())
    again = honed.evaluate(run.path)
    assert again["perplexity"] == pytest.approx(run.summary["test"]["perplexity"], rel=1e-4)
    prompts = [[{"role": "user", "content": "what is w3"}], "what is w5"]
    first = honed.predict(run.path, prompts)
    assert list(first.columns) == ["prompt", "completion"] and len(first) == 2
    assert first.equals(honed.predict(run.path, prompts))  # greedy: the same answer every time
    with pytest.raises(UserError, match="prompt 1 has .* tokens; the model reads at most 64"):
        honed.predict(run.path, [" ".join(["w1"] * 80)])
    served_answers_as_predict_does(run.path, prompts, list(first["completion"]))
    quantized = honed.quantize(run.path)  # int8 Linear layers: smaller, the same perplexity within a few percent
    (float_row, int8_row, every_row), chosen = quantized["versions"], quantized["backend"]
    assert every_row["bytes"] <= int8_row["bytes"] and set(quantized["kept_float"]) <= {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"}
    assert chosen == "torch-int8" and every_row["bytes"] < 0.8 * float_row["bytes"]  # embeddings stay float
    assert int8_row["bytes"] < float_row["bytes"] or len(quantized["kept_float"]) == 8  # a kind kept float if it hurt
    assert int8_row["test perplexity"] == pytest.approx(float_row["test perplexity"], rel=0.05)
    assert float_row["test perplexity"] == pytest.approx(run.summary["test"]["perplexity"], rel=1e-4)
    from fastapi.testclient import TestClient

    from honed.serve.generate import create_generation_app

    int8 = TestClient(create_generation_app(run.path, backend="torch-int8", max_new_tokens=8))
    answer = int8.post("/generate", json={"prompts": ["what is w5"]})
    assert answer.status_code == 200 and int8.get("/info").json()["backend"] == "torch-int8"
    exported = honed.export_onnx(run.path)  # the adapter merged into a folder transformers loads alone
    assert exported["format"] == "transformers" and exported["check"]["max_abs_difference"] < 1e-3
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = run.path / "merged"
    reloaded, words = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    ids = words.apply_chat_template(prompts[0], add_generation_prompt=True, tokenize=True)
    ids = torch.tensor([ids if isinstance(ids, list) else ids["input_ids"]])
    greedy = reloaded.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=words.eos_token_id)
    assert words.decode(greedy[0, ids.shape[1]:], skip_special_tokens=True).strip() == first["completion"][0].strip()


def served_answers_as_predict_does(run_dir, prompts: list, completions: list[str]) -> None:
    """/generate: the same completions as honed predict, and every bad request a 4xx with one line."""
    from fastapi.testclient import TestClient

    from honed.serve.app import Limits
    from honed.serve.generate import create_generation_app

    client = TestClient(create_generation_app(run_dir, Limits(max_items=4, max_chars=1000), max_new_tokens=16))
    answer = client.post("/generate", json={"messages": [prompts[0]], "max_new_tokens": 8})
    assert answer.status_code == 200 and answer.json()["completions"][0] == completions[0]
    answer = client.post("/generate", json={"prompts": [prompts[1]], "max_new_tokens": 8})
    assert answer.json()["completions"] == [completions[1]]
    import threading

    from honed.models.causal_lm import CausalLM

    writers = []  # which thread writes each completion: always the server's one writer, streamed or not
    written = CausalLM.generate
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CausalLM, "generate", lambda self, *a, **k: writers.append(threading.current_thread())
                      or written(self, *a, **k))
        streamed = client.post("/generate", json={"prompts": [prompts[1]], "max_new_tokens": 8, "stream": True})
        again = client.post("/generate", json={"prompts": [prompts[1]], "max_new_tokens": 8})
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(chunk.removeprefix("data: ")) for chunk in streamed.text.split("\n\n") if chunk]
    assert events[-1] == {"done": True, "completion": completions[1]}
    assert "".join(e["text"] for e in events[:-1]) == completions[1] == again.json()["completions"][0]
    assert len(writers) == 2 and writers[0] is writers[1] and writers[0].name.startswith("honed-generate")
    for body, status, words in [
        ({"prompts": ["w1", "w2"], "stream": True}, 422, "one prompt per streamed request"),
        ({"prompts": [" ".join(["w1"] * 80)], "stream": True}, 413, "the model reads at most 64"),
        ({"prompts": []}, 422, "empty batch"),
        ({"prompts": ["w1"] * 5}, 413, "the limit is 4"),
        ({"prompts": ["w1 " * 400]}, 413, "more than 1,000"),
        ({"prompts": [" ".join(["w1"] * 80)]}, 413, "the model reads at most 64"),
        ({"messages": [[{"role": "wizard", "content": "w1"}]]}, 422, "role 'wizard'"),
        ({"prompts": ["w1"], "max_new_tokens": 17}, 422, "at most 16"),
        ({"prompts": ["w1"], "messages": [[{"role": "user", "content": "w1"}]]}, 422, "either prompts"),
    ]:
        answer = client.post("/generate", json=body)
        assert answer.status_code == status and words in answer.json()["error"], (body, answer.json())
    assert client.get("/info").json()["context"] == 64


def test_a_smaller_language_model_learns_from_a_larger_ones_distributions(tmp_path, tiny_lm):
    import torch.nn.functional as F

    from honed.models.causal_lm import CausalLM

    student_folder = tiny_lm_folder(tmp_path / "student", layers=1, width=16)
    paths = chat_files(tmp_path)

    def lora(folder) -> list[str]:
        return [f"data.pretrained={folder}", f"data.train={paths['train']}", f"data.test={paths['test']}",
                "data.max_length=32", "model.adapter.targets=[q_proj,v_proj]", "train.report=false"]

    teacher = honed.train("chat_lora", lora(tiny_lm) + ["train.epochs=4", "optimizer.lr=0.02"], out=tmp_path / "t")
    # the loss, token by token, against torch's own KL: alpha = 1 leaves only T^2 KL(teacher/T || student/T)
    rows = honed.data.build_data(teacher.recipe.data).train.x[:2]
    big, small = honed.load_run(teacher.path).model, CausalLM(str(student_folder)).train()
    small.distill_from(big, temperature=2.0, alpha=1.0)
    summed, learned = small(rows).unbind(1)
    labels = rows[:, 2]
    keep = labels != IGNORE
    with torch.no_grad():
        t_logits, s_logits = big.logits(rows)[keep] / 2, small.logits(rows)[keep] / 2
    expected = F.kl_div(F.log_softmax(s_logits, -1), F.log_softmax(t_logits, -1), log_target=True,
                        reduction="sum") * 4
    assert summed.sum().item() == pytest.approx(expected.item(), rel=1e-4) and learned.sum() == keep.sum()
    small.distill_from(None)
    nll = F.cross_entropy(small.logits(rows)[keep], labels[keep], reduction="sum")
    assert small(rows)[:, 0].sum().item() == pytest.approx(nll.item(), rel=1e-4)  # no teacher: the plain loss
    small.eval().distill_from(big, 2.0, 1.0)
    assert small(rows)[:, 0].sum().item() == pytest.approx(nll.item(), rel=1e-4)  # evaluated: the plain loss
    assert not any(k.startswith("teacher") for k in small.state_dict())  # the teacher is never the student's
    result = honed.distill(teacher.path, "chat_lora", lora(student_folder) + ["train.epochs=3", "optimizer.lr=0.02"],
                           out=tmp_path / "distill")
    names = [r["model"] for r in result["rows"]]
    assert names[0] == "teacher (causal_lm)" and names[1].startswith("student + distillation") and \
        names[2] == "student alone"
    distilled, alone = result["rows"][1], result["rows"][2]
    assert distilled["params"] == alone["params"] < result["rows"][0]["params"]
    assert distilled["test perplexity"] != alone["test perplexity"]  # the teacher changed what it learned
    other = tiny_lm_folder(tmp_path / "other", layers=1, width=16, words_=WORDS + ["extra"])
    with pytest.raises(UserError, match="different vocabularies .*: distilling a language model needs the same"):
        honed.distill(teacher.path, "chat_lora", lora(other), out=tmp_path / "no")
