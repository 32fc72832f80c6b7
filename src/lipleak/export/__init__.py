"""Checkpoint -> ONNX -> TensorRT export (needs the `export` extra: torch, onnx).

Installed as ``lipleak.export``; run the scripts with ``python -m lipleak.export.<name>``.
"""
