"""Losses, optimizers and schedules by name, against torch's own functions on the same inputs."""

import pytest
import torch
import torch.nn.functional as F

from honed.recipe import load_recipe
from honed.training.losses import build_loss
from honed.training.optimizers import build_optimizer
from honed.training.schedules import Schedule


def loss_of(fields: dict, task: str):
    return build_loss(load_recipe({"loss": fields}).loss, task)


def test_regression_and_smoothed_losses_equal_torch_functional():
    g = torch.Generator().manual_seed(0)
    out, y = torch.randn(50, generator=g) * 3, torch.randn(50, generator=g)
    assert loss_of({"name": "mae"}, "regression")(out, y) == pytest.approx(float(F.l1_loss(out, y)))
    assert loss_of({"name": "huber", "huber_delta": 0.7}, "regression")(out, y) == pytest.approx(
        float(F.huber_loss(out, y, delta=0.7)))
    logits, labels = torch.randn(40, 5, generator=g), torch.randint(0, 5, (40,), generator=g)
    smoothed = loss_of({"name": "cross_entropy", "label_smoothing": 0.2}, "multiclass")(logits, labels)
    # label smoothing by hand: (1 - e) * NLL + e * mean over classes of -log p
    logp = F.log_softmax(logits, 1)
    by_hand = (0.8 * -logp.gather(1, labels[:, None]).squeeze(1) + 0.2 * -logp.mean(1)).mean()
    assert float(smoothed) == pytest.approx(float(by_hand), rel=1e-5)


def test_smoothed_bce_equals_two_class_cross_entropy_and_regression_refuses_smoothing():
    """Label smoothing on two classes means what cross_entropy makes of it on the logits (0, score)."""
    g = torch.Generator().manual_seed(1)
    scores, labels = torch.randn(30, generator=g) * 2, torch.randint(0, 2, (30,), generator=g)
    two = torch.stack([torch.zeros_like(scores), scores], 1)
    smoothed = loss_of({"name": "bce", "label_smoothing": 0.1}, "binary")
    per_row = F.cross_entropy(two, labels, label_smoothing=0.1, reduction="none")
    assert float(smoothed(scores, labels.float())) == pytest.approx(float(per_row.mean()), rel=1e-5)
    weighted = loss_of({"name": "bce", "label_smoothing": 0.1, "class_weights": [1.0, 3.0]}, "binary")
    row_weights = 1.0 + 2.0 * labels  # each row's smoothed loss counted with its label's weight
    reference = (row_weights * per_row).sum() / row_weights.sum()
    assert float(weighted(scores, labels.float())) == pytest.approx(float(reference), rel=1e-5)
    from honed.errors import UserError

    with pytest.raises(UserError, match="label_smoothing"):
        loss_of({"label_smoothing": 0.1}, "regression")


@pytest.mark.parametrize("fields,reference", [
    ({"name": "rmsprop", "lr": 0.01, "alpha": 0.9, "momentum": 0.5},
     lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, eps=1e-8)),
    ({"name": "adagrad", "lr": 0.1}, lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-8)),
    ({"name": "lbfgs", "lr": 1.0},
     lambda p: torch.optim.LBFGS(p, lr=1.0, max_iter=20, history_size=10, line_search_fn="strong_wolfe")),
    ({"name": "adamw", "lr": 0.01, "weight_decay": 0.1, "fused": True},  # checked against the unfused update
     lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1, foreach=False)),
], ids=["rmsprop", "adagrad", "lbfgs", "fused-adamw"])
def test_optimizer_steps_equal_torch_optim(fields, reference):
    torch.manual_seed(0)
    x, y = torch.randn(64, 3), torch.randn(64)
    ours_model, ref_model = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    ref_model.load_state_dict(ours_model.state_dict())
    ours, ref = build_optimizer(ours_model, load_recipe({"optimizer": fields}).optimizer), reference(
        list(ref_model.parameters()))
    for _ in range(3):
        for model, opt in ((ours_model, ours), (ref_model, ref)):
            def closure(model=model, opt=opt):
                opt.zero_grad()
                loss = F.mse_loss(model(x).squeeze(1), y)
                loss.backward()
                return loss
            opt.step(closure)
    for a, b in zip(ours_model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(a, b)


def test_plateau_in_max_mode_cuts_the_rate_when_accuracy_stalls():
    model = torch.nn.Linear(2, 1)
    recipe = load_recipe({"optimizer": {"lr": 1.0}, "schedule": {"name": "plateau", "patience": 1, "factor": 0.5}})
    schedule = Schedule(build_optimizer(model, recipe.optimizer), recipe.schedule, 10, 10, "max")
    assert schedule.scheduler.mode == "max"
    for accuracy, expected_lr in ((0.5, 1.0), (0.6, 1.0), (0.7, 1.0), (0.65, 1.0), (0.64, 0.5)):
        schedule.after_epoch(accuracy)
        assert schedule.lr == pytest.approx(expected_lr)


def test_class_weights_weigh_each_row_by_its_class_as_torch_cross_entropy_does():
    from honed.recipe.schema import LossSpec
    from honed.training import build_loss

    torch.manual_seed(0)
    logits, labels = torch.randn(50), (torch.rand(50) > 0.7).float()
    weights = [1.0, 3.5]
    two_logits = torch.stack([torch.zeros(50), logits], dim=1)  # sigmoid(s) = softmax([0, s])[1]
    reference = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights))(two_logits, labels.long())
    got = build_loss(LossSpec(class_weights=weights), "binary")(logits, labels)
    torch.testing.assert_close(got, reference)
    three = torch.randn(40, 3)
    targets = torch.randint(0, 3, (40,))
    torch.testing.assert_close(build_loss(LossSpec(class_weights=[1, 2, 4]), "multiclass")(three, targets),
                               torch.nn.functional.cross_entropy(three, targets, weight=torch.tensor([1.0, 2, 4])))
