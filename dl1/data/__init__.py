"""Data: image decoding, directory batches, augmentation, data preparation and synthetic sets."""
