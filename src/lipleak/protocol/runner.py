"""`generate`: run any generator's command line over a plan, resumably.

Each job's output is written by the generator to ``<stem>.partial<ext>`` and renamed into
place only when the command succeeds and left a non-empty file, so an interrupted job
never leaves a file that looks finished. Existing outputs are skipped; failures are
appended to ``generate_failures.jsonl`` with the tail of the command's stderr and retried
on the next run.

The ``--cmd`` template is split into words once, as a POSIX shell would split it (quotes
and backslashes honoured), and every job runs as an argument vector without a shell. A
placeholder's value goes verbatim into the word that holds it, whatever quoting surrounds
it, so no file name (``a;b``, ``$(x)``, backticks, quotes) is ever read as shell code.
Templates that rely on shell syntax (pipes, ``&&``, redirections, ``$`` expansions, globs)
are refused with a one-line message instead of running differently than written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from string import Formatter

from ..errors import LipleakError
from .dataset import jobs_path
from .planner import load_plan

PLACEHOLDERS = ("video", "audio", "out", "ref_frames", "reference", "setup", "stem")

_OPERATORS = "|&;<>()\n"
_GLOBS = "*?["
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "fish"}
_PYTHON = re.compile(r"python[0-9.]*")
_BASH_C_HINT = "or run it as bash -c '... \"$1\" ...' _ {video} (paths as arguments)"


@dataclass(frozen=True)
class CmdTemplate:
    """A parsed ``--cmd``: leading ``NAME=value`` words (environment) and the argv; every
    word is a list of (literal text, placeholder or None) pieces."""

    env: tuple[tuple[str, tuple[tuple[str, str | None], ...]], ...]
    argv: tuple[tuple[tuple[str, str | None], ...], ...]


def _refuse(cmd: str, i: int, why: str) -> LipleakError:
    return LipleakError(f"--cmd: {cmd[i]!r} at column {i + 1}: {why}")


def _split(cmd: str) -> list[list[tuple[str, bool]]]:
    """Words as sh splits them, each a list of (character, quoted). Shell syntax that would
    act differently without a shell raises: the command is never run through one."""
    words: list[list[tuple[str, bool]]] = []
    cur: list[tuple[str, bool]] | None = None
    i, n = 0, len(cmd)
    while i < n:
        c = cmd[i]
        if c in " \t":
            if cur is not None:
                words.append(cur)
                cur = None
            i += 1
            continue
        if c == "#" and cur is None:
            raise _refuse(cmd, i, "a shell comment; quote it ('#') if it is part of an argument")
        if cur is None:
            cur = []
        if c == "\\":
            if i + 1 == n:
                raise _refuse(cmd, i, "a backslash at the end escapes nothing")
            if cmd[i + 1] != "\n":  # backslash-newline continues the line, as in sh
                cur.append((cmd[i + 1], True))
            i += 2
        elif c == "'":
            j = cmd.find("'", i + 1)
            if j < 0:
                raise _refuse(cmd, i, "this quote is never closed")
            cur.extend((ch, True) for ch in cmd[i + 1 : j])
            i = j + 1
        elif c == '"':
            start, i = i, i + 1
            while True:
                if i == n:
                    raise _refuse(cmd, start, "this quote is never closed")
                ch = cmd[i]
                if ch == '"':
                    i += 1
                    break
                if ch == "\\" and i + 1 < n and cmd[i + 1] in '$`"\\\n':
                    if cmd[i + 1] != "\n":
                        cur.append((cmd[i + 1], True))
                    i += 2
                    continue
                if ch in "$`":
                    raise _refuse(
                        cmd,
                        i,
                        "the command runs without a shell, so nothing is expanded inside "
                        "double quotes; write the value out, use single quotes for a literal "
                        "'$', " + _BASH_C_HINT,
                    )
                cur.append((ch, True))
                i += 1
        elif c in "$`":
            raise _refuse(
                cmd,
                i,
                "the command runs without a shell, so nothing is expanded; write the value "
                "out, quote it ('$') if it is literal, " + _BASH_C_HINT,
            )
        elif c in _OPERATORS:
            raise _refuse(
                cmd,
                i,
                "pipes, redirections, ';', '&&' and subshells need a shell, and the command "
                "runs without one; quote it if it is literal, " + _BASH_C_HINT,
            )
        elif c in _GLOBS:
            raise _refuse(
                cmd, i, "file name patterns are not expanded (no shell); quote it if literal"
            )
        else:
            cur.append((c, False))
            i += 1
    if cur is not None:
        words.append(cur)
    return words


def _expand_tilde(word: list[tuple[str, bool]]) -> str:
    """The word as text, with a leading unquoted ``~`` or ``~user`` expanded as sh does."""
    text = "".join(ch for ch, _ in word)
    if not word or word[0] != ("~", False):
        return text
    end = text.find("/")
    end = len(text) if end < 0 else end
    if any(q for _, q in word[:end]):
        return text
    home = os.path.expanduser(text[:end])
    # the home folder is literal text, not placeholder syntax
    return home.replace("{", "{{").replace("}", "}}") + text[end:]


def _pieces(text: str) -> tuple[tuple[str, str | None], ...]:
    names = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    try:
        parsed = list(Formatter().parse(text))
    except ValueError as exc:
        raise LipleakError(
            f"--cmd: bad placeholder syntax in {text!r} ({exc}); placeholders are {names}, "
            "and a literal brace is written {{ or }}"
        ) from None
    out = []
    for literal, field, spec, conv in parsed:
        if field is not None and (field not in PLACEHOLDERS or spec or conv):
            shown = "{" + field + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            raise LipleakError(
                f"--cmd: bad placeholder {shown} in {text!r}; use {names} (bare, no format "
                "spec), and write a literal brace as {{ or }}"
            )
        out.append((literal, field))
    return tuple(out)


def _check_code_words(words: list[str], argv) -> None:
    """Refuse a placeholder inside the code given to ``sh -c`` / ``python -c``: there the
    value would become code again, which is what running without a shell avoids."""
    for k, w in enumerate(words):
        base = os.path.basename(w)
        shell = base in _SHELLS
        if not (shell or _PYTHON.fullmatch(base)):
            continue
        j = k + 1
        while j < len(words) and words[j].startswith(("-", "+")) and words[j] != "--":
            opt = words[j]
            if opt in (("-o", "+o", "-O", "+O") if shell else ("-W", "-X")):
                j += 2
                continue
            if opt == "-m" or opt.startswith("--"):
                break
            if opt[0] == "-" and "c" in opt[1:]:
                if j + 1 < len(words) and any(f for _, f in argv[j + 1]):
                    use = "'... \"$1\" ...' _ {video}" if shell else "'... sys.argv[1] ...' {video}"
                    raise LipleakError(
                        f"--cmd: a placeholder inside the code passed to {base} {opt} would be "
                        "run as code (a file named 'a;rm x' is then a command); pass it as an "
                        f"argument instead: {base} {opt} {use}"
                    )
                break
            j += 1


def parse_cmd(cmd: str) -> CmdTemplate:
    """Split and check a ``--cmd`` template once; raises a one-line LipleakError."""
    words = _split(cmd)
    texts = [_expand_tilde(w) for w in words]
    env, k = [], 0
    # leading NAME=value words set the environment, as in sh (CUDA_VISIBLE_DEVICES=0 ...)
    while k < len(texts):
        name, eq, value = texts[k].partition("=")
        if not eq or not _NAME.fullmatch(name) or any(q for _, q in words[k][: len(name) + 1]):
            break
        env.append((name, _pieces(value)))
        k += 1
    argv = [_pieces(t) for t in texts[k:]]
    if not argv:
        raise LipleakError("--cmd: no command to run")
    _check_code_words(texts[k:], argv)
    return CmdTemplate(env=tuple(env), argv=tuple(argv))


def _jobs(plan_dir: Path) -> list[dict]:
    path = jobs_path(plan_dir)
    if not path.is_file():
        raise LipleakError(f"{path}: jobs file not found next to the plan")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def render(
    tmpl: CmdTemplate, job: dict, plan_dir: Path, out: Path
) -> tuple[list[str], dict[str, str]]:
    """The job's argv and the environment assignments of the template, values verbatim."""
    ref = job["reference_frames"]
    values = {
        "video": job["video"],
        "audio": str(plan_dir / job["audio"]),
        "out": str(out),
        "ref_frames": ref if isinstance(ref, str) else ",".join(map(str, ref)),
        "reference": job["reference"],
        "setup": job["setup"],
        "stem": job["stem"],
    }

    def fill(pieces) -> str:
        return "".join(lit + ("" if f is None else values[f]) for lit, f in pieces)

    return [fill(w) for w in tmpl.argv], {name: fill(v) for name, v in tmpl.env}


