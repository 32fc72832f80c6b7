"""Issue 12: ``generate --cmd`` never runs a file name as shell code, whatever quoting
surrounds its placeholder; templates that need a shell are refused, not run differently."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import synth
from conftest import ROOT
from lipleak.cli import main
from lipleak.errors import LipleakError
from lipleak.protocol.runner import parse_cmd, render

PY = sys.executable
MARK = "PWNED"
# each would create MARK in the working folder if it reached a shell, quoted or not
NAMES = [
    f"a;touch {MARK};b",
    f"$(touch {MARK})",
    f"`touch {MARK}`",
    f"x';touch {MARK};'x",
    f'x";touch {MARK};"x',
    'it\'s "q" ünïcødé 日本 sp',
    "x{out}y{{z",
]
JOB = {
    "video": "/gt/a;b $(c) `d` 'e' \"f\" ünï.mp4",
    "audio": "audio/AM/$(x).wav",
    "reference_frames": [0, 3],
    "reference": "AR",
    "setup": "AM",
    "stem": "{video}",
}

GENERATOR = """\
import hashlib, json, os, shutil, sys
from pathlib import Path
log, args = sys.argv[1], sys.argv[2:]
opts = dict(zip(args[::2], args[1::2]))
rec = {"argv": args, "env": os.environ.get("LIPLEAK_TEST_STEM")}
name = hashlib.sha1(opts["--out"].encode()).hexdigest() + ".json"
Path(log, name).write_text(json.dumps(rec))
shutil.copyfile(opts["--video"], opts["--out"])
"""


def words(cmd: str, job=JOB, out="/o/x.partial.mp4") -> list[str]:
    return render(parse_cmd(cmd), job, Path("/plan"), Path(out))[0]


def test_split_is_the_shells():
    """Words as /bin/sh itself splits the same text (the oracle; nothing here expands)."""
    for cmd in (
        "python tests/synth.py remux --video {video} --audio {audio} --out {out}",
        "a 'b c' \"d e\" f\\ g '' \"\" h'i'\"j\" 'x\"y' \"x'y\" \\'",
        'a "b \\" \\\\ \\$ \\` \\n" c\\\nd \'\\n\'',
        "  a\tb  ~ ~/x x~ '~'/x \\~",
        "a '|;&<>()$`*?[#~' \"|;&<>()*?[#~\" \\| \\; \\$ \\* b#c x=y",
        "A=1 B='x y' a C=2",
    ):
        sh = subprocess.run(
            ["sh", "-c", "printf '%s\\0' " + cmd], capture_output=True, text=True, check=True
        ).stdout.split("\0")[:-1]
        t = parse_cmd(cmd.replace("{", "{{").replace("}", "}}"))
        argv, env = render(t, JOB, Path("/plan"), Path("/o"))
        if env:  # sh applies assignments to printf; here they are the environment
            sh = sh[len(env) :]
            assert env == {"A": "1", "B": "x y"}
        assert argv == sh, cmd


def test_placeholders_are_verbatim_in_any_quoting():
    v, a, o = JOB["video"], "/plan/audio/AM/$(x).wav", "/o/x.partial.mp4"
    expect = ["gen", v, a, o, "0,3", "AR", "AM", "{video}"]
    for q in ("{}", "'{}'", '"{}"'):
        fields = ("video", "audio", "out", "ref_frames", "reference", "setup", "stem")
        cmd = "gen " + " ".join(q.format("{" + f + "}") for f in fields)
        assert words(cmd) == expect, cmd
    assert words("gen --face={video} 'pre {stem} post'") == [
        "gen",
        f"--face={v}",
        "pre {video} post",
    ]
    assert words('gen "{{literal}}" {{ }}x{{{stem}}}') == ["gen", "{literal}", "{", "}x{{video}}"]


def test_env_assignments_and_tilde():
    t = parse_cmd("CUDA_VISIBLE_DEVICES=0 STEM='{stem}' gen ~/ckpt '~/q' x=1 ~")
    argv, env = render(t, JOB, Path("/plan"), Path("/o"))
    assert env == {"CUDA_VISIBLE_DEVICES": "0", "STEM": "{video}"}
    assert argv == ["gen", str(Path.home() / "ckpt"), "~/q", "x=1", str(Path.home())]


@pytest.mark.parametrize(
    "cmd",
    [
        "gen {video} | tee log",
        "gen {video} > log",
        "gen < in",
        "gen && b",
        "gen; b",
        "gen &",
        "(gen)",
        "gen\nb",
        "gen $HOME/x",
        'gen "$HOME"',
        "gen `date`",
        'gen "`date`"',
        "gen $(date)",
        "gen *.mp4",
        "gen x?",
        "gen [ab]",
        "gen # comment",
        "gen 'open",
        'gen "open',
        "gen \\",
        "",
        "   ",
        "A=1",
        "gen {}",
        "gen {0}",
        "gen {vid}",
        "gen {video!r}",
        "gen {video:>9}",
        "gen {video.x}",
        "gen }",
        "gen {",
        "bash -c 'gen {video}'",
        "sh -ec 'gen \"{video}\"' _",
        "bash -o pipefail -c 'gen {out} | x'",
        "/usr/bin/python3 -c 'import sys; print(\"{video}\")'",
    ],
)
def test_templates_needing_a_shell_or_bad_placeholders_are_refused(cmd):
    with pytest.raises(LipleakError) as e:
        parse_cmd(cmd)
    msg = str(e.value)
    assert msg.startswith("--cmd: ") and "\n" not in msg, msg


def test_shell_features_through_bash_c_with_paths_as_arguments():
    cmd = 'bash -c \'gen "$1" > "$2.log" && echo $0 | x\' _ {video} {out}'
    assert words(cmd) == ["bash", "-c", 'gen "$1" > "$2.log" && echo $0 | x', "_", JOB["video"],
                          "/o/x.partial.mp4"]  # fmt: skip
    assert words("python3 -c 'import sys' {video}")[-1] == JOB["video"]


def test_bad_template_fails_before_anything_runs(tmp_path, capsys):
    rc = main(["generate", str(tmp_path / "no-plan"), "--cmd", "gen {video} > log"])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert "'>' at column 13" in err and "bash -c" in err


# --------------------------------------------------------------- end to end (acceptance)


def cli(*args, cwd):
    proc = subprocess.run(
        [PY, "-m", "lipleak", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def hostile_plan(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    gt, run, cwd = base / "gt", base / "run", base / "cwd"
    gt.mkdir()
    cwd.mkdir()
    for i, name in enumerate(NAMES):
        synth.make_clip(gt / f"{name}.mp4", 300 + i, seconds=0.2)
    cli("plan", gt, run, cwd=cwd)
    gen = base / "gen.py"
    gen.write_text(GENERATOR)
    return base, run, cwd, gen


def _markers(base: Path) -> list[Path]:
    return [p for root in (base, ROOT) for p in root.rglob(MARK)]


def _planned(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "jobs.jsonl").read_text().splitlines() if x.strip()]


def _check(run: Path, out: Path, log: Path, jobs: list[dict], env: bool) -> None:
    def rec_name(partial: Path) -> str:
        return hashlib.sha1(str(partial).encode()).hexdigest() + ".json"

    partials = {}
    for j in jobs:
        final = out / j["output"]
        partials[rec_name(final.with_name(f"{final.stem}.partial.mp4"))] = j
    assert sorted(p.name for p in log.iterdir()) == sorted(partials)  # each job ran once
    for name, j in partials.items():
        rec = json.loads((log / name).read_text())
        final = out / j["output"]
        assert rec["argv"] == [
            "--video",
            j["video"],
            "--audio",
            str(run / j["audio"]),
            "--out",
            str(final.with_name(f"{final.stem}.partial.mp4")),
            "--stem",
            j["stem"],
        ], j
        assert Path(j["video"]).name == f"{j['stem']}.mp4" and j["stem"] in NAMES
        assert final.read_bytes() == Path(j["video"]).read_bytes()  # the job's own GT
        assert rec["env"] == (j["stem"] if env else None)


@pytest.mark.parametrize("quote", ["{}", "'{}'", '"{}"', "bash"])
def test_hostile_names_are_never_executed_and_every_job_gets_its_paths(hostile_plan, quote):
    base, run, cwd, gen = hostile_plan
    tag = {"{}": "bare", "'{}'": "single", '"{}"': "double", "bash": "bash"}[quote]
    out, log = base / f"out-{tag}", base / f"log-{tag}"
    log.mkdir()
    fixed = " ".join(shlex.quote(str(x)) for x in (PY, gen, log))
    jobs = _planned(run)
    assert len(jobs) == 6 * len(NAMES)
    if quote == "bash":  # shell features are written out, the paths passed as arguments
        cmd = (
            'bash -c \'"$0" "$1" "$2" --video "$3" --audio "$4" --out "$5" '
            f'--stem "$6" > /dev/null\' {fixed} {{video}} {{audio}} {{out}} {{stem}}'
        )
        extra = ["--cells", "AM/CR"]
        jobs = [j for j in jobs if (j["setup"], j["reference"]) == ("AM", "CR")]
    else:
        q = quote.format
        cmd = (
            f"LIPLEAK_TEST_STEM={q('{stem}')} {fixed} --video {q('{video}')} "
            f"--audio {q('{audio}')} --out {q('{out}')} --stem {q('{stem}')}"
        )
        extra = ["--jobs", "2"]
    proc = cli("generate", run, "--out", out, "--cmd", cmd, *extra, cwd=cwd)
    assert f"generated {len(jobs)}, skipped 0 existing, failed 0" in proc.stdout, proc.stderr
    assert not _markers(base), _markers(base)
    assert not list(cwd.iterdir())
    _check(run, out, log, jobs, env=quote != "bash")


def test_help_says_how_placeholders_are_quoted_and_its_example_parses(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "'{video}' or \"{video}\"" in text and "literal brace is written {{ or }}" in text
    example = re.search(r"the template: (.*?) \(placeholders", text).group(1)
    assert words(example) == [
        "bash",
        "-c",
        'python inference.py --face "$1" --outfile "$2" > "$2.log"',
        "_",
        JOB["video"],
        "/o/x.partial.mp4",
    ]


def test_timeout_missing_program_and_stderr_are_reported_per_job(hostile_plan):
    from lipleak.protocol.runner import generate

    base, run, _, _ = hostile_plan
    cells = {("AM", "CR")}
    slow = f"{shlex.quote(PY)} -c 'import time; time.sleep(30)' {{out}}"
    r = generate(run, slow, out_dir=base / "t-slow", only=cells, timeout=0.5, quiet=True)
    assert r["failed"] == len(NAMES) and r["generated"] == 0
    assert all(f["returncode"] == -1 and "timed out" in f["stderr_tail"] for f in r["failures"])
    r = generate(run, "no-such-program-x {video}", out_dir=base / "t-none", only=cells, quiet=True)
    assert {f["returncode"] for f in r["failures"]} == {127}
    assert "no-such-program-x" in r["failures"][0]["stderr_tail"]
    bad = f"{shlex.quote(PY)} -c 'import sys; sys.exit(\"boom \\xff\" + sys.argv[1])' {{stem}}"
    r = generate(run, bad, out_dir=base / "t-bad", only=cells, quiet=True)
    assert {f["returncode"] for f in r["failures"]} == {1}
    assert {f["stderr_tail"] for f in r["failures"]} == {f"boom \xff{n}" for n in NAMES}
    assert not list(base.glob("t-*/**/*.partial*"))
