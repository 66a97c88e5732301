"""`reelforge jobs` on real runs: publish recorded as a job, list/show/retry/cancel with
--json, a SIGKILLed publish found interrupted and retried under its id, settings files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CLI, ROOT, assert_refused, media, run_ffmpeg
from conftest import run_cli as _run_cli

from reelforge.pipeline.jobs import JobStore

FAST = ("--preset", "fast", "--no-quality", "--no-thumbnails", "--no-fallback")


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "state"


def run(state: Path, *args, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "REELFORGE_STATE": str(state), **kwargs.pop("env", {})}
    return _run_cli(*args, env=env, **kwargs)


def jobs_json(state: Path, *args) -> list | dict:
    result = run(state, "jobs", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clip") / "clip.mp4"
    run_ffmpeg("-i", media("video/tears_of_steel_360p_10s.mp4"), "-t", "2", "-c", "copy", out)
    return out


def test_publish_is_recorded_and_a_failed_one_is_retried_under_its_id(tmp_path, state, clip):
    src, out = tmp_path / "clip.mp4", tmp_path / "out"
    shutil.copy(clip, src)
    first = run(state, "publish", src, "-o", out, *FAST, "--json")
    assert first.returncode == 0, first.stderr
    (job,) = jobs_json(state, "list")
    assert (job["kind"], job["status"], job["attempts"]) == ("publish", "done", 1)
    assert job["args"]["argv"] == [str(src), "-o", str(out), *FAST]
    assert job["command"].startswith(f"reelforge publish {src} -o {out} --preset fast")
    (step,) = job["steps"]
    assert (step["name"], step["status"], step["progress"]) == ("publish", "done", 1.0)
    assert len(step["key"]) == 64 and step["seconds"] > 0

    # the same output again, without --force: refused, and recorded as failed
    again = run(state, "publish", "clip.mp4", "-o", "out", *FAST, cwd=tmp_path)
    assert_refused(again, "output already exists")
    failed = jobs_json(state, "list", "--status", "failed")
    assert len(failed) == 1 and failed[0]["error_code"] == "input"
    job_id = failed[0]["id"]
    assert failed[0]["args"] == {"argv": ["clip.mp4", "-o", "out", *FAST], "cwd": str(tmp_path)}
    assert failed[0]["steps"][0]["key"] == step["key"]  # same content and options

    # retried from another folder: it runs where it was recorded, under the same id
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert_refused(run(state, "jobs", "retry", job_id, cwd=elsewhere), "output already exists")
    shutil.rmtree(out)
    retried = run(state, "jobs", "retry", job_id, "--json", cwd=elsewhere)
    assert retried.returncode == 0, retried.stderr
    report = json.loads(retried.stdout)  # what publish --json prints
    assert report["renditions"] and (out / "master.m3u8").is_file()
    shown = jobs_json(state, "show", job_id)
    assert (shown["status"], shown["attempts"], shown["error"]) == ("done", 3, None)
    assert [(s["attempt"], s["status"]) for s in shown["steps"]] == [
        (1, "failed"), (2, "failed"), (3, "done")]  # fmt: skip
    assert len(jobs_json(state, "list")) == 2  # no new job: the same id ran again

    human = run(state, "jobs", "show", job_id)
    assert human.returncode == 0 and f"{job_id} publish done (attempt 3)" in human.stdout
    assert "command: reelforge publish clip.mp4 -o out --preset fast" in human.stdout
    listing = run(state, "jobs", "list")
    assert listing.returncode == 0 and job_id in listing.stdout


def test_refusals_are_one_line(tmp_path, state):
    JobStore(state / "jobs.sqlite")  # an empty store
    for sub in ("show", "retry", "cancel"):
        assert_refused(run(state, "jobs", sub, "nosuchjob"), "no job 'nosuchjob'")
        assert_refused(run(state, "jobs", sub, "nosuchjob", "--json"), "no job")
    assert_refused(run(state, "jobs", "list", "--status", "ready"), "--status must be one of")
    store = JobStore(state / "jobs.sqlite")
    done = store.create("publish", {"argv": ["x", "-o", "y"], "cwd": str(tmp_path)}, "y")
    store.start(done)
    store.finish(done)
    assert_refused(run(state, "jobs", "retry", done), f"job {done} is done")
    assert run(state, "jobs", "list", "--json").stdout.strip().startswith("[")


CHILD = """
import sys, time
from pathlib import Path
from reelforge.config import Config
from reelforge.pipeline.runner import State, job_run, register
from reelforge.pipeline.spec import StepSpec

@register("test-wait")
def wait(spec, out, progress):
    update = progress.stage("wait", 600)
    for i in range(600):
        update(i)
        time.sleep(0.05)
    return {}

