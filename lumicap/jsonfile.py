"""Reading the JSON files users and runs hand to lumicap (teacher.json, model sidecars, captions, run.json,
summary.json): every failure is one ``LumicapError`` line naming the file and the problem.

``json.loads`` raises ``RecursionError`` on a document nested a few thousand levels deep (``[[[[...``);
that is a hostile or broken file, not a bug, so it is reported like any other unreadable file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from lumicap.errors import LumicapError, shown


def parse_json(
    text: str | bytes, source: str | os.PathLike, what: str = "JSON file", error: type[LumicapError] = LumicapError
) -> Any:
    """``json.loads(text)``, with a broken or absurdly nested document as one ``error`` line about ``source``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"{shown(source)}: not a readable {what} (nested too deeply)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise error(f"{shown(source)}: not a readable {what} ({reason})") from None


def read_json(path: str | os.PathLike, what: str = "JSON file", error: type[LumicapError] = LumicapError) -> Any:
    """The document in ``path``; a missing, unreadable, malformed or absurdly nested file is one ``error`` line."""
    from lumicap.files import read_regular

    path = Path(path)
    try:
        raw = read_regular(path, error=error)  # not a FIFO or a device: those would block or never end
    except OSError as exc:
        raise error(f"{shown(path)}: cannot read {what} ({exc.strerror or type(exc).__name__})") from None
    return parse_json(raw, path, what, error)


def expect_object(
    data: Any, source: str | os.PathLike, what: str = "JSON file", error: type[LumicapError] = LumicapError
) -> dict:
    """``data`` when it is a JSON object; otherwise one ``error`` line saying what it is instead."""
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(data), "a number")
        raise error(f"{shown(source)}: expected a {what} holding a JSON object, found {kind}")
    return data


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by the string ``"inf"``, ``"-inf"`` or ``"nan"``.

    JSON has no infinity (Python would write the non-standard ``Infinity``, which other readers reject);
    an identical output and reference do have an infinite PSNR, and ``float("inf")`` reads the string back.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that always writes standard JSON (see ``json_safe``)."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)
