"""Backbone Arena's training and inference package.

The source studies' networks (trainers/custom_models.py) are registered with timm by the modules that create
or load models (models.py, inference.py); the package itself imports nothing heavy.
"""
