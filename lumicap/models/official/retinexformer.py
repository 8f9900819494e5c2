"""Retinexformer's official checkpoints (caiyuanhao1998/Retinexformer, BasicSR code).

- Container: ``{"params": state_dict}`` (``basicsr/models/base_model.py`` ``save_network``; a run with an
  EMA also writes ``"params_ema"``; the official test script loads ``"params"``, and so does lumicap).
- Keys: lumicap's ``Retinexformer`` uses the official module names, so the map is the identity; the
  keys carry no ``module.`` prefix (``save_network`` removes it).
- Published LOL-v1 checkpoint: ``LOL_v1.pth`` (``n_feat=40, stage=1, num_blocks=[1, 2, 2]``, lumicap's
  defaults), 122 keys, 1,605,701 parameters.
"""

from lumicap.models.official import OfficialFormat, keep

FORMAT = OfficialFormat(
    model="retinexformer",
    description="official Retinexformer checkpoint (caiyuanhao1998/Retinexformer, BasicSR 'params')",
    rules=(keep(),),
)
