"""The one pixel transform: stored uint8 images to model inputs, `pixels * scale - mean`.

Every image experiment preprocesses this way, fitted on its training images, and `predict`
applies the very same transform (saved in a run folder as `preprocess.npz`). The same formula
also runs on the device inside a gradient (`PixelTransform.decoder`), so training data can stay
uint8 there: 4x less memory and memory traffic than float32.

Styles (the documents' preprocessing):
- "scaled" (001/003 digits MLP): pixels / 255, flattened to (N, H*W);
- "mean_subtracted" (002 TwoLayerNet): the mean training image subtracted in float (not
  uint8, 002's erratum) from raw 0..255 pixels, flattened;
- "conv" (the ConvNet): pixels / 255 minus the mean training pixel, NCHW (N, 1, H, W).
"""
from __future__ import annotations

import dataclasses

from typing import NamedTuple

import numpy as np

from .errors import DataError
from .preprocess import add_channel, flatten, mean_image, scale_pixels

STYLES = {
    "scaled": "pixels / 255, flattened to 784 (001/003)",
    "mean_subtracted": "mean training image subtracted in float32 from 0..255 pixels, flattened (002; not uint8)",
    "conv": "pixels / 255 minus the mean training pixel, NCHW (N, 1, 28, 28)",
}


class PixelTransform(NamedTuple):
    """`layout(pixels * scale - mean)`: scale a float32 scalar, mean a float32 scalar or an
    (H, W) image, layout flatten (N, H*W) or NCHW (N, 1, H, W) by `style`."""

    style: str
    scale: np.float32
    mean: np.ndarray
    image_shape: tuple

    @property
    def nchw(self):
        return self.style == "conv"

    def layout(self, images):
        """(N, H, W) images (any dtype) to the model's layout, values unchanged."""
        images = np.asarray(images)
        if images.ndim != 3 or images.shape[1:] != self.image_shape:
            raise DataError(f"images must have shape (N, {self.image_shape[0]}, {self.image_shape[1]}), "
                            f"got {images.shape}")
        return add_channel(images) if self.nchw else flatten(images)

    def laid_out_mean(self):
        """The mean in the layout of `layout`'s output (one example), for broadcasting."""
        mean = np.asarray(self.mean, np.float32)
        if mean.ndim == 0 or self.nchw:
            return mean
        return mean.reshape(-1)

    def __call__(self, images):
        """uint8 images (N, H, W) -> float32 model inputs (on the host, NumPy)."""
        return self.layout(images).astype(np.float32) * self.scale - self.laid_out_mean()

    @property
    def exact_on_device(self):
        """Whether `decoder` inside a jitted computation gives exactly `__call__`'s floats. With
        both a scale and a mean, XLA:CPU fuses `x * scale - mean` into one fused multiply-add
        (one rounding where NumPy rounds twice), so values can differ in the last bit."""
        return self.scale == 1 or not np.any(self.mean)

    def decoder(self, dtype=np.float32):
        """The same transform as a function of already laid-out stored pixels (`layout`'s
        output), for use inside jitted code: `x.astype(dtype) * scale - mean` (a
        `PixelDecoder`: equal transforms give equal decoders, so programs compiled for one
        serve the other)."""
        mean = np.ascontiguousarray(self.laid_out_mean(), np.float32)
        return PixelDecoder(np.dtype(dtype).name, float(np.float32(self.scale)), mean.tobytes(), mean.shape)

    def to_arrays(self):
        """The dict of arrays saved as a run's `preprocess.npz`."""
        return {"style": np.array(self.style), "scale": np.float32(self.scale),
                "mean": np.asarray(self.mean, np.float32), "image_shape": np.array(self.image_shape)}

    @classmethod
    def from_arrays(cls, arrays):
        """Inverse of `to_arrays` (e.g. `dict(np.load("preprocess.npz"))`)."""
        try:
            style = str(arrays["style"])
            shape = tuple(int(d) for d in arrays["image_shape"])
            return cls(style, np.float32(arrays["scale"]), np.asarray(arrays["mean"], np.float32), shape)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"not a pixel transform ({e}); expected style, scale, mean, image_shape") from None


@dataclasses.dataclass(frozen=True)
class PixelDecoder:
    """`x.astype(dtype) * scale - mean` inside jitted code (`PixelTransform.decoder`): a
    hashable value (the float32 mean held as bytes), so a decoder can key compiled programs."""

    dtype: str
    scale: float
    mean: bytes
    mean_shape: tuple

    def __call__(self, x):
        import jax.numpy as jnp

        mean = np.frombuffer(self.mean, np.float32).reshape(self.mean_shape)
        return x.astype(self.dtype) * jnp.asarray(self.scale, self.dtype) - jnp.asarray(mean, self.dtype)


def fit_pixel_transform(style, train_images) -> PixelTransform:
    """The transform of `style` (see the module docstring), fitted on uint8 training images
    (N, H, W)."""
    if style not in STYLES:
        raise DataError(f"unknown preprocessing style {style!r}; known: {', '.join(STYLES)}")
    train_images = np.asarray(train_images)
    if train_images.ndim != 3:
        raise DataError(f"fit_pixel_transform: expected images (N, H, W), got shape {train_images.shape}")
    if style == "scaled":
        scale, mean = 1 / 255, np.zeros((), np.float32)
    elif style == "mean_subtracted":
        scale, mean = 1.0, mean_image(train_images, np.float32)
    else:
        scale = 1 / 255
        mean = np.float32(scale_pixels(train_images).mean(dtype=np.float64))
    return PixelTransform(style, np.float32(scale), np.asarray(mean, np.float32), tuple(train_images.shape[1:]))
