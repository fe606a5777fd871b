"""Training any Keras model on directory batches: cached frozen features, checkpoints, clean stops."""
