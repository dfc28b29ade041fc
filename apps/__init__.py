"""Backbone Arena apps: the Gradio demo and its helpers (model sources, Grad-CAM, face crop)."""
