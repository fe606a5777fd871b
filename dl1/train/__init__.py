"""Training any Keras model on directory batches: cached frozen features, checkpoints, clean stops, one
path in one process and under torchrun (``fit.fit_model``), schedules, the learning-rate finder and TTA."""
