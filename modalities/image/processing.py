"""Image loading and Qwen-VL's pixel budget.

Qwen2-VL / Qwen2.5-VL see an image at a size whose sides are multiples of 28 (patch 14 x spatial merge 2)
and whose area lies within [min_pixels, max_pixels] (`smart_resize`, Qwen2-VL report, "Naive Dynamic
Resolution"). Grounding answers of Qwen2.5-VL are absolute pixel coordinates *in that resized image*,
so rewards and evaluation need `resized_size` to map them back to the original image.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
from pathlib import Path
from typing import Any, Union

from PIL import Image, UnidentifiedImageError
from qwen_vl_utils.vision_process import smart_resize, to_rgb

from mmpost.types import MediaError
from mmpost.modalities.common import resolve_media_path

ImageSource = Union[str, os.PathLike, bytes, bytearray, Image.Image]

# Patch size 14 times spatial merge 2: one merged visual token covers 28 x 28 pixels.
QWEN_VL_FACTOR = 28
# transformers' Qwen2VLImageProcessor defaults (4 to 1280 merged tokens per image).
QWEN_VL_MIN_PIXELS = 56 * 56
QWEN_VL_MAX_PIXELS = 28 * 28 * 1280


def describe_source(source: Any) -> str:
    """A short name for an image source, for error messages (a path, or the kind of in-memory object)."""
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        return text[:60] + "..." if text.startswith("data:") and len(text) > 60 else text
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.width}x{source.height}>"
    return f"<{type(source).__name__}>"


def _decode_data_uri(uri: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:image/") or not header.endswith(";base64"):
        raise MediaError(f"image {describe_source(uri)}: expected a 'data:image/<type>;base64,<data>' URI")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise MediaError(f"image {describe_source(uri)}: invalid base64 data ({error})") from error


def _resolve_path(source: str | os.PathLike, root: str | os.PathLike | None) -> Path:
    return resolve_media_path(source, root, "image")


def _open_fully(opener: Any, name: str) -> Image.Image:
    """Open and force a full decode, so corrupt and truncated files fail here and not inside a worker."""
    try:
        with opener() as handle:
            with Image.open(handle) as image:
                image.load()
                # `to_rgb` flattens transparency onto white as Qwen's own `fetch_image` does.
                rgb = to_rgb(image)
    except FileNotFoundError as error:
        raise MediaError(f"image {name}: file not found") from error
    except IsADirectoryError as error:
        raise MediaError(f"image {name}: is a directory, not an image file") from error
    except PermissionError as error:
        raise MediaError(f"image {name}: permission denied") from error
    except UnidentifiedImageError as error:
        raise MediaError(f"image {name}: not a readable image (unknown format or corrupt header)") from error
    except Image.DecompressionBombError as error:
        raise MediaError(f"image {name}: too large to decode safely ({error})") from error
    except (OSError, SyntaxError, ValueError) as error:
        # PIL reports truncated and corrupt pixel data as OSError (and a few decoders as SyntaxError).
        raise MediaError(f"image {name}: corrupt or truncated image data ({error})") from error
    return rgb


def load_image(source: ImageSource, *, root: str | os.PathLike | None = None) -> Image.Image:
    """Load an image as RGB from a path, raw bytes, a `data:image/...;base64,` URI or a PIL image.

    A relative path is read from `root` (the dataset file's folder). The file is fully decoded, so a
    missing, corrupt, truncated or zero-size image raises `MediaError` naming the file and the problem.
    """
    if isinstance(source, Image.Image):
        name = describe_source(source)
        try:
            source.load()
            image = to_rgb(source)
        except (OSError, ValueError) as error:
            raise MediaError(f"image {name}: cannot decode ({error})") from error
    elif isinstance(source, (bytes, bytearray)):
        name = describe_source(source)
        data = bytes(source)
        image = _open_fully(lambda: io.BytesIO(data), name)
    elif isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text.startswith("data:"):
            name = describe_source(text)
            data = _decode_data_uri(text)
            image = _open_fully(lambda: io.BytesIO(data), name)
        else:
            path = _resolve_path(text, root)
            name = str(path)
            image = _open_fully(lambda: open(path, "rb"), name)
    else:
        raise MediaError(
            f"image {describe_source(source)}: unsupported source type {type(source).__name__}; "
            "give a path, bytes, a data URI or a PIL image"
        )
    if image.width == 0 or image.height == 0:
        raise MediaError(f"image {name}: zero-size image ({image.width}x{image.height})")
    return image


def resized_size(
    width: int,
    height: int,
    *,
    min_pixels: int = QWEN_VL_MIN_PIXELS,
    max_pixels: int = QWEN_VL_MAX_PIXELS,
    factor: int = QWEN_VL_FACTOR,
) -> tuple[int, int]:
    """(width, height) the model sees for an image of this size under the pixel budget.

    Both sides become multiples of `factor` and the area falls within [min_pixels, max_pixels], keeping
    the aspect ratio as closely as possible (`qwen_vl_utils.smart_resize`). Note the (width, height)
    order here, PIL's, while `smart_resize` takes and returns (height, width).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
    new_height, new_width = smart_resize(height, width, factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return new_width, new_height


def fit_pixels(
    image: Image.Image,
    *,
    min_pixels: int = QWEN_VL_MIN_PIXELS,
    max_pixels: int = QWEN_VL_MAX_PIXELS,
    factor: int = QWEN_VL_FACTOR,
) -> Image.Image:
    """Resize `image` to `resized_size` (bicubic, as Qwen's `fetch_image` does); unchanged if it already fits.

    After this, the Qwen-VL image processor (with the same budget) leaves the size as it is.
    """
    target = resized_size(image.width, image.height, min_pixels=min_pixels, max_pixels=max_pixels, factor=factor)
    if target == image.size:
        return image
    return image.resize(target, resample=Image.Resampling.BICUBIC)
