"""`generate`: run any generator's command line over a plan, resumably.

Each job's output is written by the generator to ``<stem>.partial<ext>`` and renamed into
place only when the command succeeds and left a non-empty file, so an interrupted job
never leaves a file that looks finished. Existing outputs are skipped; failures are
appended to ``generate_failures.jsonl`` with the tail of the command's stderr and retried
on the next run.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..errors import LipleakError
from .dataset import jobs_path
from .planner import load_plan

PLACEHOLDERS = ("video", "audio", "out", "ref_frames", "reference", "setup", "stem")


def _jobs(plan_dir: Path) -> list[dict]:
    path = jobs_path(plan_dir)
    if not path.is_file():
        raise LipleakError(f"{path}: jobs file not found next to the plan")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def render(cmd: str, job: dict, plan_dir: Path, out: Path) -> str:
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
    try:
        return cmd.format(**{k: shlex.quote(v) for k, v in values.items()})
    except (KeyError, IndexError, ValueError) as exc:
        raise LipleakError(
            f"--cmd: bad placeholder {exc}; use {{" + "}, {".join(PLACEHOLDERS) + "}"
        ) from None


def _run_one(cmd: str, job: dict, plan_dir: Path, out_dir: Path, timeout: float | None) -> dict:
    final = out_dir / job["output"]
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f"{final.stem}.partial{final.suffix}")
    partial.unlink(missing_ok=True)
    line = render(cmd, job, plan_dir, partial)
    t = time.perf_counter()
    try:
        proc = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=timeout)
        rc, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, err = -1, f"timed out after {timeout} s\n{exc.stderr or ''}"
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
    render(cmd, todo[0], plan_dir, Path("x.mp4")) if todo else None  # fail fast on bad --cmd
    failures, done = [], 0
    log = out_dir / "generate_failures.jsonl"
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="video", disable=quiet, desc="generate")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(_run_one, cmd, j, plan_dir, out_dir, timeout) for j in todo]
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
