"""lumicap: low-light image enhancement with caption-guided multimodal feature regularization."""

__version__ = "0.1.0"

from lumicap.errors import LumicapError

__all__ = ["LumicapError", "__version__"]
