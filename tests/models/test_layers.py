import pytest
import torch

from honed.models import Shape, build_model, count_params
from honed.models.layers import masked_max, masked_mean
from honed.recipe import load_recipe


def test_masked_mean_ignores_padding():
    emb = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.allclose(masked_mean(emb, mask), torch.tensor([[2.0, 3.0]]))
    assert torch.allclose(masked_max(emb, mask), torch.tensor([[3.0, 4.0]]))


def test_bag_output_does_not_depend_on_padding_length():
    torch.manual_seed(0)
    model = build_model(load_recipe({"model": {"name": "bag", "hidden": [24]}}).model, Shape("tokens", 50, 1)).eval()
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0, 0]])
    assert torch.allclose(model(short), model(padded))


def test_rnn_and_text_cnn_ignore_padding():
    torch.manual_seed(0)
    for fields in ({"name": "rnn", "cell": "gru", "bidirectional": True}, {"name": "rnn"}, {"name": "cnn"}):
        model = build_model(load_recipe({"model": fields}).model, Shape("tokens", 50, 3)).eval()
        a = model(torch.tensor([[5, 6, 7, 0, 0, 0]]))
        b = model(torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0, 0, 0]]))
        assert a.shape == (1, 3)
        assert torch.allclose(a, b, atol=1e-6), fields


def test_keras_imdb_model_has_the_classic_parameter_count():
    # Embedding 10000x16 + Dense(16->24) + Dense(24->1) = 160000 + 408 + 25
    spec = load_recipe({"model": {"name": "bag", "embedding_dim": 16, "hidden": [24]}}).model
    assert count_params(build_model(spec, Shape("tokens", 10000, 1))) == 160433


def test_init_schemes_zero_biases_and_match_their_std():
    torch.manual_seed(0)
    for name, std in (("xavier_normal", (2 / (400 + 300)) ** 0.5), ("he_normal", (2 / 400) ** 0.5)):
        spec = load_recipe({"model": {"name": "mlp", "hidden": [300], "init": name}}).model
        model = build_model(spec, Shape("features", 400, 1))
        first = model[0][0]
        assert torch.all(first.bias == 0)
        assert abs(first.weight.std().item() - std) / std < 0.05


def test_uniform_embedding_init_is_bounded_and_keeps_padding_zero():
    torch.manual_seed(0)
    spec = load_recipe({"model": {"name": "bag", "embedding_init": "uniform", "embedding_scale": 0.05}}).model
    emb = build_model(spec, Shape("tokens", 1000, 1)).embedding.weight
    assert emb.abs().max() <= 0.05 and emb[1:].abs().max() > 0.04
    assert torch.all(emb[0] == 0)
    # the table is drawn once, by the init asked for: torch's N(0, 1) by default, nothing under zeros
    for init, mean, std in (("default", 0.0, 1.0), ("zeros", 0.0, 0.0)):
        spec = load_recipe({"model": {"name": "bag", "embedding_dim": 16, "embedding_init": init}}).model
        emb = build_model(spec, Shape("tokens", 1000, 1)).embedding.weight
        assert torch.all(emb[0] == 0) and torch.isfinite(emb).all()
        assert emb[1:].mean().item() == pytest.approx(mean, abs=0.03)
        assert emb[1:].std().item() == pytest.approx(std, abs=0.03)


def test_bits_dropout_drops_at_rate_p_independently_and_keeps_the_mean():
    """The cheaper mask of the table MLP's dropout is still dropout: each element dropped with probability p,
    positions independent (the eight bytes of one random draw included), expectation kept, the gradient the
    mask's; none at evaluation."""
    from honed.models.layers import BitsDropout

    torch.manual_seed(0)
    layer = BitsDropout(0.3).train()
    x = torch.ones(400, 4, 250, requires_grad=True)  # 400,000 elements: the rate's standard error is under 0.001
    out = layer(x)
    dropped = out == 0
    assert abs(dropped.float().mean().item() - 0.3) < 0.004
    by_byte = dropped.flatten().view(-1, 8).float().mean(0)  # the 8 elements cut from one 64-bit draw
    assert torch.all((by_byte - 0.3).abs() < 0.008)  # the top byte too (a draw on [0, 2^63) drops it at 2p)
    both = (dropped.flatten()[:-1] & dropped.flatten()[1:]).float().mean().item()
    assert abs(both - 0.09) < 0.004  # neighbours dropped together at p^2: independent
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)
    out.sum().backward()
    torch.testing.assert_close(x.grad, out.detach())  # d(x * mask)/dx: the mask, 0 or 1 / (1 - p)
    assert torch.equal(layer.eval()(x), x)


def test_image_augmentation_moves_whole_pixels_and_is_the_identity_when_evaluated():
    """Augment's shifts are whole-pixel moves (a single lit pixel lands on one pixel, at most `shift` away, zeros
    coming in), flips mirror; evaluated, the images pass unchanged."""
    from honed.models.cnn import Augment

    torch.manual_seed(0)
    x = torch.zeros(200, 1, 9, 9)
    x[:, 0, 4, 2] = 1.0
    moved = Augment(shift=2, flip=False).train()(x)
    lit = moved.flatten(1).argmax(1)
    rows, cols = lit // 9, lit % 9
    assert torch.all(moved.flatten(1).sum(1) == 1.0)  # nothing interpolated, nothing lost at this distance
    assert rows.sub(4).abs().max() <= 2 and cols.sub(2).abs().max() <= 2 and len(set(zip(rows.tolist(), cols.tolist()))) == 25
    flipped = Augment(shift=0, flip=True).train()(x)
    mirrored = flipped[:, 0, 4, 6] == 1.0
    assert 60 < int(mirrored.sum()) < 140 and torch.all(flipped[~mirrored, 0, 4, 2] == 1.0)
    assert torch.equal(Augment(shift=2, flip=True).eval()(x), x)


def test_cutout_blanks_one_clipped_square_per_image_centred_anywhere():
    """Each image loses one axis-aligned block: `side` pixels a side where it lies inside, at least half a side
    where its centre sits on an edge; over many images every pixel is sometimes the centre (the corners too);
    the channels lose the same pixels; evaluated, nothing changes."""
    from honed.models.cnn import Augment

    torch.manual_seed(0)
    side, size = 4, 10
    x = torch.ones(2000, 3, size, size)
    cut = Augment(shift=0, flip=False, cutout=side).train()(x)
    assert torch.equal(cut[:, 0], cut[:, 1]) and torch.equal(cut[:, 0], cut[:, 2])
    blank = cut[:, 0] == 0
    rows, cols = blank.any(2), blank.any(1)  # (images, size): the rows and columns the block spans
    heights, widths = rows.sum(1), cols.sum(1)
    assert torch.equal(blank.sum((1, 2)), heights * widths)  # a full rectangle: every spanned row x column
    assert heights.min() == side - side // 2 and heights.max() == side and widths.min() == side - side // 2
    spans = set(zip(rows.float().argmax(1).tolist(), heights.tolist(), cols.float().argmax(1).tolist(),
                    widths.tolist()))
    assert len(spans) == size * size  # each of the 100 centres gives its own (clipped) block, and all came up
    assert torch.equal(Augment(shift=0, flip=False, cutout=side).eval()(x), x)
    from honed.errors import UserError
    from honed.recipe import load_recipe

    with pytest.raises(UserError, match="model.augment_cutout works with"):
        load_recipe({"model": {"name": "mlp", "augment_cutout": 8}})
