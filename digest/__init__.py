"""digest: build a newsletter digest from a folder of markdown articles."""

__version__ = "0.1.0"
