"""Attacks used to train and measure defenses: backdoor triggers and payload insertion."""

from secure_train.attacks.backdoor import (
    ADDSENT_SENTENCE,
    BADNETS_WORDS,
    BackdoorPoisoning,
    Trigger,
    make_trigger,
    triggered_records,
)
from secure_train.attacks.insertion import POSITIONS, insert

__all__ = [
    "ADDSENT_SENTENCE",
    "BADNETS_WORDS",
    "POSITIONS",
    "BackdoorPoisoning",
    "Trigger",
    "insert",
    "make_trigger",
    "triggered_records",
]
