"""Known weight files: what they are, where they come from, and how lumicap gets and reads them.

Arrows run one way inside the package::

    registry   the record of one file (KnownWeights), named sets, the registry they live in
    catalogue  declares every known file, set and official model (imports registry and teacher_presets)
    teacher_presets  the published ClipCap teachers as manifests over known files (plain data)
    store      the cache: explicit path -> cache -> download, sha256 records, verification
    bundle     carrying the cache to a machine without network (imports registry and store)
    reader     reading weight files safely (safetensors, torch pickles with weights_only=True)

Importing the package loads the catalogue, so the registry is full whichever module asks first.
"""

from lumicap.weights.reader import load_state_dict, torch_load_failure
from lumicap.weights.registry import (
    KNOWN_SETS,
    KNOWN_WEIGHTS,
    KnownWeights,
    WeightsSet,
    expand_names,
    get_known,
    known_sets,
    known_weights,
    register_set,
    register_weights,
)
from lumicap.weights.store import (
    OFFLINE_VARIABLES,
    RECORD_SUFFIX,
    FileCheck,
    MissingWeightsError,
    cache_dir,
    cached_path,
    check_file,
    download_to_cache,
    ensure_weights,
    make_folder,
    missing_message,
    offline_reason,
    read_record,
    record_path,
    remove_if_empty,
    resolve_weights,
    sha256_of,
    verify_file,
    write_record,
)
from lumicap.weights import catalogue  # noqa: E402  (fills the registry; after it, so it can import it)
from lumicap.weights.catalogue import OFFICIAL_MODELS, OfficialModel, official_model
from lumicap.weights.bundle import BundledFile, import_bundle, make_bundle


def _populate() -> None:
    """Kept for callers written when the catalogue loaded lazily: importing the package loads it now."""


__all__ = [
    "FileCheck", "KNOWN_SETS", "KNOWN_WEIGHTS", "KnownWeights", "MissingWeightsError", "OFFICIAL_MODELS",
    "OFFLINE_VARIABLES", "RECORD_SUFFIX", "BundledFile", "OfficialModel", "WeightsSet", "cache_dir", "cached_path",
    "catalogue", "check_file", "download_to_cache", "ensure_weights", "expand_names", "get_known", "import_bundle",
    "known_sets", "known_weights", "load_state_dict", "make_bundle", "make_folder", "missing_message",
    "offline_reason", "official_model", "read_record", "record_path", "register_set",
    "register_weights", "remove_if_empty", "resolve_weights", "sha256_of", "torch_load_failure", "verify_file",
    "write_record",
]
