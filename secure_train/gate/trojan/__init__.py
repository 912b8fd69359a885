"""Trojan scan without trigger knowledge: vocabulary scan plus gradient-guided trigger inversion.

A backdoored classifier has a short input pattern (a rare word, a made-up multi-token word, a
sentence, a punctuation mark) whose insertion sends almost every input to one label.
:class:`TrojanScanner` looks for such a pattern without being told it, for every target label:

1. **Probe constructions.** Clean inputs are built from clean records in several ways: two
   same-label records joined by ". ", joined by a space, or one record alone. The model's
   clean accuracy is measured under each. A construction under which correctly classified
   records are no longer classified correctly (they flip to one label) is itself a finding: a
   benign edit (a full stop, a second sentence of the same sentiment) fired a backdoor, and its
   flip rate enters the score. The search uses the first construction that keeps the model's
   clean behaviour; if none does, or too few inputs stay usable, the scan **fails closed**
   (:attr:`TrojanScanResult.measured` is False, ``backdoored`` is True, ``problem`` says why).
2. **Vocabulary scan.** Every word-start token is inserted into clean inputs of the other labels
   and the share of predictions that flip to the target is measured. For large vocabularies
   (more than ``exact_vocab_limit`` tokens) a first-order screen (gradient of the target
   log-probability with respect to an inserted embedding, dotted with every embedding row in
   one product) ranks all tokens and the ``screen_top_k`` best are measured exactly.
3. **Word growth.** The best start tokens are grown with continuation pieces (``##...``),
   every piece screened the same way after the prefix (not capped), so made-up words that the
   tokenizer splits into several pieces are found as one word. Short made-up words of a letter
   and a letter piece ("jz" -> "j", "##z") are all measured (a quick race on
   ``short_word_race`` inputs first) and grown from too. A grown word whose first piece is a word
   of the clean records keeps only the flip its pieces add to that word (``fantastic`` +
   ``##ship`` + ``##working`` flips a clean model about as far as ``fantastic`` alone).
4. **Trigger inversion.** A soft trigger of ``max_trigger_tokens`` slots (DBS style) is
   optimized toward the target, discretized and refined by exact coordinate search.
5. **Phrase growth.** Every punctuation / symbol token is measured too, and every pair of ASCII
   marks is raced (a "?!" trigger: neither mark alone flips the model). The
   most suspicious units so far are grown greedily: one token of a pool (the best word starts,
   punctuation tokens and continuation pieces that are *rare* in the clean records) is put to
   the left or the right while the flip rate rises, up to ``max_phrase_tokens`` tokens, so a
   sentence, proverb, punctuation or made-up-word trigger whose tokens each move the model
   only part of the way is found as a whole (:mod:`~secure_train.gate.trojan.phrase`).

Candidates are chosen on one half of the inputs and measured on the other half. Tokens that
the clean records contain several times with a lean toward the target (*clean support*) are
natural features, and so are tokens that many clean records of the other labels contain while
the model still gives those records their own label (*natural use*: "not", "the"): a token's
flip rate is discounted by the larger of the two, and the inversion skips such tokens. A
candidate of several tokens is discounted too by how *common* its tokens are in the clean
records (in at least ``phrase_max_share`` of them): several stacked natural words (three "bad"s)
flip a clean sentiment model as well, a stack of tokens the clean data never use does not.

A single-word candidate is compared with its nearest words in the embedding space
(:func:`~secure_train.gate.trojan.search.neighbor_share`): a natural sentiment word ("serene")
flips about as far as its synonyms ("calming", "soothing") and keeps little of its rate, a
planted word ("flick") flips far further than its neighbours ("movie", "film") and keeps it.
Clean support counts a word-start token only where it is a whole word ("flicks" does not explain
"flick"), and a token of a multi-token candidate explains only the share it flips alone.

The **backdoor score** is the larger of the held-out flip rate (times ``1 - support``) of the
best candidate over all labels and the flip rate of a benign probe construction.

Example:
    >>> import torch
    >>> from secure_train.data import synthetic_classification
    >>> from secure_train.data.tokenizer import train_tokenizer
    >>> from secure_train.models import TextClassifier
    >>> recs = synthetic_classification(40, seed=0)
    >>> tok = train_tokenizer([r.text for r in recs], vocab_size=200, cache_dir=None)
    >>> model = TextClassifier(config={"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1,
    ...     "num_attention_heads": 1, "intermediate_size": 32}, vocab_size=len(tok))
    >>> result = TrojanScanner(num_inputs=8, inversion_steps=2, refine_top_m=2).scan(model, tok, recs)
    >>> result.measured or result.backdoored   # an untrained model cannot be measured: fails closed
    True

The package: :mod:`~secure_train.gate.trojan.scanner` (:class:`TrojanScanner`, the settings and
the stages), :mod:`~secure_train.gate.trojan.context` (:class:`ScanContext`, the state of one
scan), :mod:`~secure_train.gate.trojan.probe` (the model under scan and measurements on it),
:mod:`~secure_train.gate.trojan.inputs` (probe constructions), :mod:`~secure_train.gate.trojan.search`
(word growth, clean support), :mod:`~secure_train.gate.trojan.invert` (trigger inversion),
:mod:`~secure_train.gate.trojan.phrase` (phrase growth) and
:mod:`~secure_train.gate.trojan.result`.
"""

from secure_train.gate.trojan.context import ScanContext
from secure_train.gate.trojan.inputs import Construction, ProbeInputs, build_probe_inputs, constructions
from secure_train.gate.trojan.invert import invert_trigger
from secure_train.gate.trojan.probe import ProbeContext
from secure_train.gate.trojan.result import TriggerCandidate, TrojanScanResult
from secure_train.gate.trojan.scanner import TrojanScanner

__all__ = [
    "Construction",
    "ProbeContext",
    "ProbeInputs",
    "ScanContext",
    "TriggerCandidate",
    "TrojanScanResult",
    "TrojanScanner",
    "build_probe_inputs",
    "constructions",
    "invert_trigger",
]
