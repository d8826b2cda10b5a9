"""Keras 3's random image augmentation layers where their result is deterministic, the same code
for pynn and Keras: `run()` returns each layer's output on shared images for ranges of one value
(RandomRotation by fixed angles, RandomZoom and RandomTranslation by fixed amounts, for every
fill_mode and interpolation, channels_last and channels_first; RandomContrast and
RandomBrightness with one factor; RandomCrop where Keras takes the centre), the outputs in
inference, the layers' configs (JSON) and the exceptions bad arguments raise.

`tests/test_augmentation.py` compares pynn's with what Keras 3 (JAX backend) gave, kept in
augmentation.npz beside this file; to make it again, in an environment with keras and jax:
    KERAS_BACKEND=jax python ../shared/tools/keras_ref.py tests/keras_reference/augmentation.py \
        tests/keras_reference/augmentation.npz
(keras_ref.py runs this file with `pynn` standing for `keras`).
"""

import json
import sys

import numpy as np

import pynn as keras

L = keras.layers
FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


def images() -> dict:
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 255, (2, 7, 6, 3)).astype(np.float32)
    return {"channels_last": x, "channels_first": np.ascontiguousarray(x.transpose(0, 3, 1, 2))}


def geometric_cases() -> dict:
    """name -> a function of (fill_mode, interpolation, data_format) making the layer"""
    cases = {}
    for turns in (0.25, -0.25, 0.5, 0.125, 0.1):
        cases[f"rotation{turns}"] = lambda fm, ip, df, t=turns: L.RandomRotation(
            (t, t), fill_mode=fm, interpolation=ip, fill_value=7.0, data_format=df)
    for h, w in ((-0.3, 0.2), (0.5, None), (-0.5, None), (0.25, -0.4)):
        cases[f"zoom{h},{w}"] = lambda fm, ip, df, h=h, w=w: L.RandomZoom(
            (h, h), None if w is None else (w, w), fill_mode=fm, interpolation=ip,
            fill_value=7.0, data_format=df)
    for h, w in ((0.2, -0.3), (-0.15, 0.45), (0.5, 0.5)):
        cases[f"translation{h},{w}"] = lambda fm, ip, df, h=h, w=w: L.RandomTranslation(
            (h, h), (w, w), fill_mode=fm, interpolation=ip, fill_value=7.0, data_format=df)
    return cases


def bad_arguments() -> dict:
    return {
        "rotation_factor_big": lambda: L.RandomRotation(1.5),
        "rotation_factor_short": lambda: L.RandomRotation((0.1,)),
        "rotation_factor_str": lambda: L.RandomRotation("a"),
        "rotation_fill_mode": lambda: L.RandomRotation(0.1, fill_mode="mirror"),
        "rotation_interpolation": lambda: L.RandomRotation(0.1, interpolation="bicubic"),
        "zoom_minus_one": lambda: L.RandomZoom(-1.0),
        "zoom_big": lambda: L.RandomZoom(1.5),
        "zoom_width_big": lambda: L.RandomZoom(0.1, width_factor=(0.1, 2.0)),
        "zoom_fill_mode": lambda: L.RandomZoom(0.1, fill_mode="edge"),
        "translation_big": lambda: L.RandomTranslation(1.5, 0.1),
        "translation_triple": lambda: L.RandomTranslation(0.1, (0.1, 0.2, 0.3)),
        "translation_interpolation": lambda: L.RandomTranslation(0.1, 0.1,
                                                                 interpolation="area"),
        "contrast_big": lambda: L.RandomContrast(1.5),
        "contrast_negative": lambda: L.RandomContrast(-0.1),
        "brightness_big": lambda: L.RandomBrightness(1.5),
        "brightness_value_range": lambda: L.RandomBrightness(0.1, value_range=5),
        "brightness_value_range_3": lambda: L.RandomBrightness(0.1, value_range=(1, 2, 3)),
        "data_format": lambda: L.RandomFlip(data_format="channels_middle"),
        "rotation_ok": lambda: L.RandomRotation((-0.2, 0.3)),
        "zoom_ok": lambda: L.RandomZoom(1.0),
        "contrast_ok": lambda: L.RandomContrast((0.2, 0.9)),
    }


