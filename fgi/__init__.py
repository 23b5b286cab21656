"""fgi: a reproducible pipeline for foreground-guided facial inpainting.

Reproduces Jam et al., *Foreground-guided Facial Inpainting with Fidelity
Preservation*, and compares it with Context Encoder, Partial Convolutions,
Gated Convolutions, LaMa and a biharmonic solver under one protocol. The package imports without DVC or an
MLflow server: stages/ runs it under DVC, and `fgi.tracking` logs to MLflow.
"""

__version__ = "0.1.0"
