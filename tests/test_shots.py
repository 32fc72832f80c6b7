"""Shots (SPEC §10): cuts as PySceneDetect finds them on the file, faces tracked per shot.

The oracle is scenedetect itself run the reference's way (``run_pipeline.py``
``scene_detect``: its own decoder through ``VideoManager``, ``ContentDetector()``
defaults, ``set_downscale_factor()``, a ``StatsManager``); ours feeds the same detector
this project's decoded frames. Videos are made here from the shared real clips.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import CLIPS_DIR
from lipleak.faces.shots import ShotDetector, shots_from_cuts, whole_video
from lipleak.faces.track import track_shots
from lipleak.io.frames import iter_frames
from media import write_video
from track_oracle import reference_track_shot


def _frames(name: str, start: int, stop: int, size: tuple[int, int] = (320, 320)) -> list:
    out = []
    for i, f in enumerate(iter_frames(CLIPS_DIR / name, fps=25.0)):
        if i >= stop:
            break
        if i >= start:
            out.append(cv2.resize(f, size, interpolation=cv2.INTER_AREA))
    return out


def _fade(a, b, n: int) -> list:
    return [cv2.addWeighted(a, 1 - t / n, b, t / n, 0) for t in range(1, n)]


def _letterbox(frames, w: int, h: int) -> list:
    out = []
    for f in frames:
        canvas = np.zeros((h, w, 3), np.uint8)
        side = min(w, h)
        x = (w - side) // 2
        canvas[:, x : x + side] = cv2.resize(f, (side, side), interpolation=cv2.INTER_LINEAR)
        out.append(canvas)
    return out


def _videos() -> dict[str, list]:
    aoc = _frames("real03_aoc.mp4", 0, 50)
    glasses = _frames("real04_woman_glasses.mp4", 0, 50)
    anchor = _frames("real05_cnn_anchor.mp4", 0, 50)
    reagan = _frames("real07_reagan.mp4", 0, 50)
    return {
        # hard cuts between four different people
        "four_speakers": aoc + glasses + anchor + reagan,
        # one person, a jump cut to a later shot of the same camera
        "same_person": _frames("real05_cnn_anchor.mp4", 0, 60)
        + _frames("real05_cnn_anchor.mp4", 150, 210),
        # a 12-frame cross-fade and a fast 3-frame dissolve
        "cross_fades": aoc
        + _fade(aoc[-1], glasses[0], 12)
        + glasses
        + _fade(glasses[-1], anchor[0], 3)
        + anchor,
        "no_cut": _frames("real08_feifeili.mp4", 0, 100),
        # a shot shorter than ContentDetector's min_scene_len between two long ones
        "flash_shot": aoc + glasses[:8] + reagan,
        # 1280x720: scenedetect downscales by 5 (max side / 256)
        "hd_cuts": _letterbox(reagan[:40] + aoc[:40] + anchor[:40], 1280, 720),
    }


@pytest.fixture(scope="module")
def shot_videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("shots")
    return {name: write_video(d / f"{name}.mp4", frames) for name, frames in _videos().items()}


def reference_scene_list(path) -> list[tuple[int, int]]:
    """syncnet_python's scene_detect on ``path``: [(first frame, end frame exclusive)]."""
    from scenedetect.detectors import ContentDetector
    from scenedetect.scene_manager import SceneManager
    from scenedetect.stats_manager import StatsManager
    from scenedetect.video_manager import VideoManager

    video_manager = VideoManager([str(path)])
    scene_manager = SceneManager(StatsManager())
    scene_manager.add_detector(ContentDetector())
    base_timecode = video_manager.get_base_timecode()
    video_manager.set_downscale_factor()
    video_manager.start()
    scene_manager.detect_scenes(frame_source=video_manager)
    scene_list = scene_manager.get_scene_list(base_timecode)
    if scene_list == []:
        scene_list = [(video_manager.get_base_timecode(), video_manager.get_current_timecode())]
    video_manager.release()
    return [(a.frame_num, b.frame_num) for a, b in scene_list]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    "name", ["four_speakers", "same_person", "cross_fades", "no_cut", "flash_shot", "hd_cuts"]
)
def test_shots_equal_scenedetect_run_on_the_file(shot_videos, name):
    path = shot_videos[name]
    detector = ShotDetector()
    for frame in iter_frames(path, fps=25.0):
        detector.push(frame)
    ours = [(s.start_frame, s.end_frame + 1) for s in detector.shots(min_track=100)]
    assert ours == reference_scene_list(path)
    if name in ("four_speakers", "hd_cuts"):  # the oracle is not trivially one shot
        assert len(ours) == {"four_speakers": 4, "hd_cuts": 3}[name]
    if name == "no_cut":
        assert ours == [(0, 100)]


