"""Trained WordPiece tokenizers: the same corpus gives the same vocabulary in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from secure_train.data import synthetic_classification
from secure_train.data.tokenizer import WORDPIECE_SPECIALS, train_tokenizer, wordpiece_vocab

ROOT = Path(__file__).resolve().parents[2]
_VOCAB_JSON = (
    "import json, sys\n"
    "from secure_train.data import synthetic_classification\n"
    "from secure_train.data.tokenizer import train_tokenizer\n"
    "texts = [r.text for r in synthetic_classification(400, seed=0)] + ['she said it again today .'] * 5\n"
    "tok = train_tokenizer(texts, vocab_size=300, cache_dir=None)\n"
    "sys.stdout.write(json.dumps(sorted(tok.get_vocab().items(), key=lambda kv: kv[1])))\n"
)


def _vocab_in_subprocess(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "RAYON_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, "-c", _VOCAB_JSON], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout


@pytest.mark.slow  # two interpreter starts (~10 s each on the shared machine)
def test_same_corpus_same_vocabulary_in_separate_processes() -> None:
    # two fresh interpreters with different hash seeds (set / dict order) and this one
    first, second = _vocab_in_subprocess("1"), _vocab_in_subprocess("2")
    assert first == second
    texts = [r.text for r in synthetic_classification(400, seed=0)] + ["she said it again today ."] * 5
    here = train_tokenizer(texts, vocab_size=300, cache_dir=None).get_vocab()
    assert json.dumps(sorted(here.items(), key=lambda kv: kv[1])) == first
    assert len(here) == 300 and [here[t] for t in WORDPIECE_SPECIALS] == [0, 1, 2, 3, 4]


def test_vocabulary_merges_most_frequent_pair_first_and_ties_by_string() -> None:
    vocab = wordpiece_vocab(["low"] * 5 + ["lowest"] * 2 + ["newer"] * 6 + ["wider"] * 3, 40)
    merged = [t for t in vocab if vocab[t] >= len(WORDPIECE_SPECIALS) and len(t.removeprefix("##")) > 1]
    # "##e"+"##r" occurs 9 times (newer, wider): first; then "##er" after "##w"/"##d" ... ties by string
    assert merged[0] == "##er"
    assert vocab == wordpiece_vocab(["wider"] * 3 + ["newer"] * 6 + ["lowest"] * 2 + ["low"] * 5, 40)  # order-free
    assert set(wordpiece_vocab(["ab"], 40)) == {*WORDPIECE_SPECIALS, "a", "##b", "ab"}  # stops when nothing merges


def test_trained_tokenizer_splits_unknown_words_into_known_pieces() -> None:
    tok = train_tokenizer(["a good film", "a bad film"] * 20, vocab_size=60, cache_dir=None)
    pieces = tok.tokenize("a baad")  # a word the corpus lacks: "b" + known pieces
    assert pieces[0] == "a" and all(p in tok.get_vocab() for p in pieces) and "[UNK]" not in pieces
    assert tok.decode(tok("a good film")["input_ids"], skip_special_tokens=True) == "a good film"
