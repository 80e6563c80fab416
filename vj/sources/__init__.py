"""Layer sources: one ``{kind: class}`` table, one protocol (``vj.sources.base.Source``).

    clip       a genre's loops (``clip.py``: the shared decoder and the player)
    generator  a genre's trained GAN as a live latent walk (``generator.py``)
    mosaic     a genre's reframe mosaic, animated (``mosaic.py``; the view's maths is ``mosaic.animate``)
    solid      a flat colour
    gradient   a slowly turning two-colour gradient

Scenes, the engine, ``vj osc --list`` and the web API all read kinds and their parameters from here.
"""
from __future__ import annotations

from vj.sources.base import Genre, NotInGenre, Source, SourceEnv
from vj.sources.clip import ClipLibrary, ClipSource
from vj.sources.generator import GeneratorSource
from vj.sources.gradient import GradientSource
from vj.sources.mosaic import MosaicSource
from vj.sources.solid import SolidSource

SOURCES: dict[str, type[Source]] = {cls.kind: cls for cls in (ClipSource, GeneratorSource, MosaicSource,
                                                              SolidSource, GradientSource)}

__all__ = ["SOURCES", "Source", "SourceEnv", "Genre", "NotInGenre", "ClipLibrary", "ClipSource", "GeneratorSource",
           "MosaicSource", "SolidSource", "GradientSource"]