def configs() -> dict:
    layers = {
        "flip": L.RandomFlip("vertical", seed=3),
        "rotation": L.RandomRotation(0.2, fill_mode="constant", interpolation="nearest",
                                     seed=1, fill_value=2.0),
        "rotation_pair": L.RandomRotation((0.3, -0.1)),
        "zoom": L.RandomZoom(0.2, seed=4),
        "zoom_pair": L.RandomZoom((-0.3, 0.1), (0.2, 0.1), fill_mode="wrap",
                                  data_format="channels_first"),
        "translation": L.RandomTranslation(0.1, (-0.2, 0.3), fill_mode="nearest"),
        "contrast": L.RandomContrast(0.2, seed=3),
        "contrast_pair": L.RandomContrast((0.1, 0.4), value_range=(0, 1)),
        "brightness": L.RandomBrightness(0.3, value_range=(1, 0)),
        "brightness_pair": L.RandomBrightness((-0.1, 0.2), seed=2),
        "crop": L.RandomCrop(4, 5, seed=9),
        "crop_cf": L.RandomCrop(3, 2, seed=1, data_format="channels_first"),
    }
    out = {}
    for name, layer in layers.items():
        config = layer.get_config()
        for key in ("name", "trainable", "dtype"):
            config.pop(key, None)
        out[name] = json.loads(json.dumps(config))
    return out


def run() -> dict:
    imgs = images()
    results = {}
    for name, make in geometric_cases().items():
        for fm in FILL_MODES:
            for ip in INTERPOLATIONS:
                for df, x in imgs.items():
                    layer = make(fm, ip, df)
                    y = layer(x, training=True)
                    results[f"{name}/{fm}/{ip}/{df}"] = np.asarray(y, np.float32)
    for df, x in imgs.items():
        for f, vr in (((-0.3, 0.3), (0, 255)), ((-0.6, 0.6), (40, 200)), (0.0, (0, 255))):
            layer = L.RandomContrast(f, value_range=vr, data_format=df)
            results[f"contrast{f}/{vr}/{df}"] = np.asarray(layer(x, training=True), np.float32)
        for f, vr in (((0.1, 0.1), (0, 255)), ((-0.2, -0.2), (-50, 300)), ((0.3, 0.3), (0, 255))):
            layer = L.RandomBrightness(f, value_range=vr, data_format=df)
            results[f"brightness{f}/{vr}/{df}"] = np.asarray(layer(x, training=True),
                                                             np.float32)
        # RandomCrop where Keras takes the centre in training: an image not larger than the
        # window on some axis (the centre at the window's aspect ratio, resized)
        for h, w in ((7, 4), (5, 6), (8, 8), (7, 3), (9, 4)):
            layer = L.RandomCrop(h, w, seed=1, data_format=df)
            results[f"crop{h},{w}/{df}"] = np.asarray(layer(x, training=True), np.float32)
        # inference: the images themselves
        for name, layer in (("rotation", L.RandomRotation(0.3, data_format=df)),
                            ("zoom", L.RandomZoom(0.3, data_format=df)),
                            ("translation", L.RandomTranslation(0.3, 0.2, data_format=df)),
                            ("flip", L.RandomFlip(data_format=df)),
                            ("contrast", L.RandomContrast(0.5, data_format=df)),
                            ("brightness", L.RandomBrightness(0.5, data_format=df)),
                            ("crop", L.RandomCrop(3, 3, data_format=df))):
            results[f"inference/{name}/{df}"] = np.asarray(layer(x, training=False), np.float32)
    for name, make in bad_arguments().items():
        try:
            make()
            results[f"error/{name}"] = np.array("ok")
        except Exception as e:  # the exception's type is what is compared
            results[f"error/{name}"] = np.array(type(e).__name__)
    results["configs"] = np.array(json.dumps(configs(), sort_keys=True))
    return results


if __name__ == "__main__":
    np.savez(sys.argv[1], **run())
