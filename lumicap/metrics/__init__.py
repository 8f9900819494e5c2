"""Image-quality metrics as the low-light literature reports them: PSNR, SSIM (MATLAB convention),
the GT-mean protocol, and LPIPS (AlexNet, v0.1 heads). Tensor in, tensor (B,) out."""

from lumicap.metrics.gt_mean import GRAY_WEIGHTS_BT601, gt_mean_scale, mean_gray
from lumicap.metrics.lpips import LPIPS, load_lpips, try_load_lpips
from lumicap.metrics.psnr import PSNR_CONVENTIONS, psnr
from lumicap.metrics.ssim import gaussian_window, ssim, ssim_matlab

__all__ = [
    "GRAY_WEIGHTS_BT601", "LPIPS", "PSNR_CONVENTIONS", "gaussian_window", "gt_mean_scale", "load_lpips",
    "mean_gray", "psnr", "ssim", "ssim_matlab", "try_load_lpips",
]
