"""Convolutional networks: 2-D over images, 1-D over token embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.layers import ACTIVATIONS, Head, masked_max

if TYPE_CHECKING:
    from honed.recipe.schema import ModelSpec


class Augment(nn.Module):
    """While training, a random shift of each image by up to `shift` pixels (zeros come in at the border), with
    `flip` a left-right mirror of half of them, and with `cutout` a square of that many pixels a side blanked at a
    random centre of each image (DeVries and Taylor 2017; the images are standardized, so zero is the mean
    pixel); one vectorized op each per batch, so it costs little beside the convolutions. Evaluated (and
    exported), the identity."""

    def __init__(self, shift: int, flip: bool, cutout: int = 0) -> None:
        super().__init__()
        self.shift, self.flip, self.cutout = shift, flip, cutout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n, _, height, width = x.shape
        if self.flip:
            mirrored = torch.rand(n, 1, 1, 1, device=x.device) < 0.5
            x = torch.where(mirrored, x.flip(-1), x)
        if self.shift:
            moves = torch.randint(-self.shift, self.shift + 1, (n, 2), device=x.device).to(x.dtype)
            theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
            theta[:, 0, 0] = theta[:, 1, 1] = 1.0
            theta[:, 0, 2] = moves[:, 0] * 2 / width  # grid units: the image spans [-1, 1]
            theta[:, 1, 2] = moves[:, 1] * 2 / height
            grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
            x = nn.functional.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        if self.cutout:
            x = x * ~cutout_mask(n, height, width, self.cutout, x.device).unsqueeze(1)
        return x


def cutout_mask(n: int, height: int, width: int, side: int, device: torch.device) -> torch.Tensor:
    """(n, height, width) True inside each image's square: `side` pixels from half a side above and left of a
    centre drawn uniformly over the image, clipped at its border (so a centre near an edge blanks less)."""
    top = torch.randint(0, height, (n, 1, 1), device=device) - side // 2
    left = torch.randint(0, width, (n, 1, 1), device=device) - side // 2
    rows = torch.arange(height, device=device).view(1, -1, 1)
    cols = torch.arange(width, device=device).view(1, 1, -1)
    return (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)


def augment_of(spec: "ModelSpec") -> Augment | None:
    """The recipe's training-time augmentation of images (model.augment, model.augment_cutout), or None."""
    if spec.augment == "none" and not spec.augment_cutout:
        return None
    shift = spec.augment_shift if spec.augment != "none" else 0
    return Augment(shift, spec.augment == "shift_flip", spec.augment_cutout)


def flip_voted(logits, x: torch.Tensor, vote: bool) -> torch.Tensor:
    """logits(x), or with `vote` the mean of an image's and its mirror's logits (evaluated: test-time flip)."""
    return (logits(x) + logits(x.flip(-1))) / 2 if vote else logits(x)


class ImageCNN(nn.Module):
    """[Conv2d -> (BatchNorm) -> activation -> MaxPool2d(2)] per channel count -> global average pool -> dropout ->
    head; optionally augmented while training (Augment)."""

    def __init__(self, image_shape: tuple[int, ...], channels: list[int], kernel: int, activation: str,
                 dropout: float, n_out: int, batch_norm: bool = False, augment: nn.Module | None = None) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.augment = augment or nn.Identity()
        blocks: list[nn.Module] = []
        n_in, size = image_shape[0], min(image_shape[1:])
        for n_ch in channels:
            blocks.append(nn.Conv2d(n_in, n_ch, kernel, padding=kernel // 2, bias=not batch_norm))
            if batch_norm:
                blocks.append(nn.BatchNorm2d(n_ch))
            blocks.append(ACTIVATIONS[activation]())
            if size >= 4:  # pool while the map is big enough to halve
                blocks.append(nn.MaxPool2d(2))
                size //= 2
            n_in = n_ch
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.head = Head(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.augment(x.view(x.shape[0], *self.image_shape))
        return self.head(self.dropout(self.features(x)))


class TextCNN(nn.Module):
    """Embedding -> [Conv1d -> activation] per channel count -> max over real tokens -> head."""

    def __init__(self, vocab_size: int, dim: int, channels: list[int], kernel: int, activation: str,
                 dropout: float, n_out: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        convs: list[nn.Module] = []
        n_in = dim
        for n_ch in channels:
            convs += [nn.Conv1d(n_in, n_ch, kernel, padding=kernel // 2), ACTIVATIONS[activation]()]
            n_in = n_ch
        self.convs = nn.ModuleList(convs)
        self.dropout = nn.Dropout(dropout)
        self.head = Head(n_in, n_out)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        real = tokens != 0
        keep = real.unsqueeze(1).to(self.head.linear.weight.dtype)  # (N, 1, L)
        x = self.embedding(tokens).transpose(1, 2)  # (N, D, L) for Conv1d
        for layer in self.convs:
            x = layer(x)
            if isinstance(layer, nn.Conv1d):
                x = x[..., : tokens.shape[1]]  # even kernels add one position
            else:
                # Zero the padded positions after every activation, so a text's output never depends on
                # how much padding its batch carries (batches are trimmed to their longest text).
                x = x * keep
        return self.head(self.dropout(masked_max(x.transpose(1, 2), real)))


@MODELS.register("cnn")
def build(spec: ModelSpec, shape: Shape) -> nn.Module:
    if shape.input_kind == "tokens":
        return TextCNN(shape.input_dim, spec.embedding_dim, spec.channels, spec.kernel_size, spec.activation,
                       spec.dropout, shape.output_dim)
    if shape.image_shape is None:
        raise UserError("model.name = 'cnn' needs images (e.g. data.name=digits) or text")
    augment = augment_of(spec)
    return ImageCNN(shape.image_shape, spec.channels, spec.kernel_size, spec.activation, spec.dropout, shape.output_dim,
                    spec.batch_norm, augment)
