"""The pipeline's core on real files and real processes: step keys, the step cache under
concurrency and SIGKILL, the job store in a real SQLite file, recovery, cancelling, resuming."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reelforge.config import Config
from reelforge.errors import InputError, MediaError
from reelforge.pipeline.cache import StepCache
from reelforge.pipeline.digest import DigestMemo, file_digest, step_key
from reelforge.pipeline.jobs import JobStore
from reelforge.pipeline.runner import (
    JobCancelled,
    JobProgress,
    JsonLinesSink,
    State,
    job_run,
    register,
)
from reelforge.pipeline.spec import StepSpec

ROOT = Path(__file__).resolve().parents[1]


def script(tmp_path: Path, body: str) -> subprocess.Popen:
    """Run ``body`` (Python) in a real child process; its stdout is a pipe of lines."""
    path = tmp_path / f"child-{time.monotonic_ns()}.py"
    path.write_text(textwrap.dedent(body))
    return subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip


def wait_line(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return line.strip()


def old(path: Path) -> Path:
    """Give ``path`` an mtime well in the past (so its digest may be memoised)."""
    t = time.time() - 3600
    os.utime(path, (t, t))
    return path


# --- keys -------------------------------------------------------------------------------


def test_key_follows_content_and_options_not_timestamps_or_paths(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("one")
    old(src)
    spec = StepSpec("voice", "1", {"script": src}, {"lufs": -16.0, "backend": "espeak"})
    key = step_key(spec)
    assert len(key) == 64

    t = time.time() - 60  # only the timestamp changes
    os.utime(src, (t, t))
    assert step_key(spec) == key
    copy = tmp_path / "renamed.txt"  # the same content elsewhere: the same key
    copy.write_text("one")
    assert step_key(StepSpec("voice", "1", {"script": copy}, dict(spec.options))) == key
    # option order and tuple/list spelling do not matter; values and versions do
    assert step_key(StepSpec("voice", "1", {"script": src},
                             {"backend": "espeak", "lufs": -16.0})) == key  # fmt: skip
    louder = {"lufs": -14.0, "backend": "espeak"}
    assert step_key(StepSpec("voice", "1", {"script": src}, louder)) != key
    assert step_key(StepSpec("voice", "2", {"script": src}, dict(spec.options))) != key
    assert step_key(StepSpec("voice", "1", {"text": src}, dict(spec.options))) != key

    src.write_text("two")  # same size, new content
    assert step_key(spec) != key


def test_folder_inputs_are_digested_by_names_and_contents(tmp_path):
    folder = tmp_path / "faces"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"a")
    (folder / "sub" / "b.png").write_bytes(b"b")
    spec = StepSpec("images", "1", {"src": folder}, {})
    key = step_key(spec)
    (folder / "sub" / "b.png").rename(folder / "sub" / "c.png")
    renamed = step_key(spec)
    assert renamed != key
    (folder / "sub" / "c.png").write_bytes(b"c")
    assert step_key(spec) not in (key, renamed)


def test_options_must_be_json_and_missing_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="plain JSON"):
        StepSpec("voice", "1", {}, {"path": Path("x")})
    with pytest.raises(InputError, match="no such file"):
        step_key(StepSpec("voice", "1", {"script": tmp_path / "missing.txt"}, {}))
    spec = StepSpec("talk", "3", {"audio": tmp_path / "a.wav"}, {"fps": 25, "size": (640, 360)})
    again = StepSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec and again.options["size"] == [640, 360]


def test_digests_are_memoised_in_a_real_sqlite_file(tmp_path):
    memo_path = tmp_path / "state" / "digests.sqlite"
    src = tmp_path / "clip.bin"
    src.write_bytes(os.urandom(100_000))
    fresh = file_digest(src, DigestMemo(memo_path))
    with sqlite3.connect(memo_path) as db:  # a file written just now is not trusted yet
        assert db.execute("SELECT count(*) FROM digests").fetchone()[0] == 0
    old(src)
    assert file_digest(src, DigestMemo(memo_path)) == fresh
    with sqlite3.connect(memo_path) as db:
        (path, size, inode, digest), = db.execute(
            "SELECT path, size, inode, sha256 FROM digests").fetchall()  # fmt: skip
    assert (path, size, inode, digest) == (str(src.resolve()), 100_000, src.stat().st_ino, fresh)
    # a new process trusts the row while size, mtime and inode hold; a rewrite is read again
    with sqlite3.connect(memo_path) as db:
        db.execute("UPDATE digests SET sha256 = 'f00d'")
    assert file_digest(src, DigestMemo(memo_path)) == "f00d"
    src.write_bytes(os.urandom(100_000))
    old(src)
    assert file_digest(src, DigestMemo(memo_path)) not in ("f00d", fresh)


# --- the step cache ---------------------------------------------------------------------

BUILD = """
import json, os, sys, time
from pathlib import Path
from reelforge.pipeline.cache import StepCache
root, key, log = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
def make(folder):
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\\n")
    (folder / "out.txt").write_text("built")
    time.sleep(float(sys.argv[4]))
    return {"pid": os.getpid()}
