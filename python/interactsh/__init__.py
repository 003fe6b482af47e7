"""Interactsh-compatible out-of-band interaction server."""

__version__ = "0.1.0"
