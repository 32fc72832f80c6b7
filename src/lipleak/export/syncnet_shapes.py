"""What SyncNet v2 takes and gives (SPEC §2): window sizes, tensor shapes, tensor names.

The network in ``lipleak.export.syncnet`` fixes these numbers, so they live beside it;
this module imports nothing (no torch), so scoring reads them without the export extra.
"""

from __future__ import annotations

SAMPLES_PER_FRAME = 640  # 16 kHz audio / 25 fps video
MFCC_PER_FRAME = 4  # 100 Hz MFCC / 25 fps

WINDOW_FRAMES = 5  # video frames per window
CROP_SIZE = 224  # lip crops are CROP_SIZE x CROP_SIZE
MFCC_COEFFS = 13
WINDOW_MFCC = 20  # MFCC steps per window
EMBED_DIM = 1024

LIPS_SHAPE = (3, WINDOW_FRAMES, CROP_SIZE, CROP_SIZE)  # one window: BGR x frames x H x W
MFCC_SHAPE = (1, MFCC_COEFFS, WINDOW_MFCC)

# Tensor names of the exported towers: the exporter writes them, the runtime feeds them.
LIPS_INPUT = "lips"
MFCC_INPUT = "mfcc"
EMBEDDING_OUTPUT = "embedding"
# File names of the two towers inside one export folder (where that folder is, is
# lipleak.models.onnx_files' business).
TOWER_FILES = {"lips": "syncnet_lips.onnx", "audio": "syncnet_audio.onnx"}
# Revision of the exported graphs, part of the export folder's name: a model dir exported
# by an older release is exported again rather than read as this one. 2: the lip tower as
# its 2-D equivalent (lipleak.export.syncnet.planar_lip_cnn).
EXPORT_REVISION = 2
