"""lumicap: low-light image enhancement with caption-guided multimodal feature regularization."""

__version__ = "0.1.0"

from lumicap import _moved
from lumicap.errors import LumicapError

_moved.install()  # old module paths (lumicap.weights_catalog, ...) keep importing

__all__ = ["LumicapError", "__version__"]
