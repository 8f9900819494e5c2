"""One exception type for everything a user can get wrong.

The CLI prints ``LumicapError`` as a single line (``lumicap: error: ...``) without a traceback;
anything else is a bug and keeps its traceback. Messages name the file or key and the problem.
"""


class LumicapError(Exception):
    """A user-facing error: bad input file, missing pair, wrong checkpoint, config typo, ..."""


class ImageReadError(LumicapError):
    """An image file that cannot be decoded (corrupt, truncated, not an image, too large)."""


class DatasetError(LumicapError):
    """A dataset folder whose layout or pairing is wrong."""


class WeightsError(LumicapError):
    """A weight file that is missing, corrupt, unsafe or of the wrong architecture."""


class ConfigError(LumicapError):
    """A config key, type or value that is not allowed."""
