"""IAT's official checkpoints (cuiziteng/Illumination-Adaptive-Transformer, ``IAT_enhance/``).

- Container: a bare state dict (``train_lol_v1_whole.py``: ``torch.save(model.state_dict(), ...)``, the
  model not wrapped in ``DataParallel``).
- Keys: lumicap's ``IAT`` uses the official module names, so the map is the identity, BatchNorm running
  statistics included (161 keys for ``IAT(type='lol')``, 91,154 parameters).
- Published: ``best_Epoch_lol_v1.pth`` (LOL-v1), ``best_Epoch_lol.pth`` (LOL-v2 real) and
  ``best_Epoch_exposure.pth`` (exposure correction, same architecture), committed in the repository.
"""

from lumicap.models.official import OfficialFormat, keep

FORMAT = OfficialFormat(
    model="iat",
    description="official IAT checkpoint (cuiziteng/Illumination-Adaptive-Transformer, bare state dict)",
    rules=(keep(),),
)
