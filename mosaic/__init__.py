"""Reframe mosaics: frames -> ImageNet features -> t-SNE -> grid -> triangle tiles, posters and live views."""
