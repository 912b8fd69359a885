"""Representation poison detectors: spectral signatures and activation clustering on a model's features.

``spectral`` (Tran et al., 2018) and ``clustering`` (activation clustering, Chen et al., 2018)
work on a model's features (:func:`extract_features`: [CLS] or mean-pooled last hidden
states), per label: spectral scores are squared projections on the top singular vector of the
centered features; activation clustering reduces features to ``n_components`` dimensions
(PCA), splits each label with 2-means and flags the smaller cluster when it holds less than
``max_cluster_share`` of the label and the split's silhouette is at least ``min_silhouette``.

Why our own and not IBM ART's ``SpectralSignatureDefense`` / ``ActivationDefence``: not because
ART's could not run here (they are numpy / scikit-learn and framework-agnostic), but because
of what they take and give. They take an ART classifier wrapper and the raw training set as one
array (one-hot labels) and compute the activations themselves through the wrapper's
``get_activations``; here the inputs are variable-length token batches of a Hugging Face model,
the features are extracted once by :func:`extract_features`, and the sanitizer needs per-record
scores and flags in record order for its chain-of-custody entry. The two algorithms are the
papers' and fit in a few dozen lines of torch, so we write them rather than add
``adversarial-robustness-toolbox`` as a dependency.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 8, generator=g); x[:10] += 6.0
    >>> s = spectral_signature_scores(x, torch.zeros(200, dtype=torch.long))
    >>> int((s.topk(10).indices < 10).sum())
    10
"""

from __future__ import annotations

import math
from typing import Any

import torch

from secure_train.core.require import require_choice, require_in_range, require_int

__all__ = ["activation_clustering_scores", "extract_features", "per_label", "spectral_signature_scores"]


def per_label(labels: torch.Tensor) -> list[torch.Tensor]:
    """The record indices of each label, labels in ascending order."""
    return [torch.nonzero(labels == y).flatten() for y in torch.unique(labels)]


def spectral_signature_scores(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Squared projection of each centered feature vector on its label's top singular vector,
    divided by the label's median score (so labels are comparable).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(200, 8, generator=g); x[:10] += 6.0
        >>> s = spectral_signature_scores(x, torch.zeros(200, dtype=torch.long))
        >>> int((s.topk(10).indices < 10).sum())
        10
    """
    feats = features.double()
    scores = torch.zeros(len(feats), dtype=torch.float64)
    for idx in per_label(labels):
        if len(idx) < 3:
            continue
        centered = feats[idx] - feats[idx].mean(0, keepdim=True)
        _, _, vh = torch.linalg.svd(centered, full_matrices=False)
        proj = (centered @ vh[0]) ** 2
        scores[idx] = proj / proj.median().clamp_min(1e-12)
    return scores.float()


def _kmeans2(x: torch.Tensor, generator: torch.Generator, iters: int = 50, restarts: int = 4) -> torch.Tensor:
    best, best_inertia = torch.zeros(len(x), dtype=torch.long), math.inf
    for _ in range(restarts):
        centers = x[torch.randperm(len(x), generator=generator)[:2]].clone()
        assign = torch.zeros(len(x), dtype=torch.long)
        for _ in range(iters):
            assign_new = torch.cdist(x, centers).argmin(1)
            if torch.equal(assign_new, assign) and _ > 0:
                break
            assign = assign_new
            for c in range(2):
                if (assign == c).any():
                    centers[c] = x[assign == c].mean(0)
        inertia = float(((x - centers[assign]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = assign.clone(), inertia
    return best


def _silhouette(x: torch.Tensor, assign: torch.Tensor, generator: torch.Generator, max_points: int = 2000) -> float:
    if len(x) > max_points:
        pick = torch.randperm(len(x), generator=generator)[:max_points]
        x, assign = x[pick], assign[pick]
    if assign.unique().numel() < 2:
        return 0.0
    d = torch.cdist(x, x)
    same = assign[:, None] == assign[None, :]
    n_same = same.sum(1).clamp_min(2) - 1
    a = (d * same).sum(1) / n_same
    b = (d * ~same).sum(1) / (~same).sum(1).clamp_min(1)
    return float(((b - a) / torch.maximum(a, b).clamp_min(1e-12)).mean())


def activation_clustering_scores(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    n_components: int = 10,
    max_cluster_share: float = 0.35,
    min_silhouette: float = 0.15,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, dict[int, dict[str, float]]]:
    """Activation clustering: ``(scores, flags, per-label details)``.

    The score of a record in the smaller cluster is 1 minus that cluster's share of its label
    (0 in the larger cluster); flags mark the smaller clusters that pass both tests.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(300, 16, generator=g); x[:30] += 4.0
        >>> _, flags, _ = activation_clustering_scores(x, torch.zeros(300, dtype=torch.long))
        >>> int(flags[:30].sum()), int(flags[30:].sum())
        (30, 0)
    """
    require_int("activation_clustering", "n_components", n_components, minimum=1)
    require_in_range("activation_clustering", "max_cluster_share", max_cluster_share, "(0, 1]")
    require_in_range("activation_clustering", "min_silhouette", min_silhouette, "[-1, 1]")
    gen = torch.Generator().manual_seed(seed)
    feats = features.float()
    scores = torch.zeros(len(feats))
    flags = torch.zeros(len(feats), dtype=torch.bool)
    details: dict[int, dict[str, float]] = {}
    for idx in per_label(labels):
        if len(idx) < 10:
            continue
        x = feats[idx] - feats[idx].mean(0, keepdim=True)
        q = min(n_components, x.shape[1], len(idx) - 1)
        u, s, _ = torch.pca_lowrank(x, q=q, center=False, niter=4)
        reduced = u * s
        assign = _kmeans2(reduced, gen)
        small = int(torch.bincount(assign, minlength=2).argmin())
        share = float((assign == small).float().mean())
        sil = _silhouette(reduced, assign, gen)
        in_small = assign == small
        scores[idx[in_small]] = 1.0 - share
        label = int(labels[idx[0]])
        details[label] = {"small_share": round(share, 4), "silhouette": round(sil, 4)}
        if share <= max_cluster_share and sil >= min_silhouette:
            flags[idx[in_small]] = True
    return scores, flags, details


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    loader: Any,
    *,
    pooling: str = "cls",
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, sample_ids)``: last-layer [CLS] (``pooling="cls"``) or mask-averaged
    (``"mean"``) hidden states of a Hugging Face model (or a secure-train model wrapping one as
    ``.model``) over a loader of secure-train batches."""
    require_choice("extract_features", "pooling", pooling, ("cls", "mean"))
    hf = getattr(model, "model", model)
    was_training = hf.training
    hf.eval()
    dev = torch.device(device) if device is not None else next(hf.parameters()).device
    feats, ids = [], []
    for batch in loader:
        inputs = {k: v.to(dev) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = hf(**inputs, output_hidden_states=True).hidden_states[-1]
        if pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
        feats.append(pooled.float().cpu())
        ids.append(batch["sample_id"].cpu())
    hf.train(was_training)
    return torch.cat(feats), torch.cat(ids)
