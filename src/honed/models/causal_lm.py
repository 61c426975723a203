"""A pretrained causal language model (Hugging Face transformers: llama, qwen2, gpt2, ...) that writes.

It reads packed rows (data/chat.py): the ids, each token's example tag, and each position's label. Attention
stays inside each example — a (L, L) mask per row, true where both tokens share a tag and the key is not
later than the query — and positions restart at 0 with each example, so a packed row gives every example
exactly the logits it would get alone (a test checks this against unpacked rows). The model answers, per
row, the summed negative log-likelihood of its learned tokens and their count (as transformers' models
answer their loss when given labels), so evaluation never holds a (rows, L, vocabulary) block of logits.

model.adapter puts LoRA (peft) on the named projections; merged into the weights for inference.
train.activation_checkpointing recomputes each layer's activations in the backward pass.
"""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.transformer import with_lora

if TYPE_CHECKING:
    from honed.recipe.schema import ModelSpec

IGNORE = -100


def load_causal_lm(source: str) -> nn.Module:
    """AutoModelForCausalLM from a folder or a GGUF file (dequantized to float32), nothing downloaded."""
    from honed.pretrained import causal_lm_files

    folder, gguf = causal_lm_files(source)
    try:
        import transformers
    except ImportError:
        raise UserError("model.name = causal_lm needs transformers: pip install 'honed[transformer]'") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    extra = {"gguf_file": gguf} if gguf else {}
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, **extra)
    except ImportError as e:  # a GGUF file needs the gguf package
        raise UserError(f"data.pretrained = {source!r}: {str(e).splitlines()[0][:160]}") from None
    except (OSError, ValueError) as e:
        raise UserError(f"data.pretrained = {source!r}: not a causal language model transformers can load "
                        f"({str(e).splitlines()[0][:160]})") from None
    if gguf:  # its weights are float32 now, but transformers still marks the model as GGUF-quantized, which
        # save_pretrained refuses: unmarked, the merged model exports (honed export) as any other
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    return model


def example_mask(tags: torch.Tensor) -> torch.Tensor:
    """(N, 1, L, L) bool: query i may read key j when both belong to the same example and j <= i. A padding
    position (tag 0) reads only itself, so no row of the attention is empty."""
    n, length = tags.shape
    causal = torch.ones(length, length, dtype=torch.bool, device=tags.device).tril()
    same = (tags[:, :, None] == tags[:, None, :]) & (tags[:, None, :] > 0)
    own = torch.eye(length, dtype=torch.bool, device=tags.device)
    return ((same & causal) | own).unsqueeze(1)


def example_positions(tags: torch.Tensor) -> torch.Tensor:
    """(N, L) long: each token's position within its own example (0 where it starts)."""
    index = torch.arange(tags.shape[1], device=tags.device).expand_as(tags)
    starts = torch.ones_like(tags, dtype=torch.bool)
    starts[:, 1:] = tags[:, 1:] != tags[:, :-1]
    first = torch.cummax(torch.where(starts, index, torch.zeros_like(index)), dim=1).values
    return index - first


