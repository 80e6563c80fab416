"""reframe-vj: genre DCGANs, reframe mosaics and a live VJ engine.

This package holds the engine and the pieces every part shares (media, config, run layout).
Importing ``vj`` is cheap: heavy modules load where they are used.
"""
__version__ = "0.1.0"
