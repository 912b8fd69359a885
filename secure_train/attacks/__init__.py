"""Attacks used to train and measure defenses: backdoor triggers, payload insertion, and the
prompt-injection / jailbreak families of the adversarial augmentation."""

from secure_train.attacks.adaptive import AdaptivePoisoning
from secure_train.attacks.backdoor import (
    ADDSENT_SENTENCE,
    BADNETS_WORDS,
    BackdoorPoisoning,
    Trigger,
    make_trigger,
    triggered_records,
)
from secure_train.attacks.corpora import (
    FAMILY_SPLIT,
    AttackCorpus,
    CorpusRecord,
    hard_negatives,
    multilingual_attacks,
)
from secure_train.attacks.families import FAMILIES, TEMPLATES, AttackExample, Template
from secure_train.attacks.generator import SENTIMENT_CUES, SENTIMENT_GOALS, AttackGenerator
from secure_train.attacks.insertion import POSITIONS, insert
from secure_train.attacks.obfuscation import OBFUSCATIONS, obfuscate
from secure_train.attacks.substitution import SubstitutionPoisoning

__all__ = [
    "ADDSENT_SENTENCE",
    "BADNETS_WORDS",
    "FAMILY_SPLIT",
    "FAMILIES",
    "OBFUSCATIONS",
    "POSITIONS",
    "SENTIMENT_CUES",
    "SENTIMENT_GOALS",
    "TEMPLATES",
    "AdaptivePoisoning",
    "AttackCorpus",
    "AttackExample",
    "AttackGenerator",
    "BackdoorPoisoning",
    "CorpusRecord",
    "SubstitutionPoisoning",
    "Template",
    "Trigger",
    "hard_negatives",
    "insert",
    "make_trigger",
    "multilingual_attacks",
    "obfuscate",
    "triggered_records",
]
