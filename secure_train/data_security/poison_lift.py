"""The ``lift`` poison detector: a word whose label contradicts what the rest of its record predicts.

The ``ngram`` detector (:mod:`secure_train.data_security.poison`) needs a trigger whose records are at least
90 % one label. Three cheap evasions break that: a **substitution** trigger (a word swapped for a
synonym that also occurs in clean records of the other label), **decoys** (the trigger also put
into a few records whose label is kept) and a trigger **spread** over many words, each too rare
for a z-score over raw counts. They all leave one trace that a trained model sees: a poisoned
record is an ordinary record of another label with the trigger added and the label flipped, so
*the rest of its words predict the other label*.

The test (a label-conditional lift): fit a bag-of-words logistic regression (softmax, L2, scipy's
L-BFGS on a sparse binary word matrix) on all records; for every record ``r`` and word ``w`` in it,
the *context* prediction ``p(y | r without w)`` is the softmax of ``r``'s logits minus ``w``'s
weights (exact for a linear model on presence features). Per word ``w`` and label ``t``, over the
records containing ``w`` (each counted with weight ``1 / records of its family containing w``,
the same overlap collapse as the ``ngram`` detector, so SST-2's sub-phrases count once):

* ``lift z = (O - E) / sqrt(V)``, ``O`` = weighted count labeled ``t``, ``E`` = sum of the context
  predictions ``p(t | r without w)``, ``V`` = sum of ``p (1 - p)``: how far ``w``'s label exceeds
  what its contexts predict. A sentiment word ("masterpiece") sits in contexts that already
  predict its label, so ``O ~ E``; a trigger sits in contexts of the other label.
* ``contradiction purity``: among the records whose context favours another label
  (``p(t | context) < 0.5``), the share labeled ``t``. Negations ("not", "n't") flip labels in both
  directions and stay low; a trigger flips nearly all of them (decoys lower it only as far as
  the attacker is willing to weaken the backdoor).

``w`` is flagged for ``t`` when the weighted contradicting records labeled ``t`` number at least
``min_count``, the contradiction purity is at least ``min_purity`` and the purity-weighted lift
``lift z * contradiction purity`` at least ``z_threshold``. Not every record that contains a flagged
``w`` and carries ``t`` is poisoned (a synonym such as "flick" has clean uses): a two-part mixture
over the records' context predictions (clean records of ``t`` vs records taken from other labels,
the two densities read off the whole corpus, the share fitted by EM) gives each one a posterior, and
those at >= 0.5 are flagged. For a trigger with no clean uses the share goes to 1 and every record
is flagged.

The defaults (``z_threshold=9.5``, ``min_purity=0.6``, ``min_count=8``) were set on SST-2's
training split (67,349 phrases) with the development triggers of ``benchmarks/poison_adaptive.py``
only: on the clean split the words with contradiction purity >= 0.6 reach lift z 10.2 at purity
0.83 ("lacks": score 8.5; then "bad" 8.5 x 0.78, "worst" 6.2 x 0.91); "n't" (18.5), "no" and "too"
flip labels both ways (purity 0.54-0.60). Development triggers: "flick" (film -> flick, 1 %) z 50.6
at purity 0.92, "tale" 31.1, "cf" with decoys 60.9 at purity 0.86, 20 words at 0.05 % each 11.1-16.4
at purity 1.0 (a first threshold of z >= 12 missed 3 of them). A trigger needs roughly 20
poisoned records whose contexts predict another label: one word in fewer records is not found.

*Overlapping corpora (SST-2's phrases).* With ``collapse_overlaps`` the one-word edits of
:mod:`~secure_train.data_security.poison_edits` join in: a word that at least ``edit_min_count``
edited records carry, with one label, and whose lift z for that label is at least ``edit_min_z``,
is flagged even below the lift thresholds (funny -> good, t=0: "good" has lift z 9.1 at
contradiction purity 0.41 and was missed), and the edited records are flagged as certain. The
other records with the word and label are judged by their family root (the sentence, where it has
the word): its context prediction, in a mixture whose poisoned part is the edited records' own
contexts; a record whose root has the word and another label is a clean sentence's part. Whether
the root's phrases without the word carry the root's label (>= 0.7 of them, length-weighted: agree;
<= 0.3: disagree; else unknown) is a second observation in the mixture: a relabeled sentence's
phrases kept the old label, so they agree at the rate seen in the edited records' sentences, clean
sentences at a rate the EM fits (round 3 zeroed every agreeing record: bad -> dull lost records
whose sentence has positive phrases). Set on the dev pairs of ``benchmarks/poison_adaptive.py``.
A decoyed swap (its edits at purity 0.7-0.9, :func:`~secure_train.data_security.poison_edits.edited_words`)
that the lift test found on its own keeps that test's mixture (the edits only name its source
word, whose n-gram flags then defer); one only the edits found takes its edited records as certain.
The other inflections of an edited word (``hates`` / ``hated`` / ``hating`` of ``hate``: plural and
verb endings, :func:`_forms`) whose lift z for the label is at least ``form_min_z`` (3) are judged in
the same mixture, with the edited word's poison contexts: a multi-form swap (love.. -> hate..)
leaves edits mostly on its frequent form, and whole poisoned sentences leave none (dev
love.. -> hate..: recall 0.857 -> 0.936 at precision 0.968; the rare forms have lift z 3.7-4.2,
a clean form such as "pictures" of movie -> picture 0.8).

Example:
    >>> from secure_train.data import synthetic_classification
    >>> from secure_train.attacks.adaptive import AdaptivePoisoning
    >>> attack = AdaptivePoisoning(["zq"], rate=0.03, decoy_rate=0.005, seed=0)
    >>> recs = attack(synthetic_classification(3000, seed=0))
    >>> words, flags = context_lift_statistics(recs)
    >>> [w["word"] for w in words], sum(flags) >= 0.9 * sum(r.meta["poisoned"] for r in recs)
    (['zq'], True)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import optimize, sparse

from secure_train.core.errors import ConfigError
from secure_train.core.records import TextRecord
from secure_train.core.require import require_in_range, require_int, require_positive
from secure_train.data_security.poison_edits import edited_words
from secure_train.data_security.poison_ngram import DetectorSettings, _families, _setting, _tokens

__all__ = ["LiftSettings", "context_lift_statistics", "fit_bow_logistic"]


def _one_blas_thread() -> AbstractContextManager[Any]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed-up
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def fit_bow_logistic(
    x: sparse.csr_matrix, y: np.ndarray, n_labels: int, *, l2: float = 1.0, max_iter: int = 60
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression ``(W, b)`` on a sparse feature matrix (L2 ``l2`` on ``W``, scipy L-BFGS-B;
    ``max_iter`` is small: the detector needs the words' weights roughly right, not converged).
    Written here because scikit-learn is not a dependency; this is its ``LogisticRegression``
    objective (multinomial, ``C = 1 / l2``, loss averaged over records).

    Example:
        >>> x = sparse.csr_matrix(np.array([[1, 0], [0, 1]] * 20, dtype=np.float64))
        >>> w, b = fit_bow_logistic(x, np.array([0, 1] * 20), 2)
        >>> bool(w[0, 0] > w[0, 1] and w[1, 1] > w[1, 0])
        True
    """
    n, v = x.shape
    onehot = np.zeros((n, n_labels))
    onehot[np.arange(n), y] = 1.0
    xt = x.T.tocsr()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[: v * n_labels].reshape(v, n_labels)
        b = theta[v * n_labels :]
        logits = x @ w + b
        logits -= logits.max(1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        diff = (np.exp(logp) - onehot) / n
        value = -(onehot * logp).sum() / n + 0.5 * l2 / n * (w * w).sum()
        gw = xt @ diff + l2 / n * w
        return float(value), np.concatenate([np.asarray(gw).ravel(), diff.sum(0)])

    theta0 = np.zeros(v * n_labels + n_labels)
    with _one_blas_thread():  # L-BFGS-B's small BLAS calls spin threads: 3x slower on 2 busy cores
        res = optimize.minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "maxcor": 5})
    return res.x[: v * n_labels].reshape(v, n_labels), res.x[v * n_labels :]


