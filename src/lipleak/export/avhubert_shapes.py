"""AV-HuBERT's modality modes, tensor names and shapes, and ONNX file names, torch-free:
imported by the exporter and by the scoring side alike (as ``syncnet_shapes``)."""

from __future__ import annotations

MODES = ("audio", "video", "av")
VIDEO_INPUT = "video"  # B×1×T×88×88 float32, normalised grayscale mouth ROI
AUDIO_INPUT = "audio"  # B×104×T float32, 4 stacked 26-d log filterbanks per video frame
FEATURES_OUTPUT = "features"  # B×T×D float32
ROI_SIZE = 88  # av_hubert's centre crop of the 96×96 mouth ROI
AUDIO_DIM = 104  # the published models' audio_feat_dim (26 filterbanks × stack of 4)


def mode_inputs(mode: str) -> tuple[str, ...]:
    """The ONNX input names of ``mode``, in order."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return {"audio": (AUDIO_INPUT,), "video": (VIDEO_INPUT,), "av": (VIDEO_INPUT, AUDIO_INPUT)}[
        mode
    ]


def mode_file(mode: str) -> str:
    """The file name of ``mode``'s ONNX graph."""
    mode_inputs(mode)
    return f"avhubert_{mode}.onnx"
