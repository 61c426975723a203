"""A small residual network for images, in the form of the fast CIFAR-10 training literature (Page's ResNet-9,
DAWNBench 2018; Jordan's airbench, 2024): a stem convolution, then per width a convolution, a 2x max pool and
(in the residual stages) two more convolutions added back onto their input; every convolution followed by
BatchNorm and the activation; a global max pool and a linear head whose output is scaled down (Page's 0.125:
logits start small, so a high learning rate does not saturate the softmax in the first steps).

Weights and images are kept channels-last (NHWC): the layout tensor cores read on a GPU, and on this CPU's
oneDNN 1.1-1.2x the training speed of NCHW (this ResNet-9 in honed's loop, 256 images a step on 2 cores:
MNIST 535 -> 633 images/s, CIFAR-10 398 -> 434). Evaluated with
`model.test_time_flip`, an image's logits are the mean over it and its mirror (a free +0.3-0.5 point on
photos, where left and right mean the same; not for digits or text in images)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.cnn import augment_of, flip_voted
from honed.models.layers import ACTIVATIONS, Head

if TYPE_CHECKING:
    from honed.recipe.schema import ModelSpec

HEAD_SCALE = 0.125


def conv_bn(n_in: int, n_out: int, activation: str) -> nn.Sequential:
    """3x3 convolution (no bias: BatchNorm's shift is the bias) -> BatchNorm -> activation."""
    return nn.Sequential(nn.Conv2d(n_in, n_out, 3, padding=1, bias=False), nn.BatchNorm2d(n_out),
                         ACTIVATIONS[activation]())


class PatchWhitening(nn.Module):
    """A frozen 2x2 convolution (no padding) whose filters whiten the training images' pixel patches, then the
    activation: Page's and airbench's first layer. Each patch of 2x2 pixels (12 numbers in RGB) is projected on the
    eigenvectors of the patches' covariance, each scaled by 1/sqrt(eigenvalue), and on their negatives (so a ReLU
    or GELU after it keeps both signs): the next layers start from decorrelated, equally scaled inputs, which
    airbench measured as the largest single saving in epochs (94% in 21 epochs instead of 35). Only the bias trains.
    Fitted once from training images (`fit`), before the first step; saved and loaded with the other weights."""

    SIZE = 2
    EPS = 5e-4  # added to each eigenvalue: the smallest directions are noise, not worth a 1/sqrt(0) gain
    MAX_PATCHES = 2**21  # patches the covariance is estimated from (32-pixel images: ~2,200 of them)

    def __init__(self, channels: int, activation: str) -> None:
        super().__init__()
        self.width = 2 * channels * self.SIZE**2
        self.conv = nn.Conv2d(channels, self.width, self.SIZE, bias=True)
        self.conv.weight.requires_grad_(False)
        self.activation = ACTIVATIONS[activation]()

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """Set the filters from `images` (n, channels, h, w), standardized as training reads them."""
        c, k = images.shape[1], self.SIZE
        per_image = max(1, (images.shape[2] - k + 1) * (images.shape[3] - k + 1))
        # every step-th image: training rows may come sorted by class, and the first ones would all be airplanes
        step = -(-len(images) // max(1, self.MAX_PATCHES // per_image))
        images = images[::step].float()
        patches = images.unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)
        covariance = patches.T @ patches / len(patches)
        values, vectors = torch.linalg.eigh(covariance.double())  # ascending; float64: small eigenvalues stay exact
        filters = (vectors.T / (values.clamp(min=0) + self.EPS).sqrt().unsqueeze(1)).flip(0)  # largest first
        filters = filters.reshape(c * k * k, c, k, k).to(self.conv.weight.dtype)
        self.conv.weight.copy_(torch.cat([filters, -filters]))
        self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(x))


class Residual(nn.Module):
    """x + f(x): the block learns a correction to its input, so a deeper stage starts as the shallower one."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.inner(x)


def stage(n_in: int, n_out: int, activation: str, pool: bool, residual: bool) -> nn.Sequential:
    layers: list[nn.Module] = [conv_bn(n_in, n_out, activation)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    if residual:
        layers.append(Residual(nn.Sequential(conv_bn(n_out, n_out, activation), conv_bn(n_out, n_out, activation))))
    return nn.Sequential(*layers)


class ImageResNet(nn.Module):
    """stem(widths[0], or the whitening's own width) -> stage(w) for w in widths[1:] (residual on the first and last
    stage, as ResNet-9) -> global max pool -> dropout -> linear head x 0.125."""

    # Evaluated 64 images at a time on a CPU: a batch's activations then stay in the CPU's caches (32-pixel images, 2
    # cores, test-time flips: 1,024 a batch 590 images/s, 128 930, 64 1,200)
    eval_batch_size = 64

    def __init__(self, image_shape: tuple[int, ...], widths: list[int], activation: str, dropout: float,
                 n_out: int, augment: nn.Module | None = None, test_time_flip: bool = False,
                 stem: str = "conv") -> None:
        super().__init__()
        if len(widths) < 2:
            raise UserError(f"model.name = resnet needs model.channels with a stem and at least one stage, e.g. "
                            f"[64, 128, 256, 512]; got {widths}")
        self.image_shape = tuple(image_shape)
        self.augment = augment or nn.Identity()
        self.test_time_flip = test_time_flip
        if stem == "whiten" and min(image_shape[1:]) < PatchWhitening.SIZE:
            raise UserError(f"model.stem = whiten needs images of at least 2 pixels a side; these are "
                            f"{image_shape[1]}x{image_shape[2]} (use model.stem = conv)")
        if stem == "whiten":
            self.stem = PatchWhitening(image_shape[0], activation)  # its width is the image's: 24 in RGB, 8 in grey
            widths = [self.stem.width, *widths[1:]]
        else:
            self.stem = conv_bn(image_shape[0], widths[0], activation)
        size = min(image_shape[1:]) - (PatchWhitening.SIZE - 1 if stem == "whiten" else 0)  # unpadded 2x2: 32 -> 31
        stages, last = [], len(widths) - 2
        for i, (before, after) in enumerate(zip(widths[:-1], widths[1:])):
            stages.append(stage(before, after, activation, pool=size >= 2, residual=i in (0, last)))
            size //= 2 if size >= 2 else 1
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.head = Head(widths[-1], n_out)
        self.to(memory_format=torch.channels_last)

    def fit_to_training_rows(self, x: torch.Tensor) -> None:
        """The whitening stem's filters from the training images (api.prepare_model calls it once, before training)."""
        if isinstance(self.stem, PatchWhitening):
            self.stem.fit(x.view(x.shape[0], *self.image_shape))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.pool(self.stages(self.stem(x))))) * HEAD_SCALE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.augment(x.view(x.shape[0], *self.image_shape))
        x = x.contiguous(memory_format=torch.channels_last)  # as the weights (see above)
        return flip_voted(self.logits, x, self.test_time_flip and not self.training)


@MODELS.register("resnet")
def build(spec: ModelSpec, shape: Shape) -> nn.Module:
    if shape.image_shape is None:
        raise UserError("model.name = resnet needs images (data.source = images, or data.name = digits)")
    return ImageResNet(shape.image_shape, spec.channels, spec.activation, spec.dropout, shape.output_dim,
                       augment_of(spec), spec.test_time_flip, spec.stem)