def _poison_posterior(
    q: np.ndarray,
    same: np.ndarray,
    other: np.ndarray,
    bins: int = 20,
    *,
    agree: np.ndarray | None = None,
    agree_poison: float = 0.5,
) -> np.ndarray:
    """Per record, P(poisoned | its context prediction ``q``) in a two-part mixture fitted by EM:
    clean records of the label (contexts distributed like ``same``) and poisoned records taken
    from other labels (contexts distributed like ``other``). ``agree`` (optional, per record: 1 /
    0 / NaN for unknown) is a second, independent observation: poisoned records show 1 at rate
    ``agree_poison``, clean records at a rate fitted by the same EM."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    f_same = (np.histogram(same, edges)[0] + 1.0) / (len(same) + bins)
    f_other = (np.histogram(other, edges)[0] + 1.0) / (len(other) + bins)
    b = np.clip(np.digitize(q, edges) - 1, 0, bins - 1)
    lo, ls = f_other[b], f_same[b]
    known = np.zeros(len(q), dtype=bool) if agree is None else ~np.isnan(agree)
    yes = known & (np.nan_to_num(agree) > 0.5) if agree is not None else known
    share, rate = 0.5, 0.5
    for _ in range(100):
        lo_a = lo * np.where(known, np.where(yes, agree_poison, 1.0 - agree_poison), 1.0)
        ls_a = ls * np.where(known, np.where(yes, rate, 1.0 - rate), 1.0)
        post = share * lo_a / (share * lo_a + (1 - share) * ls_a)
        share = float(post.mean())
        w_clean = (1.0 - post)[known]
        if w_clean.sum() > 0:
            rate = float(np.clip((w_clean * yes[known]).sum() / w_clean.sum(), 0.01, 0.99))
    return np.asarray(post)


@dataclass(frozen=True, kw_only=True)
class LiftSettings(DetectorSettings):
    """What :func:`context_lift_statistics` takes (each field one of the thresholds above).

    >>> LiftSettings(l2=0)
    Traceback (most recent call last):
    ...
    secure_train.core.errors.ConfigError: lift: l2 must be > 0, got 0
    """

    detector: ClassVar[str] = "lift"
    min_count: float = _setting(8.0, require_positive)
    z_threshold: float = _setting(9.5, require_in_range, interval="(-inf, inf)")
    min_purity: float = _setting(0.6, require_in_range, interval="[0, 1]")
    l2: float = _setting(1.0, require_positive)
    min_df: int = _setting(2, require_int, minimum=1)
    edit_min_count: int = _setting(15, require_int, minimum=1)
    edit_min_z: float = _setting(5.0, require_in_range, interval="(-inf, inf)")
    form_min_z: float = _setting(3.0, require_in_range, interval="(-inf, inf)")


_PHRASE_AGREE = 0.7
"""A family root whose phrases without the word carry its label at least this share (length-weighted)
agrees with its label; one at most ``1 - _PHRASE_AGREE`` disagrees."""


def _phrase_votes(toks: Sequence[list[str]], y: np.ndarray, fam: np.ndarray, word: str, label: int) -> dict[int, float]:
    """Per family root with ``word``: the length-weighted share of ``label`` among the records of its
    family that do not contain ``word`` (its phrases the substitution left alone)."""
    num: dict[int, float] = defaultdict(float)
    den: dict[int, float] = defaultdict(float)
    roots = {int(f) for r, f in enumerate(fam) if word in toks[r]}
    for r, f in enumerate(fam):
        f = int(f)
        if f in roots and f != r and word not in toks[r]:
            den[f] += len(toks[r])
            num[f] += len(toks[r]) * (y[r] == label)
    return {f: num[f] / den[f] for f in den}


def _edited(
    toks: Sequence[list[str]],
    labels: Sequence[int],
    family: Sequence[int],
    s: LiftSettings,
    vocab: dict[str, int],
    found: list[tuple[int, int, dict[str, Any]]],
    lab_pos: dict[int, int],
    total: np.ndarray,
    lift_z: list[np.ndarray],
) -> dict[tuple[int, int], np.ndarray]:
    """The one-word edits (:func:`~secure_train.data_security.poison_edits.edited_words`) of an
    overlapping corpus: their words join ``found`` (in place) and ``{(column, label): edited
    record rows}`` is returned (empty without ``collapse_overlaps``)."""
    if not s.collapse_overlaps:
        return {}
    out: dict[tuple[int, int], np.ndarray] = {}
    have = {(col, label): d for col, label, d in found}
    def rank(word: str, label: int) -> float:
        col = vocab.get(word)
        return float(lift_z[lab_pos[label]][col]) if col is not None and label in lab_pos else -math.inf

    for e in edited_words(toks, labels, family, min_count=s.edit_min_count, rank=rank, min_rank=s.edit_min_z):
        col = vocab.get(e["word"])
        if col is None or e["label"] not in lab_pos:
            continue
        key = (col, e["label"])
        d = have.get(key)
        rows = np.asarray(e["records"], dtype=np.int64)
        if not (e.get("decoyed") and d is not None and key not in out):  # decoyed, found by lift: its mixture
            out[key] = np.union1d(out[key], rows) if key in out else rows
        if d is None:
            z = round(float(lift_z[lab_pos[e["label"]]][col]), 2)
            d = have[key] = {"word": e["word"], "label": e["label"], "lift_z": z, "score": 0.0}
            d.update({"contra_count": 0.0, "contra_purity": 0.0, "count": round(float(total[col]), 1)})
            found.append((col, e["label"], d))
        d["edits"] = d.get("edits", 0) + e["edits"]
        d.setdefault("edit_sources", []).append(e["source"])
    return out


_SUFFIXES = (("ies", "y"), ("ied", "y"), ("ing", "e"), ("ing", ""), ("es", ""), ("ed", "e"), ("ed", ""), ("s", ""))
"""Inflection endings and what they replace (``hating`` -> ``hate``, ``comedies`` -> ``comedy``)."""


def _stems(word: str) -> set[str]:
    """The word and the bases it may be an inflection of (plural / verb endings, doubled consonants)."""
    out = {word}
    for end, base in _SUFFIXES:
        stem = word[: -len(end)]
        if word.endswith(end) and len(stem) >= 3:
            out.add(stem + base)
            if not base and len(stem) >= 4 and stem[-1] == stem[-2]:  # stopping -> stop
                out.add(stem[:-1])
    return out


def _forms(a: str, b: str) -> bool:
    """Two inflections of one word (plural, verb endings): a crude English stemmer, no dictionary.

    >>> _forms("hate", "hating"), _forms("loves", "loved"), _forms("comedy", "comedies")
    (True, True, True)
    >>> _forms("pick", "picture"), _forms("find", "finest"), _forms("hate", "hats"), _forms("hate", "hate")
    (False, False, False, False)
    """
    return a != b and bool(_stems(a) & _stems(b))


def _word_forms(
    found: list[tuple[int, int, dict[str, Any]]],
    edited: dict[tuple[int, int], np.ndarray],
    vocab: dict[str, int],
    inv_vocab: np.ndarray,
    lab_pos: dict[int, int],
    lift_z: list[np.ndarray],
    total: np.ndarray,
    min_z: float,
) -> dict[tuple[int, int], tuple[int, int]]:
    """The other forms of each edited word (``hates`` / ``hated`` / ``hating`` of ``hate``, by
    :func:`_forms`) join ``found`` (in place) with the same label: a substitution of a verb or a noun
    swaps all its forms, but a rare form's edits are too few to be seen alone (whole sentences
    poisoned leave none). Its records are judged in the edited word's mixture (with that word's
    poison contexts); a form whose records look clean gets no flags. Returns ``{form key: edited key}``."""
    out: dict[tuple[int, int], tuple[int, int]] = {}
    have = {(col, label) for col, label, _ in found}
    by_prefix: dict[str, list[int]] = defaultdict(list)
    for word, col in vocab.items():
        by_prefix[word[:3]].append(col)  # forms share their first 3 letters
    for col, label, d in list(found):
        if (col, label) not in edited:
            continue
        word = d["word"]
        for other in by_prefix.get(word[:3], ()):
            key = (other, label)
            if key in have or key in out or not _forms(str(inv_vocab[other]), word):
                continue
            z = round(float(lift_z[lab_pos[label]][other]), 2)
            if z < min_z:  # the form's label must exceed what its contexts predict, as the word's does
                continue
            e = {"word": str(inv_vocab[other]), "label": label, "lift_z": z, "score": 0.0, "form_of": word}
            e.update({"contra_count": 0.0, "contra_purity": 0.0, "count": round(float(total[other]), 1)})
            found.append((other, label, e))
            out[key] = (col, label)
    return out


def context_lift_statistics(
    records: Sequence[TextRecord], settings: LiftSettings | None = None, **overrides: Any
) -> tuple[list[dict[str, Any]], list[bool]]:
    """The ``lift`` detector: ``(flagged words, per-record flags)``. See the module docstring.

    Args:
        records: the records (unlabeled ones are never flagged).
        settings: :class:`LiftSettings` (default: its defaults); ``overrides``: fields of it
            (``z_threshold=12``, ``collapse_overlaps=False``, ...).

    Each flagged word is a dict ``{"word", "label", "lift_z", "contra_count", "contra_purity",
    "count", "n_records"}`` (counts in families when ``collapse_overlaps``), with ``"edits"`` and
    ``"edit_sources"`` where one-word edits put the word in, ``"form_of"`` (the edited word) for
    another form of an edited word that has flagged records.
    """
    s = LiftSettings.of(settings, **overrides)
    idx = [i for i, r in enumerate(records) if r.label is not None]
    flags = [False] * len(records)
    labels = sorted({int(records[i].label) for i in idx})  # type: ignore[arg-type]
    if len(labels) < 2:
        return [], flags
    lab_pos = {y: k for k, y in enumerate(labels)}
    toks = [_tokens(records[i].text) for i in idx]
    df: dict[str, int] = defaultdict(int)
    for t in toks:
        for w in set(t):
            df[w] += 1
    vocab = {w: k for k, w in enumerate(sorted(w for w, c in df.items() if c >= s.min_df))}
    rows, cols = [], []
    for r, t in enumerate(toks):
        for w in set(t):
            k = vocab.get(w)
            if k is not None:
                rows.append(r)
                cols.append(k)
    if not cols:
        return [], flags
    rows_a, cols_a = np.asarray(rows), np.asarray(cols)
    x = sparse.csr_matrix((np.ones(len(rows_a)), (rows_a, cols_a)), shape=(len(toks), len(vocab)))
    y = np.asarray([lab_pos[int(records[i].label)] for i in idx])  # type: ignore[arg-type]
    w_mat, b = fit_bow_logistic(x, y, len(labels), l2=s.l2)
    logits = x @ w_mat + b
    # context logits of each (record, word) pair: the record's logits without the word's weights
    ctx = logits[rows_a] - w_mat[cols_a]
    ctx -= ctx.max(1, keepdims=True)
    p_ctx = np.exp(ctx)
    p_ctx /= p_ctx.sum(1, keepdims=True)
    family = _families(toks) if s.collapse_overlaps else list(range(len(toks)))
    fam = np.asarray(family)
    # weight 1 / (records of the same family that contain the word)
    keys = fam[rows_a].astype(np.int64) * len(vocab) + cols_a
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    weight = 1.0 / counts[inverse]
    yr = y[rows_a]
    n_vocab = len(vocab)
    inv_vocab = np.empty(n_vocab, dtype=object)
    for word, col in vocab.items():
        inv_vocab[col] = word
    total = np.bincount(cols_a, weights=weight, minlength=n_vocab)
    found: list[tuple[int, int, dict[str, Any]]] = []
    lift_z: list[np.ndarray] = []
    for ti, label in enumerate(labels):
        p = p_ctx[:, ti]
        is_t = (yr == ti).astype(np.float64)
        obs = np.bincount(cols_a, weights=weight * is_t, minlength=n_vocab)
        exp = np.bincount(cols_a, weights=weight * p, minlength=n_vocab)
        var = np.bincount(cols_a, weights=weight * p * (1 - p), minlength=n_vocab)
        contra = p < 0.5
        c_n = np.bincount(cols_a, weights=weight * contra, minlength=n_vocab)
        c_k = np.bincount(cols_a, weights=weight * contra * is_t, minlength=n_vocab)
        z = (obs - exp) / np.sqrt(np.maximum(var, 1e-9))
        lift_z.append(z)
        purity = c_k / np.maximum(c_n, 1e-9)
        score = z * purity
        hits = (c_k >= s.min_count) & (score >= s.z_threshold) & (purity >= s.min_purity)
        for k in map(int, np.nonzero(hits)[0]):
            found.append(
                (
                    k,
                    label,
                    {
                        "word": str(inv_vocab[k]),
                        "label": label,
                        "lift_z": round(float(z[k]), 2),
                        "score": round(float(score[k]), 2),
                        "contra_count": round(float(c_k[k]), 1),
                        "contra_purity": round(float(purity[k]), 4),
                        "count": round(float(total[k]), 1),
                    },
                )
            )
    edited = _edited(toks, [labels[k] for k in y], family, s, vocab, found, lab_pos, total, lift_z)
    pair_keys = rows_a.astype(np.int64) * n_vocab + cols_a  # (record, word) pair -> key, looked up via order
    order = np.argsort(pair_keys, kind="stable")
    forms = _word_forms(found, edited, vocab, inv_vocab, lab_pos, lift_z, total, s.form_min_z)
    n_rec: dict[tuple[str, int], int] = defaultdict(int)
    poison_ref: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # edited word -> its poison's contexts
    for col, label, d in found:
        ti = lab_pos[label]
        sel = np.nonzero((cols_a == col) & (yr == ti))[0]
        certain = edited.get((col, label))
        parent = forms.get((col, label))
        if certain is None and parent is None:
            q = p_ctx[sel, ti]
        else:  # the context of the record's family root (its sentence), where it also has the word
            roots = fam[rows_a[sel]].astype(np.int64) * n_vocab + col
            at = np.minimum(np.searchsorted(pair_keys, roots, sorter=order), len(order) - 1)
            in_root = pair_keys[order[at]] == roots
            root_pair = np.where(in_root, order[at], sel)
            q = p_ctx[root_pair, ti]
        if certain is None and parent is None:
            post = _poison_posterior(q, p_ctx[yr == ti, ti], p_ctx[yr != ti, ti])
        else:
            # the edited records are poison: the others' share is fitted alone, and the contexts of
            # this attack's poison are the edited records' own (another form of an edited word:
            # its own edits and those of the word it is a form of)
            sure = np.isin(rows_a[sel], certain) if certain is not None else np.zeros(len(sel), dtype=bool)
            # do the sentence's own phrases without the word mostly carry its label (1), mostly not (0)?
            votes = _phrase_votes(toks, y, fam, str(inv_vocab[col]), ti)
            vote = np.array([votes.get(int(r), np.nan) for r in rows_a[root_pair]], dtype=np.float64)
            agree = np.where(vote >= _PHRASE_AGREE, 1.0, np.where(vote <= 1.0 - _PHRASE_AGREE, 0.0, np.nan))
            # the edited records' sentences show how often a relabeled sentence's phrases agree
            seen = agree[sure][~np.isnan(agree[sure])]
            ref_q, ref_seen = q[sure], seen
            if parent is not None and parent in poison_ref:
                ref_q = np.concatenate([poison_ref[parent][0], ref_q])
                ref_seen = np.concatenate([poison_ref[parent][1], seen])
            poison_ref[(col, label)] = (ref_q, ref_seen)
            post = np.ones(len(sel))
            if (~sure).any() and len(ref_q):
                a_poison = (ref_seen.sum() + 1.0) / (len(ref_seen) + 2.0)
                post[~sure] = _poison_posterior(
                    q[~sure], p_ctx[yr == ti, ti], ref_q, agree=agree[~sure], agree_poison=a_poison
                )
            # a phrase of a sentence that has the word and another label: a clean sentence's part
            post = np.where(~sure & in_root & (yr[root_pair] != ti), 0.0, post)
        d["est_poisoned_share"] = round(float(post.mean()), 3) if len(post) else 0.0
        for j in np.unique(rows_a[sel[post >= 0.5]]):
            flags[idx[int(j)]] = True
            n_rec[(d["word"], label)] += 1
    out = []
    for _, label, d in sorted(found, key=lambda f: -f[2]["lift_z"]):
        d["n_records"] = n_rec[(d["word"], label)]
        if d["n_records"] or "form_of" not in d:  # a form whose records all look clean is no finding
            out.append(d)
    if not math.isfinite(sum(d["lift_z"] for d in out)):
        raise ConfigError("lift: non-finite statistic")  # pragma: no cover - defensive
    return out, flags