state = State.open(Config(state_dir=Path(sys.argv[1])))
job = state.store.create("test", {"argv": []}, "out")
print(job, flush=True)
with job_run(state.store, job):
    state.pipeline(job).run(StepSpec("test-wait", "1", {}, {}))
"""


def test_cancel_a_running_job_and_a_failed_one(tmp_path, state):
    code = tmp_path / "child.py"
    code.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(code), str(state)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    job_id = child.stdout.readline().strip()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = jobs_json(state, "show", job_id)
        if shown["steps"] and shown["steps"][0]["progress"]:
            break
        time.sleep(0.2)
    assert shown["status"] == "running" and shown["current_step"] == "test-wait"
    cancelled = jobs_json(state, "cancel", job_id)
    assert cancelled["status"] == "running" and cancelled["cancel_requested"]
    child.communicate(timeout=20)
    assert child.returncode != 0
    shown = jobs_json(state, "show", job_id)
    assert shown["status"] == "cancelled" and shown["steps"][0]["status"] == "failed"
    human = run(state, "jobs", "cancel", job_id)  # cancelling twice changes nothing
    assert human.returncode == 0 and f"job {job_id}: cancelled" in human.stdout

    store = JobStore(state / "jobs.sqlite")
    failed = store.create("publish", {"argv": []}, "out")
    store.start(failed)
    store.fail(failed, "x.mp4: broken", "media")
    assert jobs_json(state, "cancel", failed)["status"] == "cancelled"
    assert jobs_json(state, "list", "--status", "cancelled")[0]["id"] == failed


def test_a_sigkilled_publish_is_interrupted_then_retried(tmp_path, state):
    src = media("video/tears_of_steel_360p_10s.mp4")
    out = tmp_path / "stream"
    proc = subprocess.Popen([*CLI, "publish", str(src), "-o", str(out), "--preset", "fast",
                             "--no-quality"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**os.environ, "REELFORGE_STATE": str(state)})  # fmt: skip
    deadline = time.monotonic() + 60
    job = None
    while time.monotonic() < deadline:
        if (state / "jobs.sqlite").exists():
            listed = JobStore(state / "jobs.sqlite").list()
            if listed and listed[0].steps and (listed[0].steps[0].progress or 0) > 0:
                job = listed[0]
                break
        time.sleep(0.1)
    assert job is not None and proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert JobStore(state / "jobs.sqlite").get(job.id).status == "running"  # as it was left
    (listed,) = jobs_json(state, "list")  # listing notices the process is gone
    assert listed["status"] == "interrupted" and listed["steps"][0]["status"] == "failed"
    assert not out.exists()
    retried = run(state, "jobs", "retry", job.id)
    assert retried.returncode == 0, retried.stderr
    assert f"job {job.id}: done" in retried.stdout and (out / "master.m3u8").is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".stream")]


def test_settings_file_names_the_state_folder_and_the_environment_wins(tmp_path):
    from reelforge.config import load

    settings = tmp_path / "reelforge.toml"
    settings.write_text(f'state_dir = "{tmp_path / "from-file"}"\njobs_url = ""\n')
    assert load({"REELFORGE_CONFIG": str(settings)}).state_dir == tmp_path / "from-file"
    cfg = load({"REELFORGE_CONFIG": str(settings), "REELFORGE_STATE": str(tmp_path / "env")})
    assert cfg.state_dir == tmp_path / "env"
    assert cfg.jobs_store_url == f"sqlite:///{tmp_path / 'env' / 'jobs.sqlite'}"
    assert cfg.step_cache_dir == tmp_path / "env" / "steps"
    yaml_file = tmp_path / "reelforge.yaml"
    yaml_file.write_text(f"state_dir: {tmp_path / 'y'}\ncache_dir: {tmp_path / 'c'}\n")
    cfg = load({"REELFORGE_CONFIG": str(yaml_file)})
    assert (cfg.state_dir, cfg.step_cache_dir) == (tmp_path / "y", tmp_path / "c")

    store = JobStore(tmp_path / "from-file" / "jobs.sqlite")
    job_id = store.create("publish", {"argv": []}, "out")
    env = {k: v for k, v in os.environ.items() if k != "REELFORGE_STATE"}
    result = _run_cli("jobs", "list", "--json", env={**env, "REELFORGE_CONFIG": str(settings)})
    assert result.returncode == 0, result.stderr
    assert [j["id"] for j in json.loads(result.stdout)] == [job_id]
    bad = tmp_path / "bad.toml"
    bad.write_text("colour = 'blue'\n")
    assert_refused(_run_cli("jobs", "list", env={**env, "REELFORGE_CONFIG": str(bad)}),
                   "unknown settings colour")  # fmt: skip
