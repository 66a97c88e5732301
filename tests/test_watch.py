"""`reelforge watch` on a real inbox: two clips, a renamed copy, a photo, a broken file,
dot-files and partial uploads; a second run does nothing; SIGTERM mid-publish stops
cleanly and the restart resumes the same job; a failed file is retried from failed/."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CLI, ROOT, assert_refused, media, run_ffmpeg
from conftest import run_cli as _run_cli

from reelforge.pipeline.jobs import JobStore

PUBLISH = ("--preset", "fast", "--no-quality", "--no-fallback")
IMAGES = ("--widths", "320", "--formats", "webp")


def run(state: Path, *args, **kwargs) -> subprocess.CompletedProcess:
    return _run_cli(*args, env={**os.environ, "REELFORGE_STATE": str(state)}, **kwargs)


def events(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def age(*paths: Path, seconds: float = 3600) -> None:
    t = time.time() - seconds
    for p in paths:
        os.utime(p, (t, t))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clips")
    a, b = folder / "harbour.mp4", folder / "sintel.mp4"
    run_ffmpeg("-i", media("video/tears_of_steel_360p_10s.mp4"), "-t", "2", "-c", "copy", a)
    run_ffmpeg("-i", media("video/sintel_480p_2s_h264.mp4"), "-t", "2", "-c", "copy", b)
    return a, b


def test_watch_once_publishes_each_file_once_and_a_second_run_does_nothing(tmp_path, clips):
    inbox, library, state = tmp_path / "inbox", tmp_path / "library", tmp_path / "state"
    inbox.mkdir()
    shutil.copy(clips[0], inbox / "harbour.mp4")
    shutil.copy(clips[0], inbox / "harbour copy.mp4")  # the same content, another name
    shutil.copy(media("photos/kodim03.png"), inbox / "cap.png")
    (inbox / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(4000))
    (inbox / ".hidden.mp4").write_bytes(b"x")  # dot-files and partial uploads are ignored
    (inbox / "upload.mp4.part").write_bytes(b"x")
    (inbox / "notes").mkdir()
    age(*inbox.iterdir())
    shutil.copy(clips[1], inbox / "sintel.mp4")  # still fresh: taken once it has settled
    started = time.monotonic()
    result = run(state, "watch", inbox, "-o", library, "--once", "--settle", "1.5",
                 "--interval", "0.2", "--json", *PUBLISH, *IMAGES)  # fmt: skip
    seen = [e for e in events(result) if "event" in e]
    by_file = {}
    for e in seen:
        by_file.setdefault(e["file"], []).append(e["event"])
    assert by_file == {
        "broken.mp4": ["started", "failed"],
        "cap.png": ["started", "done"],
        "harbour copy.mp4": ["started", "done"],  # the first of the two names, sorted
        "harbour.mp4": ["skipped"],
        "sintel.mp4": ["started", "done"],
    }, seen
    assert [e["file"] for e in seen if e["event"] == "started"][-1] == "sintel.mp4"
    assert time.monotonic() - started > 1.5
    progress = [e for e in events(result) if "step" in e]
    assert {e["step"] for e in progress} == {"publish", "images"}
    assert any(e["progress"] == 1.0 for e in progress)

    for stem in ("harbour-copy", "sintel"):
        assert (library / stem / "master.m3u8").is_file(), sorted(library.iterdir())
    manifest = json.loads((library / "images" / "cap" / "manifest.json").read_text())
    assert {v["width"] for v in manifest["images"][0]["variants"]} == {320}
    assert sorted(p.name for p in library.iterdir()) == ["harbour-copy", "images", "sintel"]

    failed = inbox / "failed"
    assert sorted(p.name for p in failed.iterdir()) == ["broken.mp4", "broken.mp4.error.txt"]
    note = (failed / "broken.mp4.error.txt").read_text()
    broken_job = next(e["job"] for e in seen if e["event"] == "failed")
    assert "broken.mp4" in note and f"reelforge jobs retry {broken_job}" in note
    assert sorted(p.name for p in inbox.iterdir()) == [
        ".hidden.mp4", ".reelforge-watch.lock", "cap.png", "failed", "harbour copy.mp4",
        "harbour.mp4", "notes", "sintel.mp4", "upload.mp4.part"]  # fmt: skip

    jobs = JobStore(state / "jobs.sqlite").list()
    assert sorted((j.kind, j.status) for j in jobs) == [
        ("images", "done"),
        ("publish", "done"),
        ("publish", "done"),
        ("publish", "failed"),
    ]
    assert all(j.subject and j.args["watch"]["inbox"] == str(inbox.resolve()) for j in jobs)

    again = run(state, "watch", inbox, "-o", library, "--once", "--settle", "1.5", *PUBLISH)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines() == [f"Watching {inbox.resolve()} → "
                                                 f"{library.resolve()}"]  # fmt: skip
    assert len(JobStore(state / "jobs.sqlite").list()) == 4  # nothing new

    # the failed file, retried: moved back, fails again, back in failed/ with its note
    retried = run(state, "jobs", "retry", broken_job)
    assert_refused(retried, "broken.mp4")
    assert (failed / "broken.mp4").is_file() and not (inbox / "broken.mp4").exists()
    assert JobStore(state / "jobs.sqlite").get(broken_job).attempts == 2


@pytest.mark.timing  # stopped within 5 s of SIGTERM
def test_sigterm_stops_cleanly_and_the_restart_resumes_the_job(tmp_path):
    inbox, library, state = tmp_path / "inbox", tmp_path / "library", tmp_path / "state"
    inbox.mkdir()
    shutil.copy(media("video/tears_of_steel_360p_10s.mp4"), inbox / "long.mp4")
    age(inbox / "long.mp4")
    env = {**os.environ, "REELFORGE_STATE": str(state)}
    watcher = subprocess.Popen([*CLI, "watch", str(inbox), "-o", str(library), "--settle", "1",
                                "--interval", "0.5", "--json", "--preset", "fast"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT, env=env)  # fmt: skip
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the encode reports progress
        lines.append(json.loads(watcher.stdout.readline()))
        if lines[-1].get("stage") == "encode" and lines[-1]["progress"] > 0:
            break
    job_id = lines[0]["job"]
    second = run(state, "watch", inbox, "-o", library, "--once")  # one watcher per inbox
    assert_refused(second, "is already watched (PID")
    watcher.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    out, err = watcher.communicate(timeout=20)
    assert time.monotonic() - stopped < 5
    assert watcher.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {"event": "stopped"}
    job = JobStore(state / "jobs.sqlite").get(job_id)
    assert job.status == "interrupted"
    assert not (library / "long").exists()
    assert not [p for p in library.iterdir() if p.name.startswith(".long")]  # nothing left

    resumed = run(state, "watch", inbox, "-o", library, "--once", "--settle", "1", "--json",
                  "--preset", "fast")  # fmt: skip
    seen = [e["event"] for e in events(resumed) if "event" in e]
    assert seen == ["resumed", "done"]
    job = JobStore(state / "jobs.sqlite").get(job_id)
    assert (job.status, job.attempts) == ("done", 2)
    assert (library / "long" / "master.m3u8").is_file()


def test_watch_refuses_bad_setups(tmp_path):
    state = tmp_path / "state"
    assert_refused(run(state, "watch", tmp_path / "missing", "-o", tmp_path / "lib", "--once"),
                   "is not a folder to watch")  # fmt: skip
    (tmp_path / "inbox").mkdir()
    assert_refused(run(state, "watch", tmp_path / "inbox", "-o", tmp_path / "lib", "--once",
                       "--bogus"), "--bogus")  # fmt: skip
    assert_refused(run(state, "watch", tmp_path / "inbox", "-o", tmp_path, "--once"),
                   "holds the inbox")  # fmt: skip
