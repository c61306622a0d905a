"""Finer kinds of :class:`pyvirt.errors.ImageError` raised by :mod:`pyvirt.image`."""

from __future__ import annotations

from pyvirt.errors import ImageError

__all__ = ["CorruptImage", "ImageError", "UnsupportedImage"]


class CorruptImage(ImageError):
    """The image's metadata is inconsistent, out of range or points past the end of the file."""


class UnsupportedImage(ImageError):
    """The image uses a feature or format this library does not implement (named in the message)."""
