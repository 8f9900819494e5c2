"""SNR-Aware's official checkpoints (dvlab-research/SNR-Aware-Low-Light-Enhance).

- Container: a bare state dict (``models/base_model.py`` ``save_network`` unwraps DataParallel/DDP and
  saves ``state_dict()``; its ``load_network`` also accepts a ``module.`` prefix, as lumicap does).
- Keys: lumicap's ``SNRAware`` uses the official module names (``conv_first_1``, ``feature_extraction``,
  ``transformer.layer_stack.N.slf_attn.w_qs``, ...), so the map is the identity: 118 keys, 39,124,099
  parameters for the published ``options/test/LOLv1.yml`` configuration.
- The official test loads non-strictly; lumicap loads strictly, so a file for another configuration is
  reported instead of half-loaded.
"""

from lumicap.models.official import OfficialFormat, keep

FORMAT = OfficialFormat(
    model="snr_aware",
    description="official SNR-Aware checkpoint (dvlab-research/SNR-Aware-Low-Light-Enhance, bare state dict)",
    rules=(keep(),),
)
