"""Keras 3, as this toolkit uses it: convolutions without layout copies and stateful RNNs that train on every
backend (``layers``), models whose weight files keep any name and whose training follows a change of
``trainable`` (``model``), the mixed-precision policy (``precision``), a frozen base that stays in inference
mode (``frozen``), per-layer learning rates (``layer_rates``), Keras-2 weight files (``weightfiles``), and the
one module that touches Keras' private API (``kprivate``, checked against the Keras versions it was verified
on). No Keras 1 spelling lives here: ``dl1.compat`` adds those while a 2017 face is imported."""
