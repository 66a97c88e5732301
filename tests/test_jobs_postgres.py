"""The job store on a real PostgreSQL server: a throwaway cluster started by the test, the
store's operations against it, and a publish recorded into it through REELFORGE_JOBS_URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from conftest import ROOT, media, run_cli
from daemons import postgres_cluster

from reelforge.pipeline.jobs import JobStore, UnknownJobError

FAST = ("--preset", "fast", "--no-quality", "--no-thumbnails", "--no-fallback")


@pytest.fixture(scope="module")
def pg_url():
    with postgres_cluster() as url:
        yield url


@pytest.fixture
def store(pg_url):
    store = JobStore(pg_url)
    with store.engine.begin() as c:  # each test starts from an empty store
        c.exec_driver_sql("TRUNCATE jobs, job_steps")
    yield store
    store.close()


def test_jobs_and_steps_on_postgresql(store):
    assert store.engine.dialect.name == "postgresql"
    args = {"argv": ["in.mp4", "-o", "out"], "cwd": "/srv/x", "nested": {"n": [1, 2]}}
    job_id = store.create("publish", args, "out", subject="abc123")
    job = store.get(job_id)
    assert (job.status, job.attempts, job.args, job.subject) == ("queued", 0, args, "abc123")

    store.start(job_id)
    store.step_started(job_id, "publish", "k" * 64)
    store.step_progress(job_id, "publish", 0.25, stage="encode")
    running = store.get(job_id)
    assert (running.status, running.attempts, running.current_step) == ("running", 1, "publish")
    (step,) = running.steps
    assert (step.status, step.progress, step.stage) == ("running", 0.25, "encode")
    store.step_finished(job_id, "publish", "k" * 64, "done", 1.5)
    store.step_finished(job_id, "cached-one", "c" * 64, "cached", 0.1)  # never started
    store.finish(job_id)
    done = store.get(job_id)
    assert done.status == "done" and done.finished_at is not None and done.error is None
    assert [(s.name, s.status, s.progress) for s in done.steps] == [
        ("publish", "done", 1.0), ("cached-one", "cached", 1.0)]  # fmt: skip

    # a second attempt keeps the first one's steps apart
    store.start(job_id)
    store.step_started(job_id, "publish", "k" * 64)
    store.fail(job_id, "in.mp4: not a media file", "input")
    failed = store.get(job_id)
    assert (failed.status, failed.error_code, failed.attempts) == ("failed", "input", 2)
    assert [(s.attempt, s.status) for s in failed.current_steps()] == [(2, "failed")]

    with pytest.raises(UnknownJobError):
        store.get("nosuchjob")


def test_cancel_recover_and_list_on_postgresql(store, tmp_path):
    running = store.create("publish", {"argv": []}, "a")
    store.start(running)
    assert store.cancel(running).cancel_requested and store.cancelled(running)
    assert store.get(running).status == "running"  # it stops at its next check
    store.mark_cancelled(running)
    assert store.get(running).status == "cancelled"
    queued = store.create("images", {"argv": []}, "b")
    assert store.cancel(queued).status == "cancelled"

    # a job whose process went away (SIGKILLed) is found interrupted by recover()
    code = ("import os, signal, sys; from reelforge.pipeline.jobs import JobStore; "
            "s = JobStore(sys.argv[1]); j = s.create('publish', {'argv': []}, 'c'); "
            "s.start(j); s.step_started(j, 'publish', 'k'); print(j, flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")  # fmt: skip
    child = subprocess.run([sys.executable, "-c", code, store.url], capture_output=True,
                           text=True, cwd=ROOT, timeout=60)  # fmt: skip
    gone = child.stdout.strip()
    assert child.returncode == -9 and store.get(gone).status == "running"
    assert store.recover() == [gone]
    recovered = store.get(gone)
    assert recovered.status == "interrupted" and recovered.steps[0].status == "failed"

    assert [j.id for j in store.list()] == [gone, queued, running]  # newest first
    assert [j.id for j in store.list(status="cancelled")] == [queued, running]
    assert [j.id for j in store.list(kind="images")] == [queued]
    assert len(store.list(limit=1)) == 1


def test_writers_in_many_threads_on_postgresql(store):
    ids: list[str] = []

    def write() -> None:
        for _ in range(10):
            job_id = store.create("publish", {"argv": []}, "o")
            store.start(job_id)
            store.step_started(job_id, "publish", "k")
            store.step_progress(job_id, "publish", 0.5)
            store.finish(job_id)
            ids.append(job_id)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 40
    assert {j.status for j in store.list(limit=100)} == {"done"}


def test_a_publish_is_recorded_into_postgresql(pg_url, store, tmp_path):
    out = tmp_path / "stream"
    env = {**os.environ, "REELFORGE_JOBS_URL": pg_url, "REELFORGE_STATE": str(tmp_path / "st")}
    result = run_cli("publish", media("video/bbb_720p_2s_h264.mp4"), "-o", out, *FAST,
                     "--json", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (out / "master.m3u8").is_file()
    (job,) = store.list()
    assert (job.kind, job.status, job.attempts, job.output) == ("publish", "done", 1, str(out))
    (step,) = job.steps
    assert (step.name, step.status, step.progress) == ("publish", "done", 1.0)
    assert not (tmp_path / "st" / "jobs.sqlite").exists()  # nothing went to SQLite
    listed = run_cli("jobs", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [j["id"] for j in json.loads(listed.stdout)] == [job.id]
