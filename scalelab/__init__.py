"""scalelab: a lab bench for scaling laws of generative recommendation models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scalelab")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
