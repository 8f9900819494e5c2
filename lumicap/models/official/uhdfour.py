"""UHDFour's official LOL checkpoints (Li-Chongyi/UHDFour_code, ``src/EnhanceN_arch_LOL.py``).

- Container: a bare state dict of ``nn.DataParallel(InteractNet)`` (``src/UHDFour_model.py`` always wraps
  the model), so every key starts with ``module.``.
- Names: ``extract`` -> ``lift``; ``lownet.conv0..conv5`` -> ``lowres_net.stem, enc1, enc2, bottleneck,
  dec2, dec1``; ``downsample1/2`` -> ``down1/2``; ``up1/up2`` -> ``merge2/merge1``; ``convout``,
  ``convoutfinal``, ``transamp``, ``transpha`` -> ``to_guide``, ``to_rgb``, ``guide_amplitude``,
  ``guide_phase``; ``highnet.conv1, conv3, conv4`` -> ``highres_net.guided, refine.0, refine.1``;
  ``convout, trans, con_temp1..3`` -> ``after_shuffle, head_in, head_hidden.0/1, head_out``. Inside a
  block: ``spatial_process.block.F/G/H`` -> ``coupling.shift1/shift2/log_scale`` (``identity, conv_1,
  conv_2, norm`` -> ``skip, conv1, conv2, half_norm``), ``frequency_process.processmag/processpha`` ->
  ``fourier.amplitude/phase``, ``sft.convmul/convadd/convfuse`` -> ``fourier.amplitude_guidance.scale/
  shift/fuse``, ``frequency_process.cat`` -> ``fourier.phase_guidance``, ``cat`` -> ``fuse``.
- Layout: the official ``up1``/``up2`` are 1x1 ``ConvTranspose2d`` (weight ``(in, out, 1, 1)``); lumicap
  uses the equal 1x1 ``Conv2d`` (weight ``(out, in, 1, 1)``), so those weights are transposed.
- Left out: each block's ``frequency_spatial`` and ``spatial_frequency`` 3x3 convs, built but never called
  by the official forward (12.6M of the published file's 28.5M parameters).
- Only the LOL network (``variant='lol'``); the UHD-LL network (``src/EnhanceN_arch.py``) has other names.
"""

from lumicap.models.official import OfficialFormat, Rule, ignore, transposed_conv_to_conv

_LOW = {
    "conv0": "stem", "conv1": "enc1", "downsample1": "down1", "conv2": "enc2", "downsample2": "down2",
    "conv3": "bottleneck", "up1": "merge2", "conv4": "dec2", "up2": "merge1", "conv5": "dec1",
    "convout": "to_guide", "convoutfinal": "to_rgb", "transamp": "guide_amplitude", "transpha": "guide_phase",
}
_HIGH = {
    "conv1": "guided", "conv3": "refine.0", "conv4": "refine.1", "convout": "after_shuffle", "trans": "head_in",
    "con_temp1": "head_hidden.0", "con_temp2": "head_hidden.1", "con_temp3": "head_out",
}
_BRANCH = {"F": "shift1", "G": "shift2", "H": "log_scale"}
_UNIT = {"identity": "skip", "conv_1": "conv1", "conv_2": "conv2", "norm": "half_norm"}
_FREQUENCY = {
    "processmag": "amplitude", "processpha": "phase", "sft.convmul": "amplitude_guidance.scale",
    "sft.convadd": "amplitude_guidance.shift", "sft.convfuse": "amplitude_guidance.fuse", "cat": "phase_guidance",
}


def _alternatives(names) -> str:
    return "|".join(sorted((n.replace(".", r"\.") for n in names), key=len, reverse=True))


_LAYER = rf"(?:(?P<net>lownet)\.(?P<layer>{_alternatives(_LOW)})|(?P<hnet>highnet)\.(?P<hlayer>{_alternatives(_HIGH)}))"


def _layer(m) -> str:
    if m["net"]:
        return f"lowres_net.{_LOW[m['layer']]}"
    return f"highres_net.{_HIGH[m['hlayer']]}"


FORMAT = OfficialFormat(
    model="uhdfour",
    description="official UHDFour LOL checkpoint (Li-Chongyi/UHDFour_code, src/EnhanceN_arch_LOL.py)",
    rules=(
        ignore(rf"{_LAYER}\.(frequency_spatial|spatial_frequency)\.(weight|bias)",
               "tensors of convs the official forward never calls"),
        Rule(r"extract\.(weight|bias)", r"lift.\1"),
        Rule(r"lownet\.(?P<layer>up1|up2)\.weight", lambda m, _: f"lowres_net.{_LOW[m['layer']]}.weight",
             transposed_conv_to_conv),
        Rule(rf"{_LAYER}\.spatial_process\.block\.(?P<b>[FGH])\.(?P<u>{_alternatives(_UNIT)})\.(?P<leaf>weight|bias)",
             lambda m, _: f"{_layer(m)}.coupling.{_BRANCH[m['b']]}.{_UNIT[m['u']]}.{m['leaf']}"),
        Rule(rf"{_LAYER}\.frequency_process\.(?P<f>{_alternatives(_FREQUENCY)})(?P<rest>(\.\d+)?\.(weight|bias))",
             lambda m, _: f"{_layer(m)}.fourier.{_FREQUENCY[m['f']]}{m['rest']}"),
        Rule(rf"{_LAYER}\.cat\.(?P<leaf>weight|bias)", lambda m, _: f"{_layer(m)}.fuse.{m['leaf']}"),
        Rule(rf"{_LAYER}\.(?P<leaf>weight|bias)", lambda m, _: f"{_layer(m)}.{m['leaf']}"),
    ),
)
