"""The face detections of a whole video, kept as a few flat arrays.

Detect mode detects faces on every frame before it tracks them (per shot). As a list of
per-frame tuples of small arrays that costs about 0.5 KB of Python objects per frame, 40
MB per hour of video; here it is the numbers alone (one face: 60 bytes a frame, 5 MB an
hour), in the detector's own dtypes, so that tracking sees exactly what it would have.
"""

from __future__ import annotations

import numpy as np

# (name, shape of one face's entry): what a detector gives per frame, in this order
FIELDS = (("boxes", (4,)), ("scores", ()), ("kps", (5, 2)))


class DetectionLog:
    """Append each frame's ``(boxes[n, 4], scores[n], kps[n, 5, 2])``; read back any
    range of frames as such tuples (views into the log)."""

    def __init__(self):
        self._counts = np.zeros(1024, np.int64)
        self._n_frames = 0
        self._n_faces = 0
        self._data: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self._n_frames

    def append(self, detection) -> None:
        parts = [
            np.asarray(detection[i]).reshape(-1, *shape) for i, (_, shape) in enumerate(FIELDS)
        ]
        n = len(parts[0])
        if self._n_frames == len(self._counts):
            self._counts = np.concatenate([self._counts, np.zeros_like(self._counts)])
        self._counts[self._n_frames] = n
        self._n_frames += 1
        if n == 0:
            return
        for (name, shape), part in zip(FIELDS, parts, strict=True):
            buf = self._data.get(name)
            if buf is None:
                buf = np.zeros((max(1024, n), *shape), part.dtype)
            elif buf.dtype != np.result_type(buf.dtype, part.dtype):  # widening is exact
                buf = buf.astype(np.result_type(buf.dtype, part.dtype))
            if self._n_faces + n > len(buf):
                grown = np.zeros((max(2 * len(buf), self._n_faces + n), *shape), buf.dtype)
                grown[: self._n_faces] = buf[: self._n_faces]
                buf = grown
            buf[self._n_faces : self._n_faces + n] = part
            self._data[name] = buf
        self._n_faces += n

    def __getitem__(self, frames: slice) -> list[tuple]:
        if not isinstance(frames, slice) or frames.step not in (None, 1):
            raise TypeError("a DetectionLog is read by ranges of frames: log[a:b]")
        start, stop, _ = frames.indices(self._n_frames)
        return self.frames(start, stop)

    def _offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self._counts[: self._n_frames])])

    def frames(self, start: int = 0, stop: int | None = None) -> list[tuple]:
        """Frames ``start .. stop - 1`` as the detector gave them."""
        stop = self._n_frames if stop is None else stop
        offsets = self._offsets()
        empty = {
            name: np.zeros(
                (0, *shape), self._data[name].dtype if name in self._data else np.float32
            )
            for name, shape in FIELDS
        }
        out = []
        for f in range(start, stop):
            a, b = offsets[f], offsets[f + 1]
            out.append(tuple(self._data[name][a:b] if b > a else empty[name] for name, _ in FIELDS))
        return out

    def arrays(self, start: int = 0) -> dict[str, np.ndarray]:
        """Frames ``start ..`` as flat arrays (a checkpoint part; ``extend`` undoes it)."""
        offsets = self._offsets()
        a = offsets[start]
        out = {"count": self._counts[start : self._n_frames].copy()}
        for name, shape in FIELDS:
            buf = self._data.get(name, np.zeros((0, *shape), np.float32))
            out[name] = buf[a : self._n_faces].copy()
        return out

    def extend(self, arrays: dict[str, np.ndarray]) -> None:
        """Append the frames of an ``arrays()`` result."""
        counts = np.asarray(arrays["count"], np.int64)
        if len(counts) == 0:
            return
        ends = np.cumsum(counts)[:-1]
        split = [np.split(np.asarray(arrays[name]), ends) for name, _ in FIELDS]
        for frame in zip(*split, strict=True):
            self.append(frame)