def test_shots_from_cuts_marks_short_shots_untracked():
    shots = shots_from_cuts([40, 130, 140], 300, min_track=100)
    assert [(s.start_frame, s.end_frame, s.tracked) for s in shots] == [
        (0, 39, False),
        (40, 129, False),
        (130, 139, False),
        (140, 299, True),
    ]
    assert shots_from_cuts([100], 200, min_track=100)[0].tracked  # >= min_track: tracked
    assert [s.n_frames for s in shots_from_cuts([], 57, 100)] == [57]
    assert (shots[3].start_s, shots[3].end_s) == (140 / 25, 300 / 25)
    assert whole_video(0) == [] and whole_video(10)[0].end_frame == 9


def _dets(per_frame):
    out = []
    for boxes in per_frame:
        b = np.array(boxes, np.float32).reshape(-1, 4)
        kps = np.repeat(((b[:, :2] + b[:, 2:]) / 2)[:, None, :], 5, axis=1)
        out.append((b, np.linspace(0.9, 0.6, len(b), dtype=np.float32), kps.astype(np.float32)))
    return out


def test_tracking_per_shot_equals_reference_per_shot():
    """A face that stays in place across a cut (two speakers framed alike) would be one
    track without shots; per shot it is two, each the reference's track_shot of its shot."""
    rng = np.random.default_rng(7)
    n, cuts = 260, [90, 120, 200]
    per_frame = []
    for f in range(n):
        boxes = [[100 + rng.normal(0, 2), 80 + rng.normal(0, 2), 260, 240]]
        if 30 <= f < 170 and rng.random() > 0.2:  # a second face, missing now and then
            boxes.append([400 + 0.3 * f, 100, 540 + 0.3 * f, 240])
        per_frame.append(boxes)
    dets = _dets(per_frame)
    shots = shots_from_cuts(cuts, n, min_track=25)
    ours = track_shots(dets, shots, num_failed_det=25, min_track=25, min_face_size=60)
    ref = []
    for shot in shots:
        if not shot.tracked:
            continue
        scenefaces = [
            [
                {"frame": f, "bbox": [float(v) for v in b], "conf": float(s)}
                for b, s in zip(dets[f][0], dets[f][1], strict=True)
            ]
            for f in range(shot.start_frame, shot.end_frame + 1)
        ]
        ref += [(shot.index, r) for r in reference_track_shot(scenefaces, 25, 25, 60)]
    assert len(ours) == len(ref) >= 6
    for (shot_i, t), (ref_shot, r) in zip(ours, ref, strict=True):
        assert shot_i == ref_shot
        np.testing.assert_array_equal(t.frames, r["frame"])
        np.testing.assert_allclose(t.boxes, r["bbox"], rtol=0, atol=1e-9)
        shot = shots[shot_i]
        assert shot.start_frame <= t.frames[0] and t.frames[-1] <= shot.end_frame
    # the same detections as one shot give a track across every cut
    whole = track_shots(dets, whole_video(n), num_failed_det=25, min_track=25, min_face_size=60)
    assert any(t.frames[0] < 90 and t.frames[-1] >= 200 for _, t in whole)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_detect_mode_tracks_per_shot_on_cut_video(model_dir, tmp_path):
    """Three speakers, hard cuts: shots in the result, every track inside one shot."""
    from lipleak.sync import SyncScorer, SyncSettings

    frames = (
        _frames("real03_aoc.mp4", 0, 45)
        + _frames("real04_woman_glasses.mp4", 0, 45)
        + _frames("real07_reagan.mp4", 0, 45)
    )
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(len(frames) * 640) * 3000).astype(np.int16)
    video = write_video(tmp_path / "three.mp4", frames, audio=audio)
    s = SyncSettings(syncnet="syncnet_v2_random", mode="detect", min_track=25, min_face_size=60)
    result = SyncScorer(s).score(video)
    assert [(sh.start_frame, sh.end_frame) for sh in result.shots] == [
        (0, 44),
        (45, 89),
        (90, 134),
    ]
    assert len(result.tracks) >= 3
    assert {t.shot for t in result.tracks} == {0, 1, 2}
    for t in result.tracks:
        shot = result.shots[t.shot]
        assert shot.start_frame <= t.start_frame <= t.end_frame <= shot.end_frame
    d = result.to_dict()
    assert d["shots"][1] == {
        "index": 1,
        "start_frame": 45,
        "end_frame": 89,
        "tracked": True,
        "start_s": 1.8,
        "end_s": 3.6,
        "start_tc": "00:00:01:20",  # a 25-fps source: frame 45 is 1 s + 20 frames
        "end_tc": "00:00:03:14",
    }
    # at 29.97 fps the labels are drop-frame (";"), mapped back from the 25-fps index:
    # frame 90 starts at 3.6 s, source frame floor(3.6 * 30000/1001) = 107 = 3 s + 17
    assert result.shots[2].at_rate(30000 / 1001).start_tc == "00:00:03;17"
    assert [t["shot"] for t in d["tracks"]] == [t.shot for t in result.tracks]
    # without shots the same video gives tracks that join different people across cuts
    joined = SyncScorer(SyncSettings(**{**s.as_dict(), "shots": "none"})).score(video)
    assert any(t.start_frame < 45 and t.end_frame >= 45 for t in joined.tracks)
    assert len(joined.shots) == 1


