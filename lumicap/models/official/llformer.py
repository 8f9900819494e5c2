"""LLFormer's official checkpoints (TaoWangzj/LLFormer, ``model/LLFormer.py``).

- Container: ``{"epoch", "state_dict", "optimizer"}`` (``train.py``); keys without ``module.`` for the
  single-GPU LOL config (``test.py`` also accepts them with it, as lumicap does).
- Names: the official attributes are level-numbered (``encoder_1``, ``decoder_level2_0``, ``up3_2``,
  ``coefficient_4_3``, ...); lumicap groups them in lists (``stages``, ``encoder``, ``decoder``, ``up``,
  ``skips``). Inside a transformer block: ``attn.row_att``/``col_att`` -> ``attention.row_attention``/
  ``column_attention`` with ``q1, q2, q3, fac, fin`` -> ``qkv, qkv_dwconv1, qkv_dwconv2, temperature,
  project_out``; ``norm*.body`` -> ``norm*``; ``ffn`` -> ``feed_forward``.
- Layout: the official column attention transposes the image and reuses the row code, so its depthwise
  3x3 kernels (``q2``, ``q3``) see the transposed image; lumicap attends along columns without
  transposing, so those kernels are transposed here.
- Left out: ``coefficient`` (4, 2, 8*dim) and ``skip_2_1`` are built but never used by the official
  forward (the level-1 decoder input goes through ``skip_1_0``).
- Published LOL checkpoint: ``model_bestPSNR.pth`` (dim 16, blocks [2, 4, 8, 16]; lumicap's defaults),
  1,485 keys.
"""

from lumicap.models.official import OfficialFormat, Rule, ignore, transpose_kernel_hw

# Official block containers -> lumicap (level numbers become list indices).
_CONTAINERS = {
    **{f"encoder_{i}": f"stages.{i - 1}" for i in (1, 2, 3)},
    "latent": "latent",
    **{f"decoder_level{i}_0": f"encoder.{i - 1}" for i in (1, 2, 3)},
    "decoder_level4": "bottleneck",
    **{f"decoder_level{i}_1": f"decoder.{i - 1}" for i in (1, 2, 3)},
    **{f"refinement_{i}": f"refinement.{i - 1}" for i in (1, 2, 3)},
}

# Inside one transformer block.
_BLOCK_PARTS = {
    "norm1.body": "norm1",
    "norm2.body": "norm2",
    "ffn.project_in": "feed_forward.project_in",
    "ffn.dwconv": "feed_forward.dwconv",
    "ffn.project_out": "feed_forward.project_out",
    **{
        f"attn.{axis}_att.{official}": f"attention.{lumicap_axis}_attention.{ours}"
        for axis, lumicap_axis in (("row", "row"), ("col", "column"))
        for official, ours in (("q1", "qkv"), ("q2", "qkv_dwconv1"), ("q3", "qkv_dwconv2"), ("fac", "temperature"),
                               ("fin", "project_out"))
    },
}

# Single tensors and small modules outside the blocks.
_OTHERS = {
    "patch_embed.proj": "embed",
    "output": "to_rgb",
    "conv_fuss": "stage_fusion.reduce",
    "conv_fuss_2": "refinement_fusion.reduce",
    **{f"layer_fussion.{p}": f"stage_fusion.{p}" for p in ("temperature", "qkv", "qkv_dwconv", "project_out")},
    **{f"layer_fussion_2.{p}": f"refinement_fusion.{p}" for p in ("temperature", "qkv", "qkv_dwconv", "project_out")},
    **{f"down_{i}.body.0": f"down.{i - 1}.conv" for i in (1, 2, 3, 4)},
    "up4_3.body.0": "up.3.conv",
    "up3_2.body.0": "up.2.conv",
    "up2_1.body.0": "up.1.conv",
    "up2_0.body.0": "up.0.conv",
    "coefficient_4_3": "skips.2.weights",
    "coefficient_3_2": "skips.1.weights",
    "coefficient_2_1": "skips.0.weights",
    "coefficient_1_0": "output_skip_weights",
    "skip_4_3": "skips.2.conv",
    "skip_3_2": "skips.1.conv",
    "skip_1_0": "skips.0.conv",
}


def _alternatives(names) -> str:
    return "|".join(sorted((n.replace(".", r"\.") for n in names), key=len, reverse=True))


_BLOCK = (rf"(?P<c>{_alternatives(_CONTAINERS)})\.(?P<n>\d+)\.(?P<part>{_alternatives(_BLOCK_PARTS)})"
          r"(?P<leaf>\.weight|\.bias)?")
_OTHER = rf"(?P<part>{_alternatives(_OTHERS)})(?P<leaf>\.weight|\.bias)?"


def _block_target(m, model) -> str:
    return f"{_CONTAINERS[m['c']]}.{m['n']}.{_BLOCK_PARTS[m['part']]}{m['leaf'] or ''}"


def _other_target(m, model) -> str:
    return f"{_OTHERS[m['part']]}{m['leaf'] or ''}"


FORMAT = OfficialFormat(
    model="llformer",
    description="official LLFormer checkpoint (TaoWangzj/LLFormer, model/LLFormer.py)",
    rules=(
        ignore(r"coefficient|skip_2_1\.(weight|bias)", "tensors the official forward never uses"),
        Rule(rf"(?P<c>{_alternatives(_CONTAINERS)})\.(?P<n>\d+)\.(?P<part>attn\.col_att\.q[23])(?P<leaf>\.weight)",
             _block_target, transpose_kernel_hw),
        Rule(_BLOCK, _block_target),
        Rule(_OTHER, _other_target),
    ),
)
