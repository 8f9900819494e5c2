"""The frozen ClipCap teacher and the multimodal feature regularization (MFR) loss built on it."""

from lumicap.teacher.clip_tower import load_clip_image_encoder
from lumicap.teacher.clipcap import ClipCapTeacher
from lumicap.teacher.presets import PRESETS
from lumicap.teacher.tiny import build_random_teacher, save_random_teacher, save_tiny_teacher

__all__ = [
    "ClipCapTeacher",
    "MultimodalFeatureLoss",
    "PRESETS",
    "build_random_teacher",
    "load_clip_image_encoder",
    "save_random_teacher",
    "save_tiny_teacher",
]


def __getattr__(name):
    # The loss module imports the teacher; resolved lazily to keep import order simple.
    if name == "MultimodalFeatureLoss":
        from lumicap.teacher.loss import MultimodalFeatureLoss

        return MultimodalFeatureLoss
    raise AttributeError(name)