def test_shots_only_hash_detect_mode():
    from lipleak.sync import SyncSettings

    assert SyncSettings().hash() == SyncSettings(shots="none").hash()  # prealigned: one shot
    detect = SyncSettings(mode="detect")
    assert detect.hash() != SyncSettings(mode="detect", shots="none").hash()
    assert "scenedetect 0.6.7.1" in detect.hashed_dict()["shots"]


def test_rows_carry_shots_in_csv_and_jsonl():
    from lipleak.sync.rows import CSV_COLUMNS, csv_lines, json_object

    shots = [s.__dict__ for s in shots_from_cuts([50, 60], 200, min_track=25)]
    row = {
        "video": "/v.mp4",
        "audio": "",
        "status": "ok",
        "offset": 1,
        "lse_c": 3.0,
        "lse_d": 7.0,
        "n_frames": 200,
        "n_tracks": 2,
        "tracks": [
            {"start_frame": 0, "end_frame": 49, "offset": 1, "lse_c": 3, "lse_d": 7, "shot": 0},
            {"start_frame": 60, "end_frame": 199, "offset": 1, "lse_c": 3, "lse_d": 7, "shot": 2},
        ],
        "detail": {"shots": shots},
    }
    lines = [dict(zip(CSV_COLUMNS, line, strict=True)) for line in csv_lines(row)]
    assert [ln["track"] for ln in lines] == ["video", "0", "1", "shot", "shot", "shot"]
    assert [ln["shot"] for ln in lines] == ["", "0", "2", "0", "1", "2"]
    assert [(ln["start_frame"], ln["end_frame"], ln["n_tracks"]) for ln in lines[3:]] == [
        ("0", "49", "1"),
        ("50", "59", "0"),
        ("60", "199", "1"),
    ]
    assert "not tracked" in lines[4]["reason"] and lines[3]["reason"] == ""
    assert json_object(row)["shots"] == shots
