"""Image I/O, pairing of low/high folders (LOL-v1, LOL-v2 real/synthetic, generic folders), datasets."""

from lumicap.data.datasets import (
    EpochSampler,
    PairedImageDataset,
    UnpairedImageDataset,
    build_loader,
    mixup_pairs,
    set_loader_epoch,
)
from lumicap.data.io import IMAGE_EXTENSIONS, image_bit_depth, image_size, read_image, read_image_array, write_image
from lumicap.data.pairing import (
    LAYOUTS,
    ImagePair,
    detect_layout,
    find_pairs,
    list_images,
    resolve_split,
    scene_groups,
    split_by_scene,
)

__all__ = [
    "IMAGE_EXTENSIONS", "LAYOUTS", "EpochSampler", "ImagePair", "PairedImageDataset", "UnpairedImageDataset",
    "build_loader", "detect_layout", "find_pairs", "image_bit_depth", "image_size", "list_images", "mixup_pairs",
    "read_image", "read_image_array", "resolve_split", "scene_groups", "set_loader_epoch", "split_by_scene",
    "write_image",
]
