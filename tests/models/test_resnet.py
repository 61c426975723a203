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


def test_the_whitening_stem_decorrelates_the_training_patches_and_only_its_bias_trains():
    torch.manual_seed(0)
    images = torch.randn(200, 3, 12, 12)
    images[:, 1] = 0.9 * images[:, 0] + 0.1 * images[:, 1]  # two channels nearly equal: a correlated input
    images[:, :, :, 1::2] = 0.5 * images[:, :, :, 1::2] + 0.5 * images[:, :, :, ::2]  # and neighbouring pixels
    shape = Shape("features", 3 * 144, 4, image_shape=(3, 12, 12))
    model = build_model(spec(stem="whiten", channels=[99, 8, 16]), shape)  # the stem's width is the image's
    model.fit_to_training_rows(images.flatten(1))
    conv = model.stem.conv
    assert conv.weight.shape == (24, 3, 2, 2) and not conv.weight.requires_grad and conv.bias.requires_grad
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    projected = patches @ conv.weight[:12].reshape(12, 12).T  # the first half; the second is its negative
    covariance = projected.T @ projected / len(projected)
    eigenvalues = torch.linalg.eigvalsh(patches.T.double() @ patches.double() / len(patches)).flip(0)
    # whitened: each direction's variance is eigenvalue / (eigenvalue + eps), the directions uncorrelated
    expected = (eigenvalues / (eigenvalues + 5e-4)).float()
    torch.testing.assert_close(covariance, torch.diag(expected), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(conv.weight[12:], -conv.weight[:12])
    assert model(images.flatten(1)).shape == (200, 4)


def test_dirac_init_passes_a_convolutions_input_channels_through():
    conv = torch.nn.Conv2d(3, 5, 3, padding=1, bias=False)
    from honed.models.init import initialize

    initialize(conv, "dirac")
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(conv(x)[:, :3], x)  # the first 3 filters are the identity; the rest are drawn
    assert conv.weight[3:].abs().sum() > 0


def test_the_whitening_stem_needs_two_pixels():
    with pytest.raises(UserError, match="at least 2 pixels"):
        build_model(spec(stem="whiten"), Shape("features", 3, 2, image_shape=(3, 1, 1)))


def test_the_whitening_samples_images_across_the_training_rows():
    """Rows sorted by class: the statistics must come from all of them, not from the first class alone."""
    from honed.models.resnet import PatchWhitening

    stem = PatchWhitening(1, "relu")
    stem.MAX_PATCHES = 2 * 4  # two 3x3 images' worth of 2x2 patches
    flat, textured = torch.zeros(3, 1, 3, 3), torch.randn(3, 1, 3, 3)
    stem.fit(torch.cat([flat, textured]))  # images 0 and 3 are read: one of each class
    assert torch.isfinite(stem.conv.weight).all() and stem.conv.weight.abs().max() < 1 / (5e-4**0.5)
    sampled = PatchWhitening(1, "relu")
    sampled.MAX_PATCHES = 8
    sampled.fit(torch.cat([flat[:1], textured[:1]]))
    torch.testing.assert_close(stem.conv.weight, sampled.conv.weight)


def test_a_two_pixel_image_is_whitened_to_one_and_not_pooled():
    model = build_model(spec(stem="whiten"), Shape("features", 3 * 4, 2, image_shape=(3, 2, 2)))
    model.fit_to_training_rows(torch.randn(6, 12))
    assert model(torch.randn(4, 12)).shape == (4, 2)
