"""Trainable stage: models, losses, Dice, the training loop and the Ray Tune trainable."""
