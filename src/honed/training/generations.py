"""What a causal language model writes before and after training, on a few test prompts (the run's page shows it).

With an adapter, the model before its first step *is* the pretrained model (LoRA's B starts at zero), so
"before" is what data.pretrained wrote. Greedy, so each is repeatable; after training the kept weights (the
best epoch's, once early stopping put them back) write "after".
"""

from __future__ import annotations

from honed.training.hooks import Hook

SAMPLES = 3
NEW_TOKENS = 48  # ~2 s each for a 135M-parameter model on 2 CPU cores


class SampleGenerations(Hook):
    def __init__(self, prompts: list[list[int]], tokenizer) -> None:
        self.prompts, self.tokenizer = prompts[:SAMPLES], tokenizer
        self.before: list[str] = []

    def write(self, model) -> list[str]:
        eos = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        return [self.tokenizer.decode([t for t in model.generate(ids, NEW_TOKENS, 0.0, 1.0, eos) if t not in eos],
                                      skip_special_tokens=True).strip() for ids in self.prompts]

    def on_fit_start(self, trainer) -> None:
        if not self.before:  # a resumed run kept what the untrained model wrote (state_dict)
            self.before = self.write(trainer.model)

    def state_dict(self) -> dict:
        return {"before": self.before}

    def on_fit_end(self, trainer) -> None:
        after = self.write(trainer.model)
        trainer.results["generations"] = [
            {"prompt": self.tokenizer.decode(ids, skip_special_tokens=False), "before": b, "after": a}
            for ids, b, a in zip(self.prompts, self.before, after)]
