"""Inference: load a trained network, enhance images whole or in blended tiles, and batch over files."""

from lumicap.inference.batch import (
    DEFAULT_MAX_MEGAPIXELS,
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    EnhancedFile,
    EnhanceSummary,
    InputImage,
    TileSettings,
    collect_inputs,
    enhance_file,
    enhance_files,
    enhance_image,
    output_path,
    plan_outputs,
)
from lumicap.inference.loading import (
    DEFAULT_METADATA,
    DEFAULT_WEIGHTS,
    InferenceModel,
    export_checkpoint,
    load_inference_model,
    resolve_device,
    save_inference_model,
)
from lumicap.inference.tiling import plan_tiles, run_tiled, run_whole

__all__ = [
    "DEFAULT_MAX_MEGAPIXELS",
    "DEFAULT_METADATA",
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "DEFAULT_WEIGHTS",
    "EnhancedFile",
    "EnhanceSummary",
    "InferenceModel",
    "InputImage",
    "TileSettings",
    "collect_inputs",
    "enhance_file",
    "enhance_files",
    "enhance_image",
    "export_checkpoint",
    "load_inference_model",
    "output_path",
    "plan_outputs",
    "plan_tiles",
    "resolve_device",
    "run_tiled",
    "run_whole",
    "save_inference_model",
]
