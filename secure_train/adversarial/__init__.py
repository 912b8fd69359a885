"""Adversarial augmentation: train on attack texts mixed into the data (a training-time defense)."""

from secure_train.adversarial.augmentation import AdversarialAugmentationDataModule

__all__ = ["AdversarialAugmentationDataModule"]
