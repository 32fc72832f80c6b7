"""Where model files live.

LIPLEAK_MODEL_DIR (default: the user cache, ~/.cache/lipleak/models or
$XDG_CACHE_HOME/lipleak/models) holds fetched checkpoints and the ONNX/TensorRT files
derived from them.
"""

from __future__ import annotations

import os
from pathlib import Path


def model_dir() -> Path:
    env = os.environ.get("LIPLEAK_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "lipleak" / "models"
