"""Image-quality metrics as the low-light literature reports them: PSNR, SSIM (MATLAB convention),
the GT-mean protocol, and LPIPS (AlexNet, v0.1 heads), tensor in, tensor (B,) out; and the
no-reference side on RGB uint8 arrays: NIQE, exposure and colour measures, and the judges that
bundle them for ``lumicap eval``."""

from lumicap.metrics.gt_mean import GRAY_WEIGHTS_BT601, gt_mean_scale, mean_gray
from lumicap.metrics.judges import ExposureJudge, Judge, NiqeJudge, TeacherJudge, make_judge, register_judge
from lumicap.metrics.lpips import LPIPS, load_lpips, try_load_lpips
from lumicap.metrics.niqe import NIQE_MODES, niqe
from lumicap.metrics.noref import as_uint8_rgb, border_frame, clipped_share, colourfulness, loe, mean_brightness
from lumicap.metrics.psnr import PSNR_CONVENTIONS, psnr
from lumicap.metrics.ssim import gaussian_window, ssim, ssim_matlab

__all__ = [
    "ExposureJudge", "GRAY_WEIGHTS_BT601", "Judge", "LPIPS", "NIQE_MODES", "NiqeJudge", "PSNR_CONVENTIONS",
    "TeacherJudge", "as_uint8_rgb", "border_frame", "clipped_share", "colourfulness", "gaussian_window",
    "gt_mean_scale", "load_lpips", "loe", "make_judge", "mean_brightness", "mean_gray", "niqe", "psnr",
    "register_judge", "ssim", "ssim_matlab", "try_load_lpips",
]
