"""keras.ops.image: image functions (channels_last by default)."""

from . import numpy as N


def _block_size(block_size) -> int:
    b = int(block_size)
    if b < 2:
        raise ValueError(f"block_size must be >= 2, got {block_size}")
    return b


def depth_to_space(x, block_size: int, data_format: str = "channels_last"):
    """(B, H, W, b*b*C) -> (B, H*b, W*b, C): each pixel's channels spread over a b x b
    block."""
    b = _block_size(block_size)
    x = N._v(x)
    first = data_format == "channels_first"
    if first:
        x = N.moveaxis(x, 1, -1)
    bs, h, w, c = N._shape(x)
    if c % (b * b):
        raise ValueError(f"depth_to_space: {c} channels do not divide by block_size^2 = {b * b}")
    oc = c // (b * b)
    y = N._reshape_keep(x, (bs, h, w, b, b, oc))
    y = N.transpose(y, (0, 1, 3, 2, 4, 5))
    y = N._reshape_keep(y, (bs, h * b, w * b, oc))
    return N.moveaxis(y, -1, 1) if first else y


def space_to_depth(x, block_size: int, data_format: str = "channels_last"):
    """(B, H, W, C) -> (B, H/b, W/b, b*b*C): each b x b block into the channels."""
    b = _block_size(block_size)
    x = N._v(x)
    first = data_format == "channels_first"
    if first:
        x = N.moveaxis(x, 1, -1)
    bs, h, w, c = N._shape(x)
    if h % b or w % b:
        raise ValueError(f"space_to_depth: height {h} and width {w} must divide by {b}")
    y = N._reshape_keep(x, (bs, h // b, b, w // b, b, c))
    y = N.transpose(y, (0, 1, 3, 2, 4, 5))
    y = N._reshape_keep(y, (bs, h // b, w // b, b * b * c))
    return N.moveaxis(y, -1, 1) if first else y
