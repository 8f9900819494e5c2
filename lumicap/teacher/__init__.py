"""The frozen ClipCap teacher and the multimodal feature regularization (MFR) loss built on it."""

import importlib

# Resolved on first use: importing the package (e.g. for the old path ``lumicap.teacher.presets``, now
# ``lumicap.weights.teacher_presets``) must not pull in torch and transformers.
_EXPORTS = {
    "ClipCapTeacher": "lumicap.teacher.clipcap",
    "MultimodalFeatureLoss": "lumicap.teacher.loss",
    "PRESETS": "lumicap.weights.teacher_presets",
    "build_random_teacher": "lumicap.teacher.tiny",
    "load_clip_image_encoder": "lumicap.teacher.clip_tower",
    "save_random_teacher": "lumicap.teacher.tiny",
    "save_tiny_teacher": "lumicap.teacher.tiny",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lumicap.teacher' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