def _run_one(
    tmpl: CmdTemplate, job: dict, plan_dir: Path, out_dir: Path, timeout: float | None
) -> dict:
    final = out_dir / job["output"]
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f"{final.stem}.partial{final.suffix}")
    partial.unlink(missing_ok=True)
    argv, env = render(tmpl, job, plan_dir, partial)
    t = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            env={**os.environ, **env} if env else None,
            capture_output=True,
            text=True,
            errors="replace",  # a generator's stderr in another encoding is still reported
            timeout=timeout,
        )
        rc, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr or ""
        if isinstance(stderr, bytes):
            stderr = stderr.decode(errors="replace")
        rc, err = -1, f"timed out after {timeout} s\n{stderr}"
    except OSError as exc:  # the exit codes sh gives for "not found" and "not executable"
        rc = 127 if isinstance(exc, FileNotFoundError) else 126
        err = f"{argv[0]}: {exc.strerror or exc}"
    ok = rc == 0 and partial.is_file() and partial.stat().st_size > 0
    if ok:
        os.replace(partial, final)
    else:
        partial.unlink(missing_ok=True)
    tail = "\n".join((err or "").strip().splitlines()[-10:])
    if rc == 0 and not ok:
        tail = "the command exited 0 but wrote no output file"
    return {
        "job": job,
        "ok": ok,
        "returncode": rc,
        "stderr_tail": tail,
        "seconds": round(time.perf_counter() - t, 3),
    }


