"""model.name = resnet: ResNet-9's shape (stages, pools, residual stages), test-time flips, and one training run
through the recipe on generated images."""

import pytest
import torch

from honed.errors import UserError
from honed.models import Shape, build_model, count_params
from honed.recipe import load_recipe


def spec(**model):
    return load_recipe({"model": {"name": "resnet", "channels": [4, 8, 16]} | model}).model


def test_resnet9_layout_counts_the_weights_a_hand_count_gives():
    model = build_model(spec(), Shape("features", 3 * 16 * 16, 5, image_shape=(3, 16, 16)))
    conv = lambda i, o: 9 * i * o + 2 * o  # noqa: E731  (3x3 kernel without bias, BatchNorm's scale and shift)
    # stem 3->4; stage 4->8 with a residual pair 8->8 (first stage); stage 8->16 with a pair (last stage); head
    expected = conv(3, 4) + conv(4, 8) + 2 * conv(8, 8) + conv(8, 16) + 2 * conv(16, 16) + 16 * 5 + 5
    assert count_params(model) == expected
    out = model.eval()(torch.randn(2, 3 * 16 * 16))
    assert out.shape == (2, 5)


def test_a_mirrored_image_gets_the_same_logits_with_test_time_flip():
    x = torch.randn(3, 3, 8, 8)
    shape = Shape("features", 3 * 64, 4, image_shape=(3, 8, 8))
    flipped = build_model(spec(test_time_flip=True), shape).eval()
    torch.testing.assert_close(flipped(x.flatten(1)), flipped(x.flip(-1).flatten(1)))
    plain = build_model(spec(), shape).eval()
    plain.load_state_dict(flipped.state_dict())
    torch.testing.assert_close(flipped(x.flatten(1)), (plain(x.flatten(1)) + plain(x.flip(-1).flatten(1))) / 2)
    assert not torch.allclose(plain(x.flatten(1)), plain(x.flip(-1).flatten(1)))  # the flip does something


def test_resnet_needs_images_and_a_stage():
    with pytest.raises(UserError, match="needs images"):
        build_model(spec(), Shape("features", 10, 2))
    with pytest.raises(UserError, match="at least one stage"):
        build_model(spec(channels=[8]), Shape("features", 3 * 64, 2, image_shape=(3, 8, 8)))