print("ready", flush=True)
r = StepCache(root).build(key, "demo", make)
print(json.dumps({"cached": r.cached, "report": r.report}), flush=True)
"""


def test_cache_builds_a_key_once_under_two_processes(tmp_path):
    code = tmp_path / "build.py"
    code.write_text(BUILD)
    key, log = "ab" * 32, tmp_path / "builds.log"
    procs = [subprocess.Popen([sys.executable, str(code), str(tmp_path / "cache"), key,
                               str(log), "1.5"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(2)]  # fmt: skip
    outs = [json.loads(p.communicate(timeout=60)[0].splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(log.read_text().split()) == 1  # one build
    assert sorted(o["cached"] for o in outs) == [False, True]  # the second waited, found it
    assert outs[0]["report"] == outs[1]["report"]
    found = StepCache(tmp_path / "cache").lookup(key)
    assert found.file("out.txt").read_text() == "built" and found.cached


def test_a_killed_build_leaves_nothing_visible_and_is_rebuilt(tmp_path):
    code = tmp_path / "build.py"
    code.write_text(BUILD)
    root, key, log = tmp_path / "cache", "cd" * 32, tmp_path / "builds.log"
    proc = subprocess.Popen([sys.executable, str(code), str(root), key, str(log), "60"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 30
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    cache = StepCache(root)
    assert cache.lookup(key) is None
    assert not cache.folder(key).exists()
    assert list(cache.folder(key).parent.glob(f".{key}.partial-*"))  # hidden leftovers only

    calls = []
    result = cache.build(key, "demo", lambda f: calls.append(f) or {"again": True})
    assert calls and not result.cached and result.report == {"again": True}
    assert not list(cache.folder(key).parent.glob(f".{key}.partial-*"))
    assert cache.lookup(key).report == {"again": True}


def test_a_failing_build_leaves_no_result(tmp_path):
    cache = StepCache(tmp_path / "cache")

    def broken(folder: Path) -> dict:
        (folder / "half.txt").write_text("half")
        raise MediaError("encoder failed", path="clip.mp4")

    with pytest.raises(MediaError):
        cache.build("ef" * 32, "demo", broken)
    assert cache.lookup("ef" * 32) is None
    assert not list(cache.folder("ef" * 32).parent.glob(".*partial*"))


# --- the job store ----------------------------------------------------------------------


def test_job_store_round_trip_through_a_real_sqlite_file(tmp_path):
    db = tmp_path / "state" / "jobs.sqlite"
    store = JobStore(db)
    ids = [store.create("publish", {"argv": ["clip.mp4", "-o", "out"], "cwd": "/w"}, "out",
                        subject="file:" + "0" * 64) for _ in range(3)]  # fmt: skip
    assert ids == sorted(ids) and len(set(ids)) == 3 and all(len(i) == 14 for i in ids)
    job_id = ids[1]
    store.start(job_id)
    store.step_started(job_id, "voice", "1" * 64)
    store.step_progress(job_id, "voice", 0.5, stage="synthesis")
    store.step_finished(job_id, "voice", "1" * 64, "done", 1.25)
    store.step_finished(job_id, "talk", "2" * 64, "cached", 0.01)
    store.step_started(job_id, "assemble", "3" * 64)
    store.step_failed(job_id, "assemble", "3" * 64, "clip.mp4: broken")
    store.fail(job_id, "clip.mp4: broken", "media")
    store.close()

    with sqlite3.connect(db) as raw:  # the file itself: WAL, two tables
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT status FROM jobs WHERE id=?", (job_id,)).fetchone() == \
            ("failed",)  # fmt: skip
    job = JobStore(f"sqlite:///{db}").get(job_id)
    assert (job.kind, job.status, job.error, job.error_code, job.attempts) == \
        ("publish", "failed", "clip.mp4: broken", "media", 1)  # fmt: skip
    assert job.args == {"argv": ["clip.mp4", "-o", "out"], "cwd": "/w"}
    assert [(s.name, s.status, s.seconds) for s in job.steps] == [
        ("voice", "done", 1.25),
        ("talk", "cached", 0.01),
        ("assemble", "failed", None),
    ]
    assert job.steps[0].stage == "synthesis" and job.steps[0].progress == 1.0
    data = json.loads(job.model_dump_json())
    assert data["created_at"].endswith("Z") and data["steps"][2]["error"] == "clip.mp4: broken"

    again = JobStore(db)
    assert [j.id for j in again.list()] == ids[::-1]
    assert [j.id for j in again.list(status="failed")] == [job_id]
    assert [j.id for j in again.list(subject="file:" + "0" * 64, limit=2)] == ids[:0:-1]
    again.start(job_id)  # a retry: a second attempt, errors cleared, old steps kept
    job = again.get(job_id)
    assert (job.status, job.attempts, job.error) == ("running", 2, None)
    assert job.current_steps() == [] and len(job.steps) == 3


def test_recover_marks_a_sigkilled_job_interrupted(tmp_path):
    db = tmp_path / "jobs.sqlite"
    child = script(
        tmp_path,
        f"""
        import time
        from reelforge.pipeline.jobs import JobStore
        store = JobStore({str(db)!r})
        job = store.create("publish", {{"argv": []}}, "out")
        store.start(job)
        store.step_started(job, "publish", "a" * 64)
        print(job, flush=True)
        time.sleep(60)
    """,
    )
    job_id = wait_line(child)
    store = JobStore(db)
    mine = store.create("publish", {"argv": []}, "mine")
    store.start(mine)  # running in this (live) process: left alone
    assert store.recover() == []  # the child still runs
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert store.recover() == [job_id]
    job = store.get(job_id)
    assert job.status == "interrupted" and job.steps[0].status == "failed"
    assert store.get(mine).status == "running"
    assert store.recover() == []


def test_a_reused_pid_is_not_taken_for_the_job_process(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    job_id = store.create("publish", {"argv": []}, "out")
    store.start(job_id)
    from reelforge.pipeline.jobs import jobs_table

    with store.engine.begin() as c:  # our PID, but a start time that is not ours
        c.execute(jobs_table.update().values(pid_started="1"))
    assert store.recover() == [job_id]


# --- running steps ----------------------------------------------------------------------


@register("test-upper")
def _upper(spec: StepSpec, out: Path, progress) -> dict:
    update = progress.stage("upper", 3, "parts")
    text = spec.inputs["text"].read_text()
    for i in range(4):
        update(i)
    (out / "upper.txt").write_text(text.upper())
    if spec.options.get("fail_if") and Path(spec.options["fail_if"]).exists():
        raise MediaError("told to fail", path=spec.inputs["text"])
    return {"chars": len(text)}


def test_pipeline_records_steps_and_resumes_from_the_failed_one(tmp_path):
    state = State.open(Config(state_dir=tmp_path / "state"))
    text = tmp_path / "t.txt"
    text.write_text("hello")
    flag = tmp_path / "fail"
    flag.write_text("")
    first = StepSpec("test-upper", "1", {"text": text}, {})
    second = StepSpec("test-upper", "1", {"text": text}, {"fail_if": str(flag)})
    job_id = state.store.create("test", {"argv": []}, "out")
    with pytest.raises(MediaError), job_run(state.store, job_id):
        p = state.pipeline(job_id)
        assert p.run(first).file("upper.txt").read_text() == "HELLO"
        p.run(second)
    job = state.store.get(job_id)
    assert (job.status, job.error_code) == ("failed", "media")
    assert [(s.status, s.progress) for s in job.steps] == [("done", 1.0), ("failed", 1.0)]

    flag.unlink()
    with job_run(state.store, job_id):  # the same job again: the first step from the cache
        p = state.pipeline(job_id)
        p.run(first)
        p.run(second)
    assert [o["status"] for o in p.outcomes()] == ["cached", "done"]
    job = state.store.get(job_id)
    assert job.status == "done" and job.attempts == 2
    assert [s.status for s in job.current_steps()] == ["cached", "done"]


CANCELLABLE = """
import sys, time
from pathlib import Path
from reelforge.config import Config
from reelforge.media import ffmpeg
from reelforge.pipeline.runner import State, job_run, register
from reelforge.pipeline.spec import StepSpec

