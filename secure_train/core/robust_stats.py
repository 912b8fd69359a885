"""The robust z-score: ``(x - median) / (1.4826 * MAD)``, written once.

1.4826 makes the median absolute deviation (MAD) a consistent estimate of the standard
deviation for normal data, so a robust z-score of 3 means what a z-score of 3 means, while a
few outliers (the poisoned samples, the spike) move neither the center nor the spread.

The callers differ only in how they floor the spread (so constant data gives finite scores):
each passes its own ``floor`` (absolute) and ``relative_floor`` (times ``|median|``).

Example:
    >>> import torch
    >>> x = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0])
    >>> [round(v, 2) for v in robust_z(x, floor=1e-6).tolist()]
    [-1.35, -0.67, 0.0, 0.67, 65.43]
"""

from __future__ import annotations

import torch

__all__ = ["MAD_SCALE", "robust_center_spread", "robust_z"]

MAD_SCALE = 1.4826
"""Normal-consistency factor of the MAD: ``1 / Phi^-1(3/4)``."""


def robust_center_spread(x: torch.Tensor, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(median, 1.4826 * MAD)`` of ``x``, over all values or along ``dim`` (no floor).

    ``torch.median`` takes the lower of the two middle values for an even count, as every
    caller did before this module existed.

    Example:
        >>> center, spread = robust_center_spread(torch.tensor([[1.0, 10.0], [2.0, 10.0], [4.0, 10.0]]), dim=0)
        >>> center.tolist(), [round(v, 4) for v in spread.tolist()]
        ([2.0, 10.0], [1.4826, 0.0])
    """
    if dim is None:
        center = x.median()
        return center, MAD_SCALE * (x - center).abs().median()
    center = x.median(dim=dim, keepdim=True).values
    spread = MAD_SCALE * (x - center).abs().median(dim=dim).values
    return center.squeeze(dim), spread


def robust_z(x: torch.Tensor, *, floor: float, relative_floor: float = 0.0) -> torch.Tensor:
    """Robust z-score of every value of ``x`` against all of ``x``.

    Args:
        x: the values (any shape; median and MAD over all of them).
        floor: least spread (``1.4826 * MAD``) divided by, so constant data gives finite scores.
        relative_floor: added to ``floor`` times ``|median|`` (a floor in the data's own scale).

    Example:
        >>> robust_z(torch.tensor([5.0, 5.0, 5.0, 6.0]), floor=0.5).tolist()
        [0.0, 0.0, 0.0, 2.0]
    """
    center, spread = robust_center_spread(x)
    least = floor + relative_floor * float(center.abs()) if relative_floor else floor
    return (x - center) / spread.clamp_min(least)
