"""Which videos a batch ``sync`` run scores: files, folders and ``@LIST`` files in, jobs out.

    jobs, ignored = collect_jobs(["clips/", "extra.mov", "@more.txt"], audio_dir=Path("wavs"))

Nothing here decodes, runs or evaluates anything: paths are only stat'ed and listed, so
no file name can become code. The rules:

* A **file** given as an argument is scored whatever its extension (the user named it).
* A **folder** is walked recursively. Files whose suffix is in ``VIDEO_EXTENSIONS``
  (case-insensitive: ``A.MP4`` counts) become jobs, sorted by their path below the folder,
  component by component, by code point (case-sensitive: ``B.mp4`` before ``a.mp4``), the
  same on every filesystem and Python version. Hidden files and folders (name starting
  with ``.``) below the folder, and the paths passed as ``exclude`` (the run's own store,
  its ``-wal``/``-shm``/``-journal``/``.lock`` companions, its CSV/JSONL/keep list), are
  skipped silently; every other file is returned in ``ignored`` with the reason. Symlinks
  are followed, each real folder walked once (no loops).
* A **string** starting with ``@`` names a list file (a ``Path`` never does; to name a
  file whose name starts with ``@``, write ``./@name``). In the list, one entry per line:
  ``VIDEO`` or ``VIDEO<TAB>AUDIO``, UTF-8 (a BOM is allowed; bytes that are not UTF-8
  name the file with those bytes, as ``os.fsdecode`` does), ``\\n`` or ``\\r\\n``. The
  text between tabs is the path exactly: no spaces are trimmed, no ``~`` or variables are
  expanded, a ``@`` is just a character (lists do not nest). Relative paths are resolved
  against the list file's folder. Blank lines (only whitespace) and lines whose first
  non-blank character is ``#`` are skipped, so a relative file whose name starts with
  ``#`` is written ``./#name``. An entry may name a folder (walked as above, and then it
  may not have an AUDIO). More than two fields, an empty field, or a folder with an AUDIO
  is an error naming the line.
* ``audio_dir`` gives every job without an explicit AUDIO the file of the same stem in that
  folder (not below it): ``talk.mp4`` → ``audio_dir/talk.<ext>`` with ``<ext>`` tried in
  ``AUDIO_PAIR_ORDER`` (lossless first), matched case-insensitively; two names differing
  only in the extension's case are taken in code-point order. Candidates not taken are
  returned in ``ignored`` ("another audio file was paired"). A video with no candidate
  gets ``audio_dir/<stem>.wav``, which does not exist: ``VideoJob.check()`` then raises
  ``InputError(..., "no such audio file ...", "missing")``, so the run records a failed
  row for that video and goes on. Videos of the same stem in different folders share the
  audio file.
* ``pair_gt`` (``sync --gt-dir``) gives every job the video of the same stem in the GT
  folder (any extension of ``VIDEO_EXTENSIONS``, case-insensitive, the first name in
  code-point order), or the absent ``gt_dir/<stem>`` when there is none.
* Jobs are de-duplicated on ``VideoJob.key()`` (resolved video and audio), the first
  occurrence kept in place.

Errors: a path that does not exist (argument, list entry or its AUDIO) raises
``InputError(path, ..., "missing")``; an unreadable or malformed list file, a path that is
neither file nor folder, and an ``audio_dir`` that is not a folder raise
``InputError(path, ..., "bad_input")``. All stop the run before anything is scored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..names import storable

# Containers FFmpeg demuxes that carry video (and usually audio). Raw elementary streams
# (.h264, .hevc) and image formats are left out: they have no audio track and no timing.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".3g2", ".3gp", ".asf", ".avi", ".divx", ".dv", ".f4v", ".flv", ".m2ts", ".m2v",
        ".m4v", ".mk3d", ".mkv", ".mov", ".mp4", ".mpe", ".mpeg", ".mpg", ".mts", ".mxf",
        ".nut", ".ogm", ".ogv", ".qt", ".rm", ".rmvb", ".ts", ".vob", ".webm", ".wmv", ".y4m",
    }
)  # fmt: skip

# The order in which ``audio_dir`` candidates of one stem are tried: lossless first, so that
# a folder holding both talk.wav and talk.mp3 scores against the original samples.
AUDIO_PAIR_ORDER: tuple[str, ...] = (
    ".wav", ".flac", ".aiff", ".aif", ".aifc", ".w64", ".caf", ".au", ".wv", ".ape",
    ".m4a", ".aac", ".mp3", ".ogg", ".oga", ".opus", ".mka", ".wma", ".ac3", ".eac3",
    ".dts", ".mp2", ".amr", ".spx",
)  # fmt: skip
AUDIO_EXTENSIONS: frozenset[str] = frozenset(AUDIO_PAIR_ORDER)

# Files that sit beside a SQLite store (and its run lock): skipped with it.
_STORE_COMPANIONS = ("-wal", "-shm", "-journal", ".lock")


@dataclass(frozen=True)
class VideoJob:
    """One video to score, against its own audio track (``audio`` None) or a file."""

    video: Path
    audio: Path | None
    # ``sync --gt-dir``: the GT video to compare with (LPIPS); a path that does not exist
    # when the folder has no video of this stem (the row then says so, LSE still counts)
    gt: Path | None = None
    # ``sync --audio-stream``: which of the video's own audio streams (an int N or
    # "lang:CODE", ``io.streams``); None: the one ffmpeg picks. ``group``: jobs of one
    # video's streams (``--audio-stream all``), scored together (``sync.streams``)
    stream: int | str | None = None
    group: int | None = None

    def key(self) -> tuple[str, str]:
        """(resolved absolute video, resolved absolute audio or ""): the results key, as
        text a store can hold (a name's bytes that are not UTF-8 written ``\\xNN``). A
        chosen stream of the video's own audio is ``#a:N`` / ``#a:lang:CODE`` (no
        resolved path starts with ``#``)."""
        if self.audio is not None:
            audio = storable(Path(self.audio).resolve())
        else:
            audio = "" if self.stream is None else f"#a:{self.stream}"
        return storable(Path(self.video).resolve()), audio

    def check(self) -> None:
        """Raise the ``InputError`` a failed row records when the video or audio is gone."""
        if not Path(self.video).is_file():
            raise InputError(self.video, "no such file", "missing")
        if self.audio is not None and not Path(self.audio).is_file():
            raise InputError(self.audio, "no such audio file", "missing")


def collect_jobs(
    args: Sequence[str | Path],
    audio_dir: Path | None = None,
    *,
    exclude: Iterable[str | Path] = (),
) -> tuple[list[VideoJob], list[tuple[Path, str]]]:
    """(jobs in input order, [(path, why it is not scored)]); see the module docstring."""
    skip = _skip_set(exclude)
    raw: list[VideoJob] = []
    ignored: list[tuple[Path, str]] = []
    for arg in args:
        if isinstance(arg, str) and arg.startswith("@"):
            raw += _read_list(Path(arg[1:]), skip, ignored)
            continue
        path = Path(arg)
        if not path.exists():  # a dangling symlink too
            raise InputError(path, "no such file or folder", "missing")
        if path.is_dir():
            raw += [VideoJob(v, None) for v in _walk(path, skip, ignored)]
        elif path.is_file():
            raw.append(VideoJob(path, None))
        else:
            raise InputError(path, "not a file or folder", "bad_input")
    if audio_dir is not None:
        raw = _pair_audio(raw, Path(audio_dir), ignored)
    jobs, seen = [], set()
    for job in raw:
        key = job.key()
        if key not in seen:
            seen.add(key)
            jobs.append(job)
    return jobs, ignored


# --- folders -------------------------------------------------------------------------------


def _skip_set(exclude: Iterable[str | Path]) -> set[str]:
    out = set()
    for p in exclude:
        real = Path(p).resolve()
        out.add(str(real))
        out |= {str(real) + c for c in _STORE_COMPANIONS}
    return out


def _walk(root: Path, skip: set[str], ignored: list[tuple[Path, str]]) -> list[Path]:
    """Video files below ``root``, sorted by their relative path's components."""
    found: list[tuple[tuple[str, ...], Path]] = []
    seen_dirs: set[tuple[int, int]] = set()
    skip_names = {Path(p).name for p in skip}

    def visit(folder: Path, rel: tuple[str, ...]) -> None:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen_dirs:
            return  # a symlink back up the tree, or a second link to a walked folder
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(
                folder, f"cannot list the folder: {exc.strerror}", "bad_input"
            ) from None
        for e in entries:
            if e.name.startswith("."):
                continue
            path = folder / e.name
            # resolve() only for names that could be the run's own files: walks stay cheap
            if e.name in skip_names and str(path.resolve()) in skip:
                continue
            if e.is_dir():  # follows symlinks
                visit(path, (*rel, e.name))
            elif not e.is_file():
                ignored.append((path, "not a regular file"))
            elif Path(e.name).suffix.lower() in VIDEO_EXTENSIONS:
                found.append(((*rel, e.name), path))
            elif Path(e.name).suffix.lower() in AUDIO_EXTENSIONS:
                ignored.append((path, "an audio file, not a video"))
            else:
                ignored.append((path, f"not a video extension ({Path(e.name).suffix or 'none'})"))

    visit(root, ())
    # Tuples of components: "a/b.mp4" sorts before "a-c.mp4" whatever the Python version.
    return [p for _, p in sorted(found, key=lambda t: t[0])]


# --- list files ----------------------------------------------------------------------------


def _read_list(list_path: Path, skip: set[str], ignored: list[tuple[Path, str]]) -> list[VideoJob]:
    if not list_path.exists():
        raise InputError(list_path, "no such list file", "missing")
    try:
        # Bytes that are not UTF-8 decode as the OS decodes file names (os.fsdecode), so a
        # line names the file with exactly those bytes.
        text = list_path.read_bytes().decode("utf-8-sig", "surrogateescape")
    except OSError as exc:
        raise InputError(
            list_path, f"cannot read the list file: {exc.strerror}", "bad_input"
        ) from None
    base = list_path.parent
    jobs: list[VideoJob] = []
    for n, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        where = f"{list_path}: line {n}"
        if len(fields) > 2:
            raise InputError(
                None,
                f"{where}: expected VIDEO or VIDEO<TAB>AUDIO, found {len(fields)} "
                "tab-separated fields",
                "bad_input",
            )
        if any(not f for f in fields):
            raise InputError(None, f"{where}: empty path (a stray tab?)", "bad_input")
        video = base / fields[0]
        audio = base / fields[1] if len(fields) == 2 else None
        for p in (video, audio):
            if p is not None and not p.exists():
                raise InputError(p, f"no such file or folder ({where})", "missing")
        if video.is_dir():
            if audio is not None:
                raise InputError(None, f"{where}: a folder cannot have an AUDIO field", "bad_input")
            jobs += [VideoJob(v, None) for v in _walk(video, skip, ignored)]
        elif video.is_file() and (audio is None or audio.is_file()):
            jobs.append(VideoJob(video, audio))
        else:
            raise InputError(None, f"{where}: not a file", "bad_input")
    return jobs


# --- audio_dir -----------------------------------------------------------------------------


def pair_gt(jobs: list[VideoJob], gt_dir: Path) -> list[VideoJob]:
    """Each job with the video of the same stem in ``gt_dir`` (not below it) as its GT:
    ``talk.mp4`` → ``gt_dir/talk.<ext>``, any extension of ``VIDEO_EXTENSIONS``
    (case-insensitive; several: the first name in code-point order). No candidate:
    ``gt_dir/<stem>`` (absent), which the run reports in the row."""
    gt_dir = Path(gt_dir)
    if not gt_dir.exists():
        raise InputError(gt_dir, "no such GT folder", "missing")
    if not gt_dir.is_dir():
        raise InputError(gt_dir, "not a folder (--gt-dir needs one)", "bad_input")
    by_stem: dict[str, list[str]] = {}
    for e in os.scandir(gt_dir):
        name = e.name
        if Path(name).suffix.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
            if e.is_file():
                by_stem.setdefault(Path(name).stem, []).append(name)
    out = []
    for job in jobs:
        stem = Path(job.video).stem
        names = sorted(by_stem.get(stem, []))
        gt = gt_dir / names[0] if names else gt_dir / stem
        out.append(VideoJob(job.video, job.audio, gt))
    return out


def _pair_audio(
    jobs: list[VideoJob], audio_dir: Path, ignored: list[tuple[Path, str]]
) -> list[VideoJob]:
    if not audio_dir.exists():
        raise InputError(audio_dir, "no such audio folder", "missing")
    if not audio_dir.is_dir():
        raise InputError(audio_dir, "not a folder (--audio-dir needs one)", "bad_input")
    # stem -> [(rank in AUDIO_PAIR_ORDER, name)] of the folder's audio files, listed once
    rank = {ext: i for i, ext in enumerate(AUDIO_PAIR_ORDER)}
    by_stem: dict[str, list[tuple[int, str]]] = {}
    for e in os.scandir(audio_dir):
        ext = Path(e.name).suffix.lower()
        if ext in rank and not e.name.startswith(".") and e.is_file():
            by_stem.setdefault(Path(e.name).stem, []).append((rank[ext], e.name))
    out, reported = [], set()
    for job in jobs:
        if job.audio is not None:
            out.append(job)
            continue
        stem = Path(job.video).stem
        candidates = sorted(by_stem.get(stem, []))
        if not candidates:
            out.append(VideoJob(job.video, audio_dir / f"{stem}.wav"))
            continue
        chosen = audio_dir / candidates[0][1]
        out.append(VideoJob(job.video, chosen))
        if stem not in reported:
            reported.add(stem)
            for _, name in candidates[1:]:
                ignored.append((audio_dir / name, f"another audio file was paired ({chosen.name})"))
    return out
