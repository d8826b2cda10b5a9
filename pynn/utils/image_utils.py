"""Images to and from NumPy arrays, as keras.utils: load_img, img_to_array, array_to_img,
save_img. Pillow decodes and encodes them; it is optional (`pip install pillow`, or
`pip install pynn[image]`)."""

import io
import pathlib
import warnings

import numpy as np


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("Reading and writing images needs Pillow: pip install pillow "
                          "(or pip install pynn[image])") from None
    return Image


def _interpolations() -> dict:
    Image = _pil()
    r = Image.Resampling
    return {"nearest": r.NEAREST, "bilinear": r.BILINEAR, "bicubic": r.BICUBIC,
            "hamming": r.HAMMING, "box": r.BOX, "lanczos": r.LANCZOS}


def _data_format(data_format) -> str:
    data_format = data_format or "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got "
                         f"{data_format!r}")
    return data_format


def array_to_img(x, data_format=None, scale: bool = True, dtype=None):
    """A 3-D array (height, width, channels) as a PIL Image: 1 channel is 'L' (or 'I' past
    255), 3 'RGB', 4 'RGBA'.

    Args:
        x: the image array.
        data_format: 'channels_last' (default) or 'channels_first'.
        scale: rescale the values to [0, 255] first (min to 0, max to 255).
        dtype: the dtype x is converted to first ('float32').

    Example:
        >>> img = pynn.utils.array_to_img(np.random.random((100, 100, 3)))
    """
    Image = _pil()
    data_format = _data_format(data_format)
    x = np.asarray(x, dtype=dtype or "float32")
    if x.ndim != 3:
        raise ValueError(f"Expected image array to have rank 3 (single image). Got array with "
                         f"shape: {x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        x_max = np.max(x)
        if x_max != 0:
            x /= x_max
        x *= 255
    if x.shape[2] == 4:
        return Image.fromarray(x.astype("uint8"), "RGBA")
    if x.shape[2] == 3:
        return Image.fromarray(x.astype("uint8"), "RGB")
    if x.shape[2] == 1:
        if np.max(x) > 255:
            return Image.fromarray(x[:, :, 0].astype("int32"), "I")
        return Image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"Unsupported channel number: {x.shape[2]}")


def img_to_array(img, data_format=None, dtype=None) -> np.ndarray:
    """A PIL Image as a 3-D array (height, width, channels), float32 unless `dtype` says.

    Example:
        >>> x = pynn.utils.img_to_array(pynn.utils.load_img("cat.png"))
    """
    data_format = _data_format(data_format)
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    elif x.ndim == 2:
        x = x.reshape((1,) + x.shape if data_format == "channels_first" else x.shape + (1,))
    else:
        raise ValueError(f"Unsupported image shape: {x.shape}")
    return x


def save_img(path, x, data_format=None, file_format=None, scale: bool = True, **kwargs) -> None:
    """Saves an image array to a path or file object (format from the extension unless
    `file_format` says; an RGBA image saved as JPEG loses its alpha, with a warning).

    Example:
        >>> pynn.utils.save_img("out.png", np.zeros((8, 8, 3)))
    """
    if file_format is None and isinstance(path, (str, pathlib.Path)):
        file_format = pathlib.Path(path).suffix[1:].lower()
    if file_format and file_format.lower() == "jpg":
        file_format = "jpeg"
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and file_format == "jpeg":
        warnings.warn("The JPEG format does not support RGBA images, converting to RGB.",
                      stacklevel=2)
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)


def load_img(path, color_mode: str = "rgb", target_size=None, interpolation: str = "nearest",
             keep_aspect_ratio: bool = False):
    """Loads an image file as a PIL Image, as keras.utils.load_img.

    Args:
        path: a path (str, bytes, Path) or an io.BytesIO.
        color_mode: 'grayscale', 'rgb' or 'rgba'.
        target_size: (height, width) to resize to, or None.
        interpolation: 'nearest', 'bilinear', 'bicubic', 'hamming', 'box' or 'lanczos'.
        keep_aspect_ratio: crop the centre to the target's aspect ratio before resizing.

    Example:
        >>> x = pynn.utils.img_to_array(pynn.utils.load_img("cat.jpg", target_size=(64, 64)))
    """
    Image = _pil()
    if isinstance(path, io.BytesIO):
        img = Image.open(path)
    elif isinstance(path, (pathlib.Path, bytes, str)):
        if isinstance(path, pathlib.Path):
            path = str(path.resolve())
        with open(path, "rb") as f:
            img = Image.open(io.BytesIO(f.read()))
    else:
        raise TypeError(f"path should be path-like or io.BytesIO, not {type(path)}")
    modes = {"grayscale": (("L", "I;16", "I"), "L"), "rgba": (("RGBA",), "RGBA"),
             "rgb": (("RGB",), "RGB")}
    if color_mode not in modes:
        raise ValueError('color_mode must be "grayscale", "rgb", or "rgba"')
    keep, convert = modes[color_mode]
    if img.mode not in keep:
        img = img.convert(convert)
    if target_size is not None:
        size = (int(target_size[1]), int(target_size[0]))
        if img.size != size:
            methods = _interpolations()
            if interpolation not in methods:
                raise ValueError(f"Invalid interpolation method {interpolation} specified. "
                                 f"Supported methods are {', '.join(methods)}")
            resample = methods[interpolation]
            if keep_aspect_ratio:
                width, height = img.size
                crop_h = min(height, (width * size[1]) // size[0])
                crop_w = min(width, (height * size[0]) // size[1])
                top, left = (height - crop_h) // 2, (width - crop_w) // 2
                img = img.resize(size, resample, box=(left, top, left + crop_w, top + crop_h))
            else:
                img = img.resize(size, resample)
    return img
