"""SPEC §11 through the scorer (random-weight SyncNet, a 2-s synthetic clip), on both frame
paths: the rows a track keeps are the rows its numbers came from, each segment is §2 on
its rows, a segment covering the whole track equals the track bit for bit, the loudness is
that of the clip's samples, and the timeline is built."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import synth
from lipleak import _core
from lipleak.io.audio import load_audio
from lipleak.sync import SyncScorer, SyncSettings
from lipleak.sync.scorer import add_segments
from lipleak.sync.segments import segment_ranges


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return synth.make_clip(tmp_path_factory.mktemp("seg") / "talk.mp4", seed=3, seconds=2.0)


@pytest.fixture(scope="module")
def scored(model_dir, clip):
    done = {}

    def get(reference_frames: bool):
        if reference_frames not in done:
            s = SyncSettings(
                syncnet="syncnet_v2_random", reference_frames=reference_frames, segment=0.6, hop=0.4
            )
            done[reference_frames] = SyncScorer(s, keep_rows=True).score(clip)
        return done[reference_frames]

    return get


@pytest.mark.parametrize("reference_frames", [False, True], ids=["lossless", "reference-jpeg"])
def test_segments_of_a_scored_track(scored, clip, reference_frames):
    r = scored(reference_frames)
    (t,) = r.tracks
    whole = _core.sync_stats(t.distances)
    assert (whole["offset"], whole["lse_c"], whole["lse_d"]) == (t.offset, t.lse_c, t.lse_d)
    assert [(s.first_window, s.last_window) for s in t.segments] == segment_ranges(
        t.n_windows, 15, 10
    )
    samples = load_audio(clip).astype(np.float64)
    for s in t.segments:
        rows = t.distances[s.first_window : s.last_window + 1]
        mdist = rows.mean(axis=0)
        assert s.offset == 15 - int(np.argmin(mdist))
        assert s.lse_d == pytest.approx(mdist.min(), rel=1e-12)
        assert s.lse_c == pytest.approx(np.median(mdist) - mdist.min(), rel=1e-9, abs=1e-12)
        assert s.av_offset_ms == 40.0 * s.offset
        x = samples[s.start_frame * 640 : (s.end_frame + 1) * 640]
        assert s.rms_dbfs == pytest.approx(20 * math.log10(np.sqrt(np.mean(x**2)) / 32768))
    assert r.timeline["gate"]["name"] == "itu-bt1359"
    assert r.timeline["verdict"] in ("in_sync", "global_offset", "local_errors", "not_measurable")
    d = r.to_dict()
    assert "distances" not in d["tracks"][0] and len(d["tracks"][0]["segments"]) == len(t.segments)


@pytest.mark.parametrize("reference_frames", [False, True], ids=["lossless", "reference-jpeg"])
def test_a_segment_over_the_whole_track_is_the_track_bit_for_bit(scored, reference_frames):
    """The scorer's own segmenting step (``add_segments``) with a segment longer than the
    clip: one segment, the track's numbers to the last bit."""
    r = copy.deepcopy(scored(reference_frames))
    for t in r.tracks:
        t.segments = []  # add_segments fills only tracks without segments
    add_segments(r.tracks, r.n_frames, r.src_fps, SyncSettings(segment=10.0))
    (t,) = r.tracks
    (s,) = t.segments
    assert (s.first_window, s.last_window, s.start_frame) == (0, t.n_windows - 1, 0)
    assert (s.offset, s.lse_c, s.lse_d) == (t.offset, t.lse_c, t.lse_d)
