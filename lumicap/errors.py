"""One exception type for everything a user can get wrong.

The CLI prints ``LumicapError`` as one line (``lumicap: error: ...``) without a traceback (a
``ConfigError`` holding several problems as one such line per problem), and so an ``OSError`` that reached
it (the file system refused a write the command did not word itself: ``file_system_refusal``);
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
    """Config keys, types or values that are not allowed: one line per problem, all of a file together."""

    def __init__(self, *problems: str):
        self.problems = [str(p) for p in problems]
        super().__init__("\n".join(self.problems))


def one_line(text: str) -> str:
    """``text`` as a single printable line: newlines and other control characters are escaped.

    A file may be named ``"a.png\\nlumicap: error: ..."``; printed raw, its name would start a new line
    that looks like a message of its own (and a first-line-only message would lose the reason after it).
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


def shown(path) -> str:
    """A path for a message: as it is, or quoted with escapes when it holds a control character."""
    import os

    text = os.fspath(path)
    return text if text.isprintable() else repr(text)


def file_system_refusal(exc: OSError) -> str:
    """An ``OSError`` as a message naming the file, or its folder when the file was a hidden temporary
    (``.name.part``) that the user never asked for."""
    import os

    reason = exc.strerror or str(exc) or type(exc).__name__
    name = exc.filename
    if name is None:
        return reason
    text = os.fspath(name)
    base = os.path.basename(text)
    if base.startswith(".") and ".part" in base:
        return f"cannot write into the folder {shown(os.path.dirname(text) or '.')} ({reason})"
    return f"{shown(text)}: {reason}"
