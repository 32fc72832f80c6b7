"""lipleak.sync.inputs: which files a batch sync run scores (files, folders, @LIST,
--audio-dir pairing, de-duplication, errors). Files hold a few plain bytes: nothing here
decodes them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lipleak.errors import InputError
from lipleak.sync.inputs import (
    AUDIO_EXTENSIONS,
    AUDIO_PAIR_ORDER,
    VIDEO_EXTENSIONS,
    VideoJob,
    collect_jobs,
)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def videos(jobs) -> list[Path]:
    return [j.video for j in jobs]


def test_extension_sets():
    for ext in (".mp4", ".mov", ".mkv", ".avi", ".webm", ".flv", ".m4v", ".mpg", ".mpeg"):
        assert ext in VIDEO_EXTENSIONS
    for ext in (".ts", ".mts", ".m2ts", ".wmv", ".3gp", ".ogv", ".mxf", ".vob", ".asf", ".y4m"):
        assert ext in VIDEO_EXTENSIONS
    for ext in (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".wma", ".aiff"):
        assert ext in AUDIO_EXTENSIONS
    assert not VIDEO_EXTENSIONS & AUDIO_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in VIDEO_EXTENSIONS | AUDIO_EXTENSIONS)
    assert AUDIO_PAIR_ORDER[0] == ".wav" and len(set(AUDIO_PAIR_ORDER)) == len(AUDIO_PAIR_ORDER)


def test_folder_walk_recursion_filter_case_hidden_sorted(tmp_path):
    d = tmp_path / "clips"
    for rel in ("b.mp4", "a.MOV", "B2.mkv", "sub/z.webm", "sub/deeper/y.Mp4", "a-c.avi"):
        touch(d / rel)
    touch(d / "notes.txt")
    touch(d / "voice.wav")
    touch(d / "noext")
    touch(d / ".hidden.mp4")
    touch(d / ".cache/inside.mp4")
    touch(d / "sub/.git/obj.mp4")
    jobs, ignored = collect_jobs([d])
    rel = [p.relative_to(d).as_posix() for p in videos(jobs)]
    # component-wise, code-point order: upper case first, "a-c.avi" before the "sub" folder
    assert rel == ["B2.mkv", "a-c.avi", "a.MOV", "b.mp4", "sub/deeper/y.Mp4", "sub/z.webm"]
    assert all(j.audio is None for j in jobs)
    why = {p.name: r for p, r in ignored}
    assert set(why) == {"notes.txt", "voice.wav", "noext"}
    assert "not a video extension (.txt)" in why["notes.txt"]
    assert "audio" in why["voice.wav"]
    assert "none" in why["noext"]


def test_sort_is_by_component_not_by_string(tmp_path):
    # As strings "a-b/x" < "a/x" ('-' < '/'); by components "a" < "a-b".
    touch(tmp_path / "a/x.mp4")
    touch(tmp_path / "a-b/x.mp4")
    jobs, _ = collect_jobs([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in videos(jobs)] == ["a/x.mp4", "a-b/x.mp4"]


def test_root_may_be_hidden_or_dot(tmp_path, monkeypatch):
    touch(tmp_path / ".data/v.mp4")
    jobs, _ = collect_jobs([tmp_path / ".data"])
    assert [p.name for p in videos(jobs)] == ["v.mp4"]
    monkeypatch.chdir(tmp_path / ".data")
    jobs, _ = collect_jobs(["."])
    assert videos(jobs) == [Path("v.mp4")]


def test_named_file_is_scored_whatever_its_extension(tmp_path):
    f = touch(tmp_path / "recording.bin")
    w = touch(tmp_path / "voice.wav")
    jobs, ignored = collect_jobs([f, str(w)])
    assert videos(jobs) == [f, w] and ignored == []


def test_excluded_outputs_are_skipped_silently(tmp_path):
    d = tmp_path / "run"
    touch(d / "v.mp4")
    db = touch(d / "sync.sqlite")
    for companion in ("sync.sqlite-wal", "sync.sqlite-shm", "sync.sqlite.lock", "out.csv"):
        touch(d / companion)
    touch(d / "other.csv")
    jobs, ignored = collect_jobs([d], exclude=[db, d / "out.csv"])
    assert [p.name for p in videos(jobs)] == ["v.mp4"]
    assert [p.name for p, _ in ignored] == ["other.csv"]


def test_symlink_loops_are_walked_once(tmp_path):
    touch(tmp_path / "d/v.mp4")
    os.symlink(tmp_path / "d", tmp_path / "d/loop")
    jobs, _ = collect_jobs([tmp_path / "d"])
    assert [p.name for p in videos(jobs)] == ["v.mp4"]


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(InputError) as e:
        collect_jobs([tmp_path / "nope.mp4"])
    assert e.value.status == "missing" and "nope.mp4" in str(e.value)
    os.symlink(tmp_path / "gone", tmp_path / "dangling.mp4")
    with pytest.raises(InputError, match="no such file"):
        collect_jobs([tmp_path / "dangling.mp4"])


# --- @LIST ---------------------------------------------------------------------------------


def test_list_file_entries_tabs_comments_relative_paths(tmp_path, monkeypatch):
    lists = tmp_path / "lists"
    v1 = touch(tmp_path / "media/one.mp4")
    v2 = touch(tmp_path / "media/two words.mov")
    a2 = touch(tmp_path / "media/dub.wav")
    v3 = touch(tmp_path / "abs.mkv")
    touch(tmp_path / "media/#hash.mp4")
    touch(tmp_path / "folder/x.mp4")
    touch(tmp_path / "folder/y.mp4")
    lst = touch(
        lists / "jobs.txt",
        (
            "\ufeff# a comment\n"
            "../media/one.mp4\n"
            "\n"
            "   \t  \n"
            "   # indented comment\n"
            "../media/two words.mov\t../media/dub.wav\r\n"
            f"{v3}\n"
            "../media/./#hash.mp4\n"
            "../folder\n"
        ).encode(),
    )
    monkeypatch.chdir(tmp_path)  # relative entries are resolved against the list's folder
    jobs, ignored = collect_jobs([f"@{lst}"])
    assert [(j.video.resolve(), j.audio and j.audio.resolve()) for j in jobs] == [
        (v1, None),
        (v2, a2),
        (v3, None),
        (tmp_path / "media/#hash.mp4", None),
        (tmp_path / "folder/x.mp4", None),
        (tmp_path / "folder/y.mp4", None),
    ]
    assert ignored == []


def test_list_path_relative_to_cwd_and_at_file_via_path(tmp_path, monkeypatch):
    touch(tmp_path / "v.mp4")
    touch(tmp_path / "l.txt", b"v.mp4\n")
    at = touch(tmp_path / "@odd.mp4")
    monkeypatch.chdir(tmp_path)
    jobs, _ = collect_jobs(["@l.txt", Path("@odd.mp4"), "./@odd.mp4"])
    assert videos(jobs) == [Path("v.mp4"), Path("@odd.mp4")]  # the last is a duplicate
    assert jobs[1].key()[0] == str(at)


@pytest.mark.parametrize(
    "line, message",
    [
        ("a.mp4\tb.wav\tc.wav", "line 2: expected VIDEO or VIDEO<TAB>AUDIO, found 3"),
        ("a.mp4\t", "line 2: empty path"),
        ("\tb.wav", "line 2: empty path"),
        ("sub\tb.wav", "line 2: a folder cannot have an AUDIO"),
        ("a.mp4\tsub", "line 2: not a file"),
    ],
)
def test_list_bad_line_names_its_line(tmp_path, line, message):
    touch(tmp_path / "a.mp4")
    touch(tmp_path / "b.wav")
    touch(tmp_path / "sub/v.mp4")
    lst = touch(tmp_path / "l.txt", f"a.mp4\n{line}\n".encode())
    with pytest.raises(InputError, match=message) as e:
        collect_jobs([f"@{lst}"])
    assert e.value.status == "bad_input" and str(lst) in str(e.value)


def test_list_entry_that_does_not_exist(tmp_path):
    touch(tmp_path / "a.mp4")
    lst = touch(tmp_path / "l.txt", b"# header\na.mp4\ngone.mp4\n")
    with pytest.raises(InputError, match=r"no such file or folder \(.*l\.txt: line 3\)") as e:
        collect_jobs([f"@{lst}"])
    assert e.value.status == "missing" and e.value.path == str(tmp_path / "gone.mp4")
    lst.write_bytes(b"a.mp4\tgone.wav\n")
    with pytest.raises(InputError, match="line 1") as e:
        collect_jobs([f"@{lst}"])
    assert e.value.status == "missing"


def test_unreadable_list(tmp_path):
    with pytest.raises(InputError, match="no such list file") as e:
        collect_jobs([f"@{tmp_path / 'none.txt'}"])
    assert e.value.status == "missing"
    with pytest.raises(InputError, match="cannot read the list file"):
        collect_jobs([f"@{tmp_path}"])  # a folder


def test_list_bytes_that_are_not_utf8_name_the_file_with_those_bytes(tmp_path):
    v = tmp_path / os.fsdecode(b"caf\xe9.mp4")  # a Latin-1 name on a UTF-8 system
    touch(v)
    lst = touch(tmp_path / "latin1.txt", b"caf\xe9.mp4\n")
    jobs, _ = collect_jobs([f"@{lst}"])
    assert jobs == [VideoJob(v, None)]


def test_list_entries_are_never_evaluated(tmp_path, monkeypatch):
    """Shell syntax in a name is only a name: the file must exist under exactly that name."""
    monkeypatch.chdir(tmp_path)
    name = "$(touch pwned); `touch pwned2` | rm -rf x; ${HOME}.mp4"
    v = touch(tmp_path / name)
    touch(tmp_path / "l.txt", f"{name}\n~/x.mp4\n".encode())
    with pytest.raises(InputError, match="~/x.mp4"):  # no ~ expansion either
        collect_jobs(["@l.txt"])
    touch(tmp_path / "l.txt", f"{name}\n".encode())
    jobs, _ = collect_jobs(["@l.txt"])
    assert jobs[0].key()[0] == str(v)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


# --- --audio-dir ---------------------------------------------------------------------------


def test_audio_dir_pairs_by_stem_in_fixed_order(tmp_path):
    vids, auds = tmp_path / "v", tmp_path / "a"
    for name in ("talk.mp4", "song.mp4", "a.b.mkv", "solo.mp4", "dub.mp4"):
        touch(vids / name)
    touch(auds / "talk.mp3")
    touch(auds / "talk.WAV")  # extension case-insensitive; .wav before .mp3
    touch(auds / "song.ogg")
    touch(auds / "song.flac")
    touch(auds / "a.b.m4a")  # the stem keeps inner dots
    touch(auds / "a.m4a")
    touch(auds / "sub/solo.wav")  # not below the folder
    touch(auds / ".solo.wav")
    dub_explicit = touch(tmp_path / "explicit.wav")
    lst = touch(tmp_path / "l.txt", f"{vids / 'dub.mp4'}\t{dub_explicit}\n".encode())
    jobs, ignored = collect_jobs([vids, f"@{lst}"], audio_dir=auds)
    got = {(j.video.name, j.audio.name if j.audio else None) for j in jobs}
    assert got == {
        ("a.b.mkv", "a.b.m4a"),
        ("dub.mp4", "dub.wav"),  # from the folder walk (a missing file)
        ("dub.mp4", "explicit.wav"),  # the list's AUDIO is kept
        ("song.mp4", "song.flac"),
        ("solo.mp4", "solo.wav"),
        ("talk.mp4", "talk.WAV"),
    }
    solo = next(j for j in jobs if j.video.name == "solo.mp4")
    assert solo.audio == auds / "solo.wav" and not solo.audio.exists()
    unused = {(p.name, r) for p, r in ignored}
    assert ("talk.mp3", "another audio file was paired (talk.WAV)") in unused
    assert ("song.ogg", "another audio file was paired (song.flac)") in unused


def test_audio_dir_same_extension_different_case_is_code_point_order(tmp_path):
    touch(tmp_path / "v/x.mp4")
    touch(tmp_path / "a/x.wav")
    touch(tmp_path / "a/x.WAV")
    jobs, ignored = collect_jobs([tmp_path / "v"], audio_dir=tmp_path / "a")
    assert jobs[0].audio.name == "x.WAV"  # "W" < "w"
    assert [p.name for p, _ in ignored] == ["x.wav"]


def test_missing_paired_audio_becomes_a_failed_row(tmp_path):
    v = touch(tmp_path / "v/clip.mp4")
    (tmp_path / "a").mkdir()
    jobs, _ = collect_jobs([v], audio_dir=tmp_path / "a")
    assert jobs == [VideoJob(v, tmp_path / "a/clip.wav")]
    with pytest.raises(InputError, match="no such audio file") as e:
        jobs[0].check()
    assert e.value.status == "missing" and e.value.path == str(tmp_path / "a/clip.wav")
    touch(tmp_path / "a/clip.wav")
    jobs[0].check()  # the file appeared: scorable
    v.unlink()
    with pytest.raises(InputError, match="no such file"):
        jobs[0].check()


def test_audio_dir_must_be_a_folder(tmp_path):
    v = touch(tmp_path / "v.mp4")
    with pytest.raises(InputError, match="no such audio folder") as e:
        collect_jobs([v], audio_dir=tmp_path / "none")
    assert e.value.status == "missing"
    with pytest.raises(InputError, match="not a folder") as e:
        collect_jobs([v], audio_dir=v)
    assert e.value.status == "bad_input"


# --- keys and duplicates -------------------------------------------------------------------


def test_duplicates_kept_once_in_first_occurrence_order(tmp_path, monkeypatch):
    d = tmp_path / "d"
    a, b = touch(d / "a.mp4"), touch(d / "b.mp4")
    w = touch(tmp_path / "w.wav")
    os.symlink(a, tmp_path / "link.mp4")
    lst = touch(tmp_path / "l.txt", b"d/b.mp4\nd/a.mp4\td/../w.wav\nd/a.mp4\tw.wav\n")
    monkeypatch.chdir(tmp_path)
    jobs, _ = collect_jobs([str(b), "d", "link.mp4", f"@{lst}", d / "a.mp4"])
    assert [j.key() for j in jobs] == [
        (str(b), ""),
        (str(a), ""),
        (str(a), str(w)),  # another audio: another job
    ]
    assert jobs[0].video == b  # the first spelling is kept


def test_key_is_resolved_and_absolute(tmp_path, monkeypatch):
    touch(tmp_path / "x/v.mp4")
    monkeypatch.chdir(tmp_path / "x")
    job = VideoJob(Path("../x/./v.mp4"), None)
    assert job.key() == (str(tmp_path / "x/v.mp4"), "")
    assert VideoJob(Path("v.mp4"), Path("a.wav")).key()[1] == str(tmp_path / "x/a.wav")
