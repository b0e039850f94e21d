"""Manipulators: the small networks SDD trains, one per attribute prompt.

``build(architecture, **hparams)`` recreates one from an artifact manifest; adding an
architecture means adding a file and one line in ``ARCHITECTURES``.
"""

from __future__ import annotations

from torch import nn

from .affine import AffineColorManipulator
from .blend import BlendManipulator
from .color_grid import ColorGridManipulator
from .image import ImageManipulator
from .latent import Generator, LatentEditor, LatentMapper
from .salient import SalientRecolourManipulator

ARCHITECTURES: dict[str, type[nn.Module]] = {
    BlendManipulator.architecture: BlendManipulator,
    ImageManipulator.architecture: ImageManipulator,
    AffineColorManipulator.architecture: AffineColorManipulator,
    ColorGridManipulator.architecture: ColorGridManipulator,
    SalientRecolourManipulator.architecture: SalientRecolourManipulator,
    LatentMapper.architecture: LatentMapper,
}


def build(architecture: str, **hparams) -> nn.Module:
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown manipulator architecture {architecture!r}; have {sorted(ARCHITECTURES)}") from None
    return cls(**hparams)


__all__ = ["ARCHITECTURES", "AffineColorManipulator", "BlendManipulator", "ColorGridManipulator", "Generator", "ImageManipulator", "LatentEditor", "LatentMapper", "SalientRecolourManipulator", "build"]
