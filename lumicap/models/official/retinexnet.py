"""RetinexNet's official checkpoints (weichen582/RetinexNet, ``model.py``; TensorFlow 1.x).

- Container: two ``tf.train.Saver`` checkpoint folders, ``model/Decom`` and ``model/Relight``
  (``RetinexNet-tensorflow.{index,data-00000-of-00001}``), read by ``tf_checkpoint`` (needs the ``tf``
  extra). Give the ``model/`` folder (variables come back as ``Decom/...`` and ``Relight/...``) or one
  checkpoint holding both networks (names without the folder).
- What the official test restores (``lowlight_enhance.test``): ``DecomNet/*`` from ``Decom`` and
  ``RelightNet/*`` from ``Relight``, by name; everything else in the files is left out here as there:
  Adam slots and ``beta1/2_power``, a ``DenoiseNet``, a copy of ``DecomNet`` in ``Relight`` and an older
  ``RelightNet`` (other names and shapes) in ``Decom``.
- Names: ``DecomNet/shallow_feature_extraction``, ``activated_layer_N``, ``recon_layer`` ->
  ``decom_net.shallow_feature_extraction``, ``activated_layers.N.0``, ``recon_layer``; the unnamed
  ``RelightNet/conv2d``, ``conv2d_1`` ... ``conv2d_8`` (TF numbers layers in creation order) ->
  ``relight_net.conv0``, ``down.0-2``, ``up.0-2``, ``feature_fusion``, ``output``.
- Layout: TF kernels are ``(kh, kw, in, out)``, PyTorch weights ``(out, in, kh, kw)``.
"""

from lumicap.models.official import OfficialFormat, Rule, ignore, tf_kernel_to_torch

_RELIGHT_LAYERS = ["conv0", "down.0", "down.1", "down.2", "up.0", "up.1", "up.2", "feature_fusion", "output"]


def _relight(m, _) -> str:
    index = int(m["n"]) if m["n"] else 0
    if index >= len(_RELIGHT_LAYERS):
        return f"relight_net.conv2d_{index}.{m['leaf']}"  # not a layer of the released graph: does not fit
    return f"relight_net.{_RELIGHT_LAYERS[index]}.{m['leaf']}"


_TF_LEAF = {"kernel": "weight", "bias": "bias"}


def _kernel_or_bias(tensor):
    return tf_kernel_to_torch(tensor) if tensor.dim() == 4 else tensor


FORMAT = OfficialFormat(
    model="retinexnet",
    description="official RetinexNet TensorFlow checkpoint (weichen582/RetinexNet, model.py)",
    rules=(
        ignore(r".*/(AdamOptimizer|AdamOptimizer_1)|(.*/)?beta[12]_power|(.*/)?global_step",
               "optimizer variables"),
        ignore(r"(.*/)?DenoiseNet/.*", "DenoiseNet variables (not part of the released graph)"),
        ignore(r"Relight/DecomNet/.*", "DecomNet variables in Relight (the official test takes DecomNet from Decom)"),
        ignore(r"Decom/RelightNet/.*",
               "RelightNet variables in Decom (the official test takes RelightNet from Relight)"),
        Rule(r"(Decom/)?DecomNet/(?P<layer>shallow_feature_extraction|recon_layer)/(?P<leaf>kernel|bias)",
             lambda m, _: f"decom_net.{m['layer']}.{_TF_LEAF[m['leaf']]}", _kernel_or_bias),
        Rule(r"(Decom/)?DecomNet/activated_layer_(?P<n>\d+)/(?P<leaf>kernel|bias)",
             lambda m, _: f"decom_net.activated_layers.{m['n']}.0.{_TF_LEAF[m['leaf']]}", _kernel_or_bias),
        Rule(r"(Relight/)?RelightNet/conv2d(_(?P<n>\d+))?/(?P<leaf>kernel|bias)",
             lambda m, _: _relight({"n": m["n"], "leaf": _TF_LEAF[m["leaf"]]}, _), _kernel_or_bias),
    ),
)
