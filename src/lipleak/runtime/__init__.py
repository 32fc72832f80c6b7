"""Models behind one interface: an ONNX file in, batches of arrays out.

``open_model`` picks a backend (``select.py``) from what ``probe.py`` finds on the
machine. Importing this package imports no inference library: onnxruntime and TensorRT
are imported when a model is opened on them.
"""

from .base import Runtime, RuntimeInfo, TensorSpec
from .select import BACKENDS, available_backends, open_model

__all__ = ["BACKENDS", "Runtime", "RuntimeInfo", "TensorSpec", "available_backends", "open_model"]
