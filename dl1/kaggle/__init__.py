"""Kaggle: the official ``kaggle`` command as a subprocess, and submission files that Kaggle accepts."""
