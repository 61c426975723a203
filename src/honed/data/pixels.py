"""Image file bytes -> the pixels a model reads: decoded with Pillow, brought to `size` pixels a side, 8 bits,
grey or RGB; then stacked channels-first as float32 in [0, 1]. Numpy and Pillow only: `honed export` copies this
file into ONNX bundles as bundle_pixels.py, so a bundle's predict.py decodes an image file exactly as training
did."""

from __future__ import annotations

import io

import numpy as np

MAX_FILE_BYTES = 64 * 2**20  # one image file; larger is not a photo a classifier is trained on
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


def stacked(pixels: list[np.ndarray], grey: bool) -> np.ndarray:
    """(N, C * size * size) float32 in [0, 1], channels first, from 8-bit (size, size) or (size, size, 3) arrays."""
    return stacked8(pixels, grey).astype(np.float32) / 255.0


def stacked8(pixels: list[np.ndarray], grey: bool) -> np.ndarray:
    """(N, C * size * size) uint8, channels first: `stacked` before its scaling, a quarter of its memory."""
    arrays = []
    for p in pixels:
        if grey and p.ndim == 3:  # channels = grey: ITU-R 601 luma, as Pillow's convert("L")
            p = (p @ np.array([0.299, 0.587, 0.114])).round().clip(0, 255).astype(np.uint8)
        if not grey and p.ndim == 2:
            p = np.repeat(p[:, :, None], 3, axis=2)
        arrays.append(p[None] if grey else p.transpose(2, 0, 1))
    return np.stack(arrays).reshape(len(arrays), -1)


class UnreadableImage(Exception):
    pass


def decode_file(data: bytes, size: int, resize: str, max_pixels: int) -> np.ndarray:
    """One image file's bytes -> 8-bit (size, size) grey or (size, size, 3) RGB pixels; `resize`: crop the centre
    after scaling the shorter side, pad, or stretch. More than `max_pixels` is refused from the header."""
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow's own bomb check at open (twice this) agrees with ours
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise UnreadableImage(f"{str(e).split(' exceeds')[0].replace('Image size ', '')}: more than data.max_pixels = "
                              f"{max_pixels:,} pixels") from None
    except Image.UnidentifiedImageError:  # its message names the in-memory buffer, nothing a user knows
        raise UnreadableImage("not an image Pillow can read (JPEG, PNG, WebP, BMP, GIF)") from None
    except Exception as e:  # noqa: BLE001 - format-specific errors (a damaged header)
        raise UnreadableImage(f"not an image Pillow can read: {str(e)[:80]}") from None
    width, height = image.size
    if width * height > max_pixels:  # from the header, before the pixels are decoded
        raise UnreadableImage(f"{width:,} x {height:,} pixels, more than data.max_pixels = {max_pixels:,}")
    if width < 1 or height < 1:
        raise UnreadableImage("an image without pixels")
    try:
        image.seek(0)  # an animation's first frame
        image.load()
    except Exception as e:  # noqa: BLE001 - a truncated or damaged file: Pillow raises OSError and others
        raise UnreadableImage(f"damaged or truncated: {str(e)[:80]}") from None
    image = eight_bit(image)
    box = (size, size)
    if resize == "crop":
        image = ImageOps.fit(image, box, Image.Resampling.BICUBIC)
    elif resize == "pad":
        image = ImageOps.pad(image, box, Image.Resampling.BICUBIC, color=0)
    else:
        image = image.resize(box, Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def eight_bit(image):
    """Grey ("L") or RGB at 8 bits: palettes and alpha resolved (transparent as black), 16-bit and float grey
    scaled to 0..255 rather than clipped."""
    from PIL import Image

    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode in ("1", "LA"):
        return image.convert("L")
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(values.max()), 1.0)
        return Image.fromarray((values.clip(0, top) / top * 255).round().astype(np.uint8), "L")
    if mode in ("RGBA", "PA", "P") and ("A" in mode or "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # P, CMYK, YCbCr, HSV, LAB


def read_file(path, size: int, resize: str, max_pixels: int) -> np.ndarray:
    """An image file on disk -> 8-bit pixels (decode_file), its size bounded before it is read."""
    from pathlib import Path

    path = Path(path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UnreadableImage(f"{path.stat().st_size:,} bytes; an image file is at most {MAX_FILE_BYTES:,}")
    return decode_file(path.read_bytes(), size, resize, max_pixels)
