"""The leaderboard store: one SQLite row per run folder (see store.py) and its CLI (`python -m leaderboard`)."""