@register("test-slow")
def slow(spec, out, progress):
    (out / "partial.txt").write_text("x")
    if spec.options["ffmpeg"]:  # reports nothing while ffmpeg runs
        ffmpeg.run(["-re", "-f", "lavfi", "-i", "nullsrc=s=64x64:d=120", "-f", "null", "-"],
                   subject="nullsrc")
        return {}
    update = progress.stage("slow", 1000)
    for i in range(1000):
        update(i)
        time.sleep(0.05)
    return {}

state = State.open(Config(state_dir=Path(sys.argv[1])))
job = state.store.create("test", {"argv": []}, "out")
print(job, flush=True)
with job_run(state.store, job):
    state.pipeline(job).run(StepSpec("test-slow", "1", {}, {"ffmpeg": sys.argv[2] == "1"}))
"""


@pytest.mark.timing  # stopped within 5 s of the cancel
@pytest.mark.parametrize("with_ffmpeg", [False, True], ids=["progress", "ffmpeg"])
def test_cancel_stops_a_running_step(tmp_path, with_ffmpeg):
    code = tmp_path / "slow.py"
    code.write_text(CANCELLABLE)
    state_dir = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, str(code), str(state_dir), str(int(with_ffmpeg))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)  # fmt: skip
    job_id = wait_line(proc)
    store = JobStore(state_dir / "jobs.sqlite")
    deadline = time.monotonic() + 30
    while not store.get(job_id).steps and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    assert store.cancel(job_id).status == "running"  # flagged; the runner stops it
    started = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 5
    assert proc.returncode == 1 and "JobCancelled" in err
    job = store.get(job_id)
    assert job.status == "cancelled" and job.steps[0].status == "failed"
    assert job.steps[0].error.startswith(f"job {job_id} cancelled")
    steps = state_dir / "steps"
    assert not [p for p in steps.rglob("*") if p.is_dir() and not p.name.startswith(".")
                and len(p.name) == 64]  # fmt: skip


def test_cancel_before_start_and_between_steps(tmp_path):
    state = State.open(Config(state_dir=tmp_path / "state"))
    text = tmp_path / "t.txt"
    text.write_text("x")
    job_id = state.store.create("test", {"argv": []}, "out")
    assert state.store.cancel(job_id).status == "cancelled"  # queued: at once
    other = state.store.create("test", {"argv": []}, "out")
    with pytest.raises(JobCancelled), job_run(state.store, other):
        p = state.pipeline(other)
        p.run(StepSpec("test-upper", "1", {"text": text}, {"n": 1}))
        state.store.cancel(other)
        p.run(StepSpec("test-upper", "1", {"text": text}, {"n": 2}))
    job = state.store.get(other)
    assert job.status == "cancelled" and [s.status for s in job.steps] == ["done"]


def test_job_progress_is_throttled_and_sinks_get_json_lines(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    job_id = store.create("test", {"argv": []}, "out")
    store.start(job_id)
    store.step_started(job_id, "encode", "e" * 64)
    lines = io.StringIO()
    writes = []
    real = store.step_progress
    store.step_progress = lambda *a, **k: (writes.append(a), real(*a, **k))  # count writes
    progress = JobProgress(store, job_id, "encode", sink=JsonLinesSink(lines, per_second=4))
    update = progress.stage("video", 200, "frames")
    started = time.monotonic()
    for i in range(201):
        update(i)
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    assert len(writes) <= elapsed * 4 + 2  # throttled, and the end always written
    assert store.get(job_id).steps[0].progress == 1.0
    events = [json.loads(x) for x in lines.getvalue().splitlines()]
    assert events[0] == {"step": "encode", "stage": "video", "progress": 0.0}
    assert events[-1]["progress"] == 1.0 and len(events) <= elapsed * 4 + 3
