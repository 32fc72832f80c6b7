"""How a video's offset / LSE-C / LSE-D come from its face tracks (``sync --tracks``)."""

from __future__ import annotations

import pytest

from lipleak.errors import LipleakError
from lipleak.sync import SyncSettings, TrackSync
from lipleak.sync.scorer import aggregate_tracks


def _track(start, end, offset, lse_c, lse_d):
    return TrackSync(start, end, end - start - 4, offset, lse_c, lse_d)


# a long, poorly synced track; a short, well synced one; a middle one
TRACKS = [
    _track(0, 299, 3, 2.0, 10.0),
    _track(10, 59, 1, 6.0, 7.0),
    _track(100, 199, -2, 4.0, 8.0),
]


def test_weighted_mean_is_todays_rule():
    offset, c, d = aggregate_tracks(TRACKS, "weighted-mean")
    assert offset == 3  # the longest track's
    assert c == pytest.approx((300 * 2.0 + 50 * 6.0 + 100 * 4.0) / 450)
    assert d == pytest.approx((300 * 10.0 + 50 * 7.0 + 100 * 8.0) / 450)


def test_best_takes_all_three_numbers_from_the_max_confidence_track():
    assert aggregate_tracks(TRACKS, "best") == (1, 6.0, 7.0)


def test_best_is_not_the_min_distance_track_when_they_differ():
    tracks = [_track(0, 99, 0, 5.0, 9.0), _track(0, 99, 2, 4.0, 6.0)]
    assert aggregate_tracks(tracks, "best") == (0, 5.0, 9.0)


def test_longest():
    assert aggregate_tracks(TRACKS, "longest") == (3, 2.0, 10.0)


def test_ties_go_to_the_earliest_track():
    tracks = [_track(0, 99, 1, 5.0, 8.0), _track(200, 299, 2, 5.0, 7.0)]
    assert aggregate_tracks(tracks, "best")[0] == 1
    assert aggregate_tracks(tracks, "longest")[0] == 1


def test_one_track_gives_the_same_numbers_under_every_rule():
    one = [_track(5, 80, -1, 3.5, 8.5)]
    assert {aggregate_tracks(one, r) for r in ("weighted-mean", "best", "longest")} == {
        (-1, 3.5, 8.5)
    }


def test_unknown_rule_is_refused():
    with pytest.raises(LipleakError, match="unknown tracks"):
        SyncSettings(tracks="median")
    with pytest.raises(ValueError):
        aggregate_tracks(TRACKS, "median")


def test_default_rule_keeps_the_settings_hash():
    default = SyncSettings(mode="detect")
    assert "tracks" not in default.hashed_dict()
    assert SyncSettings(mode="detect", tracks="weighted-mean").hash() == default.hash()
    best = SyncSettings(mode="detect", tracks="best")
    assert best.hashed_dict()["tracks"] == "best"
    assert best.hash() != default.hash()
    assert SyncSettings(mode="detect", tracks="longest").hash() != best.hash()


def test_cli_option_reaches_the_settings():
    import argparse

    from lipleak.commands.sync import add_sync_options, settings_from_args

    p = argparse.ArgumentParser()
    add_sync_options(p)
    assert settings_from_args(p.parse_args([])).tracks == "weighted-mean"
    assert settings_from_args(p.parse_args(["--tracks", "best"])).tracks == "best"
    with pytest.raises(SystemExit):
        p.parse_args(["--tracks", "median"])
