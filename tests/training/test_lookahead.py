"""train.lookahead: the weights pulled back to their exponential average, checked against the formula by hand."""

from types import SimpleNamespace

import torch

from honed.training.lookahead import Lookahead


def test_lookahead_pulls_the_weights_to_their_growing_average():
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    hook = Lookahead(total_steps=20, start=0.5, every=2, decay=0.9, power=2.0)
    trainer = SimpleNamespace(model=model, step=0, epoch_step=0, batches=SimpleNamespace(steps_per_epoch=100))
    weight = model[0].weight
    average = None
    for step in range(1, 21):
        with torch.no_grad():
            weight.add_(1.0)  # a "training step"
        trainer.step = trainer.epoch_step = step
        expected = weight.detach().clone()
        if step >= 10 and step % 2 == 0:
            if average is None:
                average = expected.clone()  # the average starts at the weights
            else:
                rho = 0.9**2 * (step / 20) ** 2
                average = rho * average + (1 - rho) * expected
                expected = average
        hook.on_step_end(trainer, None)
        torch.testing.assert_close(weight.detach(), expected)
    assert hook.average["1.running_mean"] is not None  # BatchNorm's statistics are averaged too


def test_an_epoch_ends_on_the_average():
    model = torch.nn.Linear(1, 1, bias=False)
    hook = Lookahead(total_steps=10, start=0.0, every=5, decay=0.9)
    trainer = SimpleNamespace(model=model, step=0, epoch_step=0, batches=SimpleNamespace(steps_per_epoch=7))
    for step in range(1, 8):
        with torch.no_grad():
            model.weight.fill_(float(step))
        trainer.step = trainer.epoch_step = step
        hook.on_step_end(trainer, None)
    # the average started at step 5 (weight 5) and the epoch's last step (7) sets the weights back to it
    assert model.weight.item() == 5.0
