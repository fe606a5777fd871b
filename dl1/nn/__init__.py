"""Keras 3, as this toolkit uses it: layers without layout copies on PyTorch, models whose weight files
keep any name, optimizers whose learning rate can be changed live, and the one module that touches
Keras' private API (``dl1.nn.kprivate``, checked against the Keras versions it was verified on)."""
