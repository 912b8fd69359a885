"""A learned prompt-injection / jailbreak detector that does not learn length.

:class:`DetectorTrainer` fits an :class:`InjectionDetector` (hashed word and character n-grams
over word windows, max over windows) on attack and benign texts; :class:`DetectorCorpus` builds
the dev / held-out data from public attack corpora (:mod:`secure_train.attacks.corpora`) and
benign hard negatives; :class:`SentenceEncoder` optionally adds a frozen pretrained encoder's
window embeddings (e.g. MiniLM-L6) to the n-gram features. The detector saves as a signed
folder (safetensors + JSON) and serves as ``secure-train detector train|score``, a scanner
backend (``secure-train scan --scanners injection-model=PATH``) and a gate check
(``injection_detector``). See ``docs/detector.md``.
"""

from secure_train.data_security.detector.corpus import DetectorCorpus
from secure_train.data_security.detector.encoder import SentenceEncoder
from secure_train.data_security.detector.features import NgramHasher
from secure_train.data_security.detector.model import InjectionDetector
from secure_train.data_security.detector.trainer import DetectorTrainer

__all__ = ["DetectorCorpus", "DetectorTrainer", "InjectionDetector", "NgramHasher", "SentenceEncoder"]
