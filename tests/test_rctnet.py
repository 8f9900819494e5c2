"""RCTNet specifics: global/local parts and their combination, mesh geometry of the local transform,
the colour-transform property (outputs are convex combinations of transformed colours), batch-1 training,
the recipe. A small configuration keeps it cheap; ``test_models.py`` runs the paper's configuration."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lumicap.models import model_info
from lumicap.models.rctnet import LocalRCT, RCTNet, SingleSampleSafeBatchNorm2d

SMALL = dict(encoder_size=64, encoder_widths=(4, 8, 8, 16, 16, 32), fusion_width=16, feature_dim=4,
             global_colors=8, local_colors=4)


def test_parts_have_the_input_size_and_combine_with_alpha_beta():
    torch.manual_seed(0)
    model = RCTNet(**SMALL)
    x = torch.rand(2, 3, 37, 51)
    out = model.training_outputs(x)
    for key in ("output", "global_output", "local_output"):
        assert out[key].shape == x.shape, key
    with torch.no_grad():
        model.global_weight.fill_(0.3)
        model.local_weight.fill_(-0.2)  # negative weights are clipped to zero (non-negative alpha, beta)
        out = model.training_outputs(x)
    torch.testing.assert_close(out["output"], 0.3 * out["global_output"])


def test_paper_configuration_has_a_31x31_mesh_and_1x1_global_features():
    model = RCTNet().eval()
    with torch.no_grad():
        fused = model.fusion(model.encoder(torch.rand(1, 3, 256, 256)))
    assert [tuple(f.shape[1:]) for f in fused] == [(128, 32, 32), (128, 16, 16), (128, 8, 8), (128, 1, 1)]
    assert model.global_rct.n_colors == 64 and model.local_rct.n_colors == 16
    assert model.image_features[-1].out_channels == 16


class _Fixed(nn.Module):
    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, _: torch.Tensor) -> torch.Tensor:
        return self.value


def test_local_transform_of_a_vertex_only_reaches_its_four_cells():
    """Colours of vertex (2, 3) of a 5x5-cell mesh change only the pixels of cells (1..2, 2..3)."""
    c, n, vertices = 4, 3, 6  # 5x5 cells
    local = LocalRCT(width=8, feature_dim=c, n_colors=n)
    colors = torch.zeros(1, 3 * n, vertices, vertices)
    colors[0, :, 2, 3] = 1.0
    local.to_representatives = _Fixed(torch.randn(1, c * n, vertices, vertices))
    local.to_colors = _Fixed(colors)
    cell_h, cell_w = 4, 6
    features = torch.randn(1, c, 5 * cell_h, 5 * cell_w)
    out = local(features, torch.zeros(1, 8, vertices, vertices))
    touched = out.abs().sum(1)[0] > 0
    expected = torch.zeros_like(touched)
    expected[1 * cell_h : 3 * cell_h, 2 * cell_w : 4 * cell_w] = True
    assert torch.equal(touched, expected)


def test_outputs_are_convex_combinations_of_transformed_colours():
    torch.manual_seed(1)
    model = RCTNet(**SMALL).eval()
    x = torch.rand(1, 3, 20, 30)
    with torch.no_grad():
        fused = model.fusion(model.encoder(F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True)))
        features = model.image_features(x)
        global_colors = model.global_rct.to_colors(fused[-1]).view(1, 3, -1)
        local_colors = model.local_rct.to_colors(fused[0]).view(1, 3, model.local_rct.n_colors, -1).flatten(2)
        out = model.training_outputs(x)
    for result, colors in ((out["global_output"], global_colors), (out["local_output"], local_colors)):
        low = colors.amin(-1).view(1, 3, 1, 1) - 1e-5
        high = colors.amax(-1).view(1, 3, 1, 1) + 1e-5
        assert ((result >= low) & (result <= high)).all()
    assert torch.allclose(model.global_rct(features, fused[-1]), out["global_output"])


def test_batch_of_one_trains_and_batch_norm_falls_back_to_running_stats():
    bn = SingleSampleSafeBatchNorm2d(5).train()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    single = torch.randn(1, 5, 1, 1)
    expected = (single - bn.running_mean.view(1, 5, 1, 1)) / torch.sqrt(bn.running_var.view(1, 5, 1, 1) + bn.eps)
    torch.testing.assert_close(bn(single), expected)
    pair = torch.randn(2, 5, 1, 1)
    torch.testing.assert_close(bn(pair), F.batch_norm(pair, None, None, training=True, eps=bn.eps))

    torch.manual_seed(2)
    model = RCTNet(**SMALL).train()
    out = model.training_outputs(torch.rand(1, 3, 24, 24))
    out["output"].mean().backward()
    assert model.global_rct.to_colors[1].weight.grad.abs().sum() > 0
    assert out["global_output"].std() > 0  # the global branch is not collapsed to a constant


def test_recipe_is_the_papers():
    info = model_info("rctnet")
    (stage,) = info.recipe.stages
    assert stage.losses == {"l1": 1.0, "vgg16": 0.04}
    assert stage.optimizer["lr"] == 5e-4 and stage.optimizer["weight_decay"] == 1e-5
    assert "No official code" in info.recipe.notes
    assert "no official code" in info.params_source
