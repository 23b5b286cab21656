"""fgi: a reproducible pipeline for foreground-guided facial inpainting.

Reproduces Jam et al., *Foreground-guided Facial Inpainting with Fidelity
Preservation*, and compares it with Context Encoder, Partial Convolutions and
Gated Convolutions under one protocol. Nothing in this package knows about
DVC; MLflow is used only through `fgi.tracking`.
"""

__version__ = "0.1.0"