def generate(
    plan_path: Path,
    cmd: str,
    jobs: int = 1,
    out_dir: Path | None = None,
    only: set[tuple[str, str]] | None = None,
    timeout: float | None = None,
    quiet: bool = False,
) -> dict:
    """Run ``cmd`` for every job whose output is missing; returns counts and failures."""
    tmpl = parse_cmd(cmd)  # a bad template fails before any job runs
    plan, plan_dir = load_plan(plan_path)
    out_dir = Path(out_dir) if out_dir else plan_dir
    todo, skipped = [], 0
    for job in _jobs(plan_dir):
        if only and (job["setup"], job["reference"]) not in only:
            continue
        if (out_dir / job["output"]).is_file():
            skipped += 1
        else:
            todo.append(job)
    failures, done = [], 0
    log = out_dir / "generate_failures.jsonl"
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="video", disable=quiet, desc="generate")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(_run_one, tmpl, j, plan_dir, out_dir, timeout) for j in todo]
        for fut in as_completed(futures):
            r = fut.result()
            bar.update(1)
            if r["ok"]:
                done += 1
            else:
                failures.append(r)
                with open(log, "a") as f:
                    f.write(json.dumps({**r, "time": time.time()}) + "\n")
                if not quiet:
                    j = r["job"]
                    bar.write(
                        f"failed: {j['setup']}/{j['reference']}/{j['stem']} "
                        f"(exit {r['returncode']}): {r['stderr_tail'][-300:]}"
                    )
    bar.close()
    return {"generated": done, "skipped": skipped, "failed": len(failures), "failures": failures}
