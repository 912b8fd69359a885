"""The one robust z-score: median / (1.4826 * MAD), each caller's floor explicit."""

from __future__ import annotations

import torch

from secure_train.core.robust_stats import MAD_SCALE, robust_center_spread, robust_z


def test_matches_the_textbook_formula() -> None:
    x = torch.randn(101, generator=torch.Generator().manual_seed(0))
    med = x.median()
    mad = (x - med).abs().median()
    assert torch.allclose(robust_z(x, floor=1e-12), (x - med) / (MAD_SCALE * mad))


def test_scale_estimates_the_standard_deviation_of_normal_data() -> None:
    x = torch.randn(200_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3.0 + 7.0
    center, spread = robust_center_spread(x)
    assert abs(float(center) - 7.0) < 0.05 and abs(float(spread) - 3.0) < 0.05


def test_an_outlier_moves_neither_center_nor_spread() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    y = torch.tensor([1.0, 2.0, 3.0, 4.0, 1e6])
    assert robust_center_spread(x) == robust_center_spread(y)
    assert float(robust_z(y, floor=1e-6)[-1]) > 1e5


def test_floors_keep_constant_data_finite() -> None:
    x = torch.full((6,), 4.0)
    assert robust_center_spread(x)[1] == 0.0
    assert robust_z(x, floor=1e-6).eq(0).all()
    z = robust_z(torch.tensor([4.0, 4.0, 4.0, 5.0]), floor=1e-3, relative_floor=1e-3)
    assert torch.allclose(z, torch.tensor([0.0, 0.0, 0.0, 1.0 / (1e-3 + 4e-3)]))  # floor + relative * |median|
    assert float(robust_z(torch.tensor([4.0, 4.0, 4.0, 5.0]), floor=0.5)[-1]) == 2.0


def test_along_a_dimension_matches_per_column() -> None:
    x = torch.randn(9, 3, generator=torch.Generator().manual_seed(2))
    center, spread = robust_center_spread(x, dim=0)
    for j in range(3):
        c, s = robust_center_spread(x[:, j])
        assert torch.equal(center[j], c) and torch.equal(spread[j], s)
