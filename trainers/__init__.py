"""Backbone Arena's training and inference package.

Importing it registers the seed reports' networks with timm (trainers/custom_models.py), so every tool
that imports any `trainers.*` module can create them and load their run folders.
"""

from trainers import custom_models  # noqa: F401  (registers the models with timm)