class CausalLM(nn.Module):
    def __init__(self, source: str, adapter=None) -> None:
        super().__init__()
        self.lm = load_causal_lm(source)
        if adapter is not None:
            self.lm = with_lora(self.lm, adapter)
        # (teacher, temperature, alpha) while a teacher guides training (training/distill.LanguageTeacher); kept
        # outside the module's registry so that its weights never join this model's state or optimizer
        self.__dict__["teacher"] = None

    def distill_from(self, teacher: "CausalLM | None", temperature: float = 2.0, alpha: float = 0.5) -> None:
        """While training, each learned token's loss also follows `teacher`'s softened next-token distribution."""
        self.__dict__["teacher"] = None if teacher is None else (teacher, temperature, alpha)

    @property
    def base(self) -> nn.Module:
        return self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm

    @property
    def fresh(self) -> nn.Module:
        """Nothing new to initialize: every weight is pretrained (LoRA's own start is peft's)."""
        return nn.ModuleList()

    def checkpoint_activations(self) -> None:
        base, kwargs = self.base, {"use_reentrant": False}
        if hasattr(base, "activation_checkpointing_enable"):
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def state_dict(self, *args, **kwargs):
        """What a run keeps: with an adapter only its matrices (the frozen rest is data.pretrained's own, read
        again when the run loads: a 135M-parameter model's run holds 2 MB, not 540); without one every weight,
        a tied output layer once (it is the input embedding)."""
        full = super().state_dict(*args, **kwargs)
        return {k: v for k, v in full.items() if k in self.kept_names(full)}

    def kept_names(self, full: dict) -> set[str]:
        if hasattr(self.lm, "peft_config"):
            return {k for k in full if "lora_" in k}
        tied = getattr(self.base.config, "tie_word_embeddings", False)
        return {k for k in full if not (tied and k.endswith("lm_head.weight"))}

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        """Loads what state_dict() keeps; the rest stays as data.pretrained has it. Missing keys are those of
        state_dict() alone (what a run keeps), so trainers' partial loads and strict loads both check that."""
        expected = set(self.state_dict())
        result = super().load_state_dict(state, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if k in expected]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"weights do not fit: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}")
        return nn.modules.module._IncompatibleKeys(missing, result.unexpected_keys)

    def merge_adapter(self) -> None:
        if hasattr(self.lm, "merge_and_unload"):
            self.lm = self.lm.merge_and_unload()

    def logits(self, rows: torch.Tensor) -> torch.Tensor:
        """(N, L, vocabulary) next-token logits of packed rows (N, 3, L)."""
        ids, tags = rows[:, 0], rows[:, 1]
        return self.lm(input_ids=ids, attention_mask=example_mask(tags), position_ids=example_positions(tags),
                       use_cache=False).logits

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """(N, 2): each row's summed negative log-likelihood of its learned tokens, and their count. While a
        teacher guides training, the first column is instead each row's summed distillation loss per learned
        token: (1 - alpha) NLL + alpha T² KL(teacher/T || student/T), Hinton et al.'s mix, token by token."""
        labels = rows[:, 2]
        logits = self.logits(rows)
        nll = nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE,
                                          reduction="none").view(labels.shape)
        if self.training and self.teacher is not None:
            nll = self.distilled(rows, logits, nll, labels != IGNORE)
        return torch.stack([nll.sum(dim=1), (labels != IGNORE).sum(dim=1).to(nll.dtype)], dim=1)

    def distilled(self, rows: torch.Tensor, logits: torch.Tensor, nll: torch.Tensor,
                  learned: torch.Tensor) -> torch.Tensor:
        """(N, L) per-token losses mixing each learned token's NLL with the KL to the teacher's distribution."""
        teacher, t, alpha = self.teacher
        with torch.no_grad():
            target = nn.functional.log_softmax(teacher.logits(rows).float() / t, dim=-1)
        student = nn.functional.log_softmax(logits.float() / t, dim=-1)
        kl = (target.exp() * (target - student)).sum(dim=-1) * t * t
        return torch.where(learned, (1 - alpha) * nll + alpha * kl, torch.zeros_like(nll))

    @torch.no_grad()
    def generate(self, ids: list[int], max_new_tokens: int, temperature: float, top_p: float,
                 eos: list[int], streamer=None, halt: threading.Event | None = None) -> list[int]:
        """New token ids after prompt `ids`: greedy at temperature 0, else sampled (nucleus top_p). With a
        `streamer` (transformers' interface) each new token is handed to it as it is written; setting `halt`
        ends the completion after the token being written."""
        was = self.training
        self.eval()
        prompt = torch.tensor([ids], device=next(self.parameters()).device)
        sampled = temperature > 0
        options = {"do_sample": sampled, "max_new_tokens": max_new_tokens, "eos_token_id": eos or None,
                   "pad_token_id": eos[0] if eos else 0}
        if sampled:
            options |= {"temperature": temperature, "top_p": top_p}
        else:
            options |= {"temperature": None, "top_p": None, "top_k": None}
        if streamer is not None:
            options["streamer"] = streamer
        if halt is not None:
            options["stopping_criteria"] = halted_when(halt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.lm.generate(prompt, attention_mask=torch.ones_like(prompt), **options)
        self.train(was)
        return out[0, len(ids):].tolist()


def halted_when(event: threading.Event):
    """transformers' stopping test, true once `event` is set (a streamed completion's reader went, or it found a
    stop string). Built here: transformers is an extra, imported only where a causal LM runs."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Halted(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([Halted()])


@MODELS.register("causal_lm")
def build(spec: ModelSpec, shape: Shape) -> nn.Module:
    if not shape.encoder or shape.input_kind != "tokens":
        raise UserError("model.name = 'causal_lm' needs data.source = chat (examples tokenized by data.pretrained's "
                        "tokenizer)")
    return CausalLM(shape.encoder, spec.adapter)
