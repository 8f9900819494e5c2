"""The record of one known weight file, named sets of them, and the registry both live in.

``lumicap.weights.catalogue`` declares the entries; this module only holds them and looks them up. The
catalogue is loaded with the package (``import lumicap.weights``), so the registry is always full.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumicap.errors import WeightsError


@dataclass(frozen=True)
class KnownWeights:
    """One downloadable file. Exactly one of ``repo_id`` (Hugging Face) or ``url`` is set."""

    name: str
    filename: str
    description: str
    repo_id: str | None = None
    url: str | None = None
    sha256: str | None = None  # pinned when the publisher states it; else recorded at first download
    size: int | None = None  # bytes, approximate is fine: shown by 'lumicap weights list', never checked
    sha256_prefix: str | None = None  # torchvision convention: first hex digits of sha256 in the file name

    @property
    def source(self) -> str:
        if self.repo_id:
            # A direct link: what a browser or curl needs to fetch the file by hand.
            return f"https://huggingface.co/{self.repo_id}/resolve/main/{self.filename}"
        return str(self.url)


@dataclass(frozen=True)
class WeightsSet:
    """The files one thing needs (a teacher preset, LPIPS), fetched and bundled together by name."""

    name: str
    members: tuple[str, ...]
    description: str


KNOWN_WEIGHTS: dict[str, KnownWeights] = {}
KNOWN_SETS: dict[str, WeightsSet] = {}


def register_weights(entry: KnownWeights) -> KnownWeights:
    KNOWN_WEIGHTS[entry.name] = entry
    return entry


def register_set(name: str, members, description: str) -> WeightsSet:
    """Group catalogue names under ``name``. A set may share its name with one of its files."""
    entry = WeightsSet(name, tuple(dict.fromkeys(members)), description)
    KNOWN_SETS[name] = entry
    return entry


def known_weights() -> dict[str, KnownWeights]:
    return dict(KNOWN_WEIGHTS)


def known_sets() -> dict[str, WeightsSet]:
    return dict(KNOWN_SETS)


def unknown_weights_error(name: str, extra: str = "") -> WeightsError:
    names = sorted(set(KNOWN_WEIGHTS) | set(KNOWN_SETS))
    return WeightsError(f"unknown weights '{name}'; known: {', '.join(names)}{extra}")


def get_known(name: str) -> KnownWeights:
    if name not in KNOWN_WEIGHTS:
        raise unknown_weights_error(name)
    return KNOWN_WEIGHTS[name]


def expand_names(names) -> list[KnownWeights]:
    """Catalogue entries for file and set names, in order, each once. A set wins over a file of its name
    (the set of a teacher preset holds the file of that name and what else the preset needs)."""
    entries: dict[str, KnownWeights] = {}
    for name in names:
        if name in KNOWN_SETS:
            members = KNOWN_SETS[name].members
        elif name in KNOWN_WEIGHTS:
            members = (name,)
        else:
            raise unknown_weights_error(name)
        for member in members:
            if member not in KNOWN_WEIGHTS:
                raise WeightsError(f"weights set '{name}' names '{member}', which is not in the catalogue")
            entries.setdefault(member, KNOWN_WEIGHTS[member])
    return list(entries.values())
