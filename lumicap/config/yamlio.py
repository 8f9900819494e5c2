"""Config files as plain data: bounded YAML reading, the ``base:`` chain, dotted overrides, YAML writing.

A config is a few hundred values, so anything far larger is refused before it is looked at: files over
``MAX_FILE_BYTES``, nesting deeper than ``MAX_DEPTH``, more than ``MAX_ALIASES`` aliases, or a document
that aliases would expand to more than ``MAX_VALUES`` values (a 1 KB "billion laughs" file would
otherwise become gigabytes once anything walks it). The sizes are counted on the node graph with
memoisation, so checking costs as much as the file, not as much as its expansion.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from lumicap.errors import ConfigError

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_ALIASES = 256
MAX_VALUES = 20_000
MAX_BASE_CHAIN = 16


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float (YAML 1.1 wants ``1.0e-4``; people write both) and
    refuses documents deeper or (through aliases) larger than a config can be."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _TooBig(f"more than {MAX_ALIASES} aliases (*name)")
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _TooBig(f"nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        _check_expansion(node)
        return node


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


class _TooBig(yaml.YAMLError):
    pass


def _check_expansion(root) -> None:
    """Values and depth of the document with every alias expanded, counted without expanding it."""
    sizes: dict[int, tuple[int, int]] = {}  # node id -> (values, depth) of its expansion
    visiting: set[int] = set()
    too_deep = _TooBig(f"nested (through aliases) deeper than {MAX_DEPTH} levels")

    def measure(node, level: int) -> tuple[int, int]:  # recursion stops at level MAX_DEPTH
        key = id(node)
        if key in sizes:
            if level + sizes[key][1] - 1 > MAX_DEPTH:
                raise too_deep
            return sizes[key]
        if key in visiting:
            raise _TooBig("an alias refers to the collection that contains it")
        if level > MAX_DEPTH:
            raise too_deep
        visiting.add(key)
        values, depth = 1, 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            child_values, child_depth = measure(child, level + 1)
            values += child_values
            depth = max(depth, child_depth + 1)
            if values > MAX_VALUES:
                raise _TooBig(f"expands (through aliases) to more than {MAX_VALUES} values")
        visiting.discard(key)
        sizes[key] = (values, depth)
        return values, depth

    if root is not None:
        measure(root, 1)


def _yaml_error(exc: Exception) -> str:
    if isinstance(exc, _TooBig):
        return f"too large for a config: {exc}"
    if isinstance(exc, RecursionError):
        return f"too large for a config: nested deeper than {MAX_DEPTH} levels"
    if isinstance(exc, ValueError):  # e.g. an integer of more than 4300 digits
        return f"not a usable YAML value ({str(exc).splitlines()[0][:120]})"
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"not valid YAML ({' '.join(str(problem).split())[:120]}{where})"


def parse_value(text: str) -> Any:
    """Parse a command-line override value as YAML (``bf16`` -> str, ``1e-4`` -> float, ``[1,2]`` -> list)."""
    if not text.strip():
        return ""
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError(f"override value of {len(text)} characters is too large for a config")
    try:
        return yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        shown = text[:40] + ("..." if len(text) > 40 else "")
        raise ConfigError(f"cannot use override value {shown!r}: {_yaml_error(exc)}") from None


def read_yaml(path: Path) -> dict:
    """One YAML file as a dict, within the size limits; every failure is one ``ConfigError`` line."""
    from lumicap.files import read_regular

    try:
        try:
            raw = read_regular(path, MAX_FILE_BYTES, ConfigError)  # a FIFO named *.yaml would block open() forever
        except ConfigError as exc:  # a folder, a FIFO, a device
            raise ConfigError(f"cannot read the config file {exc}") from None
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: too large for a config (over {MAX_FILE_BYTES >> 10} KiB)")
        data = yaml.load(raw.decode("utf-8"), Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:  # a folder, an unreadable or binary file
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"{path}: cannot read the config file ({type(exc).__name__}: {reason})") from None
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise ConfigError(f"{path}: {_yaml_error(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def deep_merge(base: dict, update: dict) -> dict:
    """Mappings merge key by key; anything else (lists included) in ``update`` replaces ``base``."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read a YAML config and its ``base:`` chain into one plain dict (no validation yet)."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    if len(_seen) >= MAX_BASE_CHAIN:
        raise ConfigError(f"{path}: 'base' chain longer than {MAX_BASE_CHAIN} files")
    data = read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        from lumicap.problems import brief

        raise ConfigError(f"{path}: base: got {brief(base)}; allowed: a file name (relative to this file)")
    return deep_merge(load_raw(path.parent / base, _seen + (path,)), data)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``dotted.key=value`` overrides to a plain config dict (returns a new dict).

    List items are addressed by index or, for items with a ``name`` (stages), by name."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item[:80]!r} is not of the form key=value (e.g. train.amp=bf16)")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {key[:80]!r}: empty key segment")
        if len(parts) > MAX_DEPTH:
            raise ConfigError(f"override {key[:80]!r}...: deeper than {MAX_DEPTH} levels")
        value = parse_value(text)
        node: Any = data
        for depth, part in enumerate(parts):
            here = ".".join(parts[: depth + 1])
            last = depth == len(parts) - 1
            if isinstance(node, list):
                index = _list_index(node, part, here)
                if last:
                    node[index] = value
                else:
                    node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise ConfigError(f"override {key!r}: '{'.'.join(parts[:depth])}' is a value, not a section")
    return data


def _list_index(items: list, part: str, where: str) -> int:
    if re.fullmatch(r"-?\d{1,9}", part):
        index = int(part)
        if not -len(items) <= index < len(items):
            raise ConfigError(f"override key '{where}': index {index} out of range (list has {len(items)} items)")
        return index
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if part in names:
        return names.index(part)
    raise ConfigError(f"override key '{where}': no item named '{part}' (items: {', '.join(map(str, names))})")


class _Dumper(yaml.SafeDumper):
    """Sections as indented blocks, lists of numbers on one line: a config that reads as a record."""

    def ignore_aliases(self, data):  # a record spells every value out (validated configs are small)
        return True


_Dumper.add_representer(
    list,
    lambda d, v: d.represent_sequence(
        "tag:yaml.org,2002:seq", v, flow_style=all(not isinstance(x, (dict, list)) for x in v)
    ),
)
_Dumper.add_representer(dict, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=False))


def dump_plain(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=110)
