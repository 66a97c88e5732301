"""Jobs on Celery workers: a real redis-server and two real `reelforge worker` processes on
loopback, the web service and the CLI sending them jobs, workers killed, Redis restarted,
jobs cancelled, poison inputs, and make giving the same steps as in-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import m3u8
import pytest
from conftest import CLI, ROOT, media, run_cli, run_ffmpeg
from daemons import RedisServer
from processes import descendants
from test_web import STORY, Web, follow, tus_upload

from reelforge.pipeline.jobs import Job, JobStore

pytest.importorskip("celery")

VISIBILITY_S = 6  # a killed worker's job goes to the other one after this long
QUICK = ("--preset", "fast", "--no-quality", "--no-thumbnails", "--no-fallback")
LADDER = {"rungs": [{"width": 416, "height": 234, "bitrate_kbps": 145},
                    {"width": 640, "height": 360, "bitrate_kbps": 365}]}  # fmt: skip


class Worker:
    """``reelforge worker --name NAME@test`` in a session of its own."""

    def __init__(self, name: str, env: dict, log: Path) -> None:
        self.name, self.env, self.log = f"{name}@test", env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        self.proc = subprocess.Popen(
            [*CLI, "worker", "--name", self.name, "--concurrency", "1"], cwd=ROOT, env=self.env,
            stdout=subprocess.PIPE, stderr=self.log.open("a"), text=True, start_new_session=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()
        assert line.startswith(f"worker {self.name} ready: queues cpu,gpu,io"), (
            line, self.log.read_text()[-3000:])  # fmt: skip
        return self

    def signal(self, sig: int) -> None:
        """``sig`` to the worker's process group: its main and pool processes (its jobs'
        processes are in sessions of their own)."""
        os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis = RedisServer().start()
        self.data = root / "web"
        self.state = self.data / "state"  # the service's job store, which the workers share
        self.env = {**os.environ, "REELFORGE_BROKER": self.redis.url,
                    "REELFORGE_STATE": str(self.state),
                    "REELFORGE_WORKER_VISIBILITY_TIMEOUT": str(VISIBILITY_S)}  # fmt: skip
        self.workers = [Worker(n, self.env, root / f"{n}.log") for n in ("w1", "w2")]
        for w in self.workers:
            w.start()

    def store(self) -> JobStore:
        return JobStore(self.state / "jobs.sqlite")

    def cli(self, *args, **kwargs) -> subprocess.CompletedProcess:
        return run_cli(*args, env={**self.env, **kwargs.pop("env", {})}, **kwargs)

    def background(self, *args, cwd: Path) -> subprocess.Popen:
        return subprocess.Popen([*CLI, *map(str, args)], cwd=cwd, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip

    def worker(self, name: str) -> Worker:
        return next(w for w in self.workers if w.name == name)

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("workers"))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """20 s of 720p (the shared 2 s clip looped, stream copy)."""
    out = tmp_path_factory.mktemp("clip") / "long.mp4"
    run_ffmpeg("-stream_loop", "9", "-i", media("video/bbb_720p_2s_h264.mp4"), "-c", "copy", out)
    return out


@pytest.fixture
def ladder(tmp_path) -> Path:
    path = tmp_path / "ladder.json"
    path.write_text(json.dumps(LADDER))
    return path


def wait_for(predicate, timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def running_with_progress(store: JobStore, kind: str = "publish") -> Job | None:
    """The newest job of ``kind`` if it runs and its step has made progress."""
    jobs = store.list(limit=1, kind=kind)
    if jobs and jobs[0].status == "running":
        steps = [s for s in jobs[0].current_steps() if s.status == "running"]
        if steps and 0 < (steps[-1].progress or 0) < 0.6:
            return jobs[0]
    return None


def assert_stream(out: Path) -> None:
    """The master playlist parses, and every media playlist's init and segments exist."""
    master = m3u8.load(str(out / "master.m3u8"))
    assert master.is_variant and master.playlists
    for variant in master.playlists:
        media_pl = m3u8.load(str(out / variant.uri))
        assert media_pl.is_endlist and media_pl.segments
        base = (out / variant.uri).parent
        assert (base / media_pl.segment_map[0].uri).is_file()
        for seg in media_pl.segments:
            assert (base / seg.uri).stat().st_size > 0, seg.uri


def job_processes(worker: Worker) -> list[str]:
    return [c for c in descendants(worker.proc.pid).values() if " jobs " in c]


def test_workers_lists_both_workers_and_their_queues(cluster):
    result = cluster.cli("workers", "--json")
    assert result.returncode == 0, result.stderr
    found = {w["name"]: w for w in json.loads(result.stdout)}
    assert set(found) == {"w1@test", "w2@test"}
    for w in found.values():
        assert w["queues"] == ["cpu", "gpu", "io"] and w["concurrency"] == 1
    human = cluster.cli("workers")
    assert human.returncode == 0 and "w1@test" in human.stdout and "w2@test" in human.stdout


def test_videos_queued_by_the_service_run_on_both_workers(cluster):
    web = Web(cluster.data, env=cluster.env).start()
    try:
        token = web.token("upload", "editor")
        src = media("video/bbb_720p_2s_h264.mp4")
        with web.client(token) as c:
            ids = []
            for title in ("one", "two"):
                body = {"upload": tus_upload(web, token, src), "title": title,
                        "publish": {"preset": "fast", "quality": False}}  # fmt: skip
                r = c.post("/api/videos", json=body)
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
            for video_id in ids:
                events = follow(web, token, video_id)
                assert events[-1]["status"] == "ready", events[-1]
                progress = [e["progress"] for e in events]
                assert progress == sorted(progress) and progress[-1] == 1.0
                video = c.get(f"/api/videos/{video_id}").json()
                assert video["playback"]["hls"]
        store = cluster.store()
        wait_for(lambda: all(j.status == "done" for j in store.list(kind="publish")), 60,
                 "the extras after ready")  # fmt: skip
        jobs = {j.subject: j for j in store.list(kind="publish")}
        ran_on = {jobs[v].args["worker"]["by"] for v in ids}
        assert ran_on == {"w1@test", "w2@test"}, ran_on  # one each: prefetch 1
        assert all(jobs[v].args["worker"]["queue"] == "cpu" for v in ids)
    finally:
        web.stop()


def test_a_worker_killed_mid_job_leaves_it_to_the_other(cluster, long_clip, ladder, tmp_path):
    store = cluster.store()
    out = tmp_path / "stream"
    follower = cluster.background("publish", long_clip, "-o", out, *QUICK, "--ladder", ladder,
                                  "--json", cwd=tmp_path)  # fmt: skip
    job = wait_for(lambda: running_with_progress(store), 60, "the job to run")
    first = cluster.worker(job.args["worker"]["by"])
    assert job_processes(first), "the job runs below its worker"
    first.signal(signal.SIGKILL)  # the whole worker at once: no goodbye to Redis
    first.proc.wait(timeout=10)
    stdout, stderr = follower.communicate(timeout=120)
    assert follower.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["renditions"] and report["output"] == str(out)
    done = store.get(job.id)
    assert done.status == "done" and done.attempts == 2
    assert done.args["worker"]["by"] != first.name
    assert [s.status for s in done.steps] == ["failed", "done"]
    assert_stream(out)
    first.start()  # for the tests that follow


@pytest.mark.timing  # stopped within 15 s of SIGTERM
def test_a_worker_told_to_stop_hands_its_job_over(cluster, long_clip, ladder, tmp_path):
    store = cluster.store()
    out = tmp_path / "stream"
    follower = cluster.background("publish", long_clip, "-o", out, *QUICK, "--ladder", ladder,
                                  "--json", cwd=tmp_path)  # fmt: skip
    job = wait_for(lambda: running_with_progress(store), 60, "the job to run")
    first = cluster.worker(job.args["worker"]["by"])
    asked = time.monotonic()
    first.signal(signal.SIGTERM)  # all its processes, as a service manager does
    first.proc.wait(timeout=30)
    assert first.proc.returncode == 0 and time.monotonic() - asked < 15
    assert not job_processes(first)
    _, stderr = follower.communicate(timeout=120)
    assert follower.returncode == 0, stderr
    done = store.get(job.id)
    assert (done.status, done.attempts) == ("done", 2)
    assert [(s.status, s.error) for s in done.steps] == [("failed", "interrupted"), ("done", None)]
    assert done.args["worker"]["by"] != first.name
    log = first.log.read_text()
    assert "reject requeue=True: the worker is stopping" in log  # handed back at once
    assert "WorkerLostError" not in log
    assert_stream(out)
    first.start()


def test_a_job_killed_from_outside_is_retried_after_a_backoff(cluster, long_clip, ladder,
                                                             tmp_path):  # fmt: skip
    store = cluster.store()
    out = tmp_path / "stream"
    follower = cluster.background("publish", long_clip, "-o", out, *QUICK, "--ladder", ladder,
                                  "--json", cwd=tmp_path)  # fmt: skip
    job = wait_for(lambda: running_with_progress(store), 60, "the job to run")
    os.kill(job.pid, signal.SIGKILL)  # its command only (the out-of-memory killer, say)
    _, stderr = follower.communicate(timeout=180)
    assert follower.returncode == 0, stderr  # it waited for the retry
    done = store.get(job.id)
    assert (done.status, done.attempts) == ("done", 2)
    assert done.args["worker"]["retry_at"] is None
    assert [s.status for s in done.steps] == ["failed", "done"]
    assert_stream(out)


def test_a_job_survives_a_redis_restart(cluster, long_clip, ladder, tmp_path):
    store = cluster.store()
    out = tmp_path / "stream"
    follower = cluster.background("publish", long_clip, "-o", out, *QUICK, "--ladder", ladder,
                                  "--json", cwd=tmp_path)  # fmt: skip
    job = wait_for(lambda: running_with_progress(store), 60, "the job to run")
    cluster.redis.restart(down_for=0.5)
    _, stderr = follower.communicate(timeout=120)
    assert follower.returncode == 0, stderr
    done = store.get(job.id)
    assert (done.status, done.attempts) == ("done", 1)
    assert_stream(out)
    # both workers found the new Redis and take jobs again
    found = wait_for(lambda: (r := cluster.cli("workers", "--json")).returncode == 0
                     and len(json.loads(r.stdout)) == 2, 60, "both workers back")  # fmt: skip
    assert found


def test_cancel_stops_a_job_on_its_worker(cluster, long_clip, ladder, tmp_path):
    store = cluster.store()
    out = tmp_path / "stream"
    slow = [a if a != "fast" else "best" for a in QUICK]  # still running when cancelled
    follower = cluster.background("publish", long_clip, "-o", out, *slow, "--ladder", ladder,
                                  cwd=tmp_path)  # fmt: skip
    job = wait_for(lambda: running_with_progress(store), 60, "the job to run")
    worker = cluster.worker(job.args["worker"]["by"])
    asked = time.monotonic()
    cancelled = cluster.cli("jobs", "cancel", job.id, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["cancel_requested"]
    wait_for(lambda: store.get(job.id).status == "cancelled", 30, "the job to stop")
    assert time.monotonic() - asked < 30
    _, stderr = follower.communicate(timeout=30)
    assert follower.returncode == 130, stderr
    assert f"error: job {job.id} cancelled" in stderr
    wait_for(lambda: not job_processes(worker), 10, "the job's process to end")
    assert not out.exists()
    time.sleep(1.0)
    assert store.get(job.id).status == "cancelled"  # and not run again


def test_a_text_file_fails_once_with_its_error(cluster, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    here = cluster.cli("publish", text, "-o", tmp_path / "a", *QUICK, "--local")
    there = cluster.cli("publish", text, "-o", tmp_path / "b", *QUICK)
    assert here.returncode == there.returncode == 2, (here.stderr, there.stderr)
    line = [ln for ln in there.stderr.splitlines() if ln.startswith("error:")]
    assert line == [ln for ln in here.stderr.splitlines() if ln.startswith("error:")]
    assert "notes.mp4" in line[0]
    store = cluster.store()
    on_workers = store.list(limit=1, kind="publish")[0]
    assert on_workers.args["worker"]["by"] in ("w1@test", "w2@test")
    assert (on_workers.status, on_workers.error_code) == ("failed", "input")
    time.sleep(3)  # no retry loop: it was tried once
    again = store.get(on_workers.id)
    assert again.attempts == 1 and len(again.steps) == 1
    assert not (tmp_path / "b").exists()


def test_make_on_workers_gives_the_same_steps_as_in_process(cluster, tmp_path):
    folder = tmp_path / "story"
    (folder / "faces").mkdir(parents=True)
    (folder / "scenes").mkdir()
    (folder / "story.yaml").write_text(STORY)
    (folder / "faces" / "keeper.png").write_bytes(
        media("faces/astronaut_eileen_collins.png").read_bytes()
    )
    (folder / "scenes" / "01.txt").write_text("[S1] The light is on.\n")
    here = cluster.cli("make", "story.yaml", "-o", tmp_path / "here", "--local", "--json",
                       cwd=folder)  # fmt: skip
    assert here.returncode == 0, here.stderr
    there = cluster.cli("make", "story.yaml", "-o", tmp_path / "there", "--json", cwd=folder)
    assert there.returncode == 0, there.stderr
    local, remote = (json.loads(r.stdout.splitlines()[-1]) for r in (here, there))
    assert "steps" in remote, (there.stdout[-3000:], there.stderr[-2000:])
    assert [(s["step"], s["key"]) for s in remote["steps"]] == [
        (s["step"], s["key"]) for s in local["steps"]]  # fmt: skip
    assert {s["step"] for s in remote["steps"]} >= {"voice-turn", "talk-shot", "publish-stream"}
    lines = [json.loads(ln) for ln in there.stdout.splitlines()[:-1]]
    assert lines and all(set(ln) == {"step", "stage", "progress"} for ln in lines)
    job = cluster.store().list(limit=1, kind="make")[0]
    assert job.status == "done" and job.args["worker"]["by"] in ("w1@test", "w2@test")
    assert (tmp_path / "there" / "master.m3u8").is_file() or any(
        (tmp_path / "there").rglob("master.m3u8")
    )


def _chunk_specs():
    """The chunks of the shared 10 s clip at 4 s, one small rung at CRF 30."""
    from reelforge.media.probe import probe
    from reelforge.video import chunks, stages
    from reelforge.video.ladder import Rung
    from reelforge.video.publish import PublishOptions
    from reelforge.video.timeline import Timeline

    src = media("video/tears_of_steel_360p_10s.mp4")
    info = probe(src)
    plan = stages.plan(info, PublishOptions(rungs=[Rung(width=416, height=234,
                                                        bitrate_kbps=200)]))  # fmt: skip
    outputs = [chunks.ChunkOutput(rendition=o.rendition.model_copy(update={"crf": 30}),
                                  deep=o.deep) for o in plan.outputs]  # fmt: skip
    encode = chunks.ChunkEncode(source=str(src), info=info, preset="fast", threads=1,
                                segment_duration=4.0, opening=[1.0, 1.0, 2.0],
                                outputs=outputs)  # fmt: skip
    specs = chunks.plan_chunks(Timeline(4.0, (1.0, 1.0, 2.0)), info.duration, 4.0, encode)
    assert len(specs) >= 2
    return specs


def _segment_names(results) -> list[list[str]]:
    return [[s.name for t in r.tracks for s in t.segments] for r in results]


def test_chunks_as_tasks_give_the_chunks_a_local_pool_gives(cluster, tmp_path):
    from reelforge import config
    from reelforge.video import chunks
    from reelforge.workers.celery import create_app
    from reelforge.workers.chunks import CeleryChunkRunner

    specs = _chunk_specs()
    runner = CeleryChunkRunner(create_app(config.load(cluster.env)))
    assert runner.workers == 2  # both workers take cpu, one at a time each
    there = runner.map(specs, tmp_path / "there")
    here = chunks.LocalRunner(1).map(specs, tmp_path / "here")
    assert [r.index for r in there] == list(range(len(specs)))  # in the specs' order
    assert _segment_names(there) == _segment_names(here)  # named by their bytes: the same
    for r in there:
        assert (tmp_path / "there" / r.folder / chunks.RESULT).is_file()


def test_chunks_no_worker_takes_are_encoded_by_the_job_waiting_for_them(tmp_path):
    """Every worker slot busy (here: no worker at all on this broker): the waiting process
    encodes the chunks itself, the last first, instead of waiting for ever."""
    from reelforge import config
    from reelforge.video import chunks
    from reelforge.workers.celery import create_app
    from reelforge.workers.chunks import CeleryChunkRunner

    specs = _chunk_specs()
    redis = RedisServer().start()
    try:
        app = create_app(config.load({"REELFORGE_BROKER": redis.url}))
        started = time.monotonic()
        there = CeleryChunkRunner(app, workers=2, steal_after=0.5).map(specs, tmp_path / "a")
        assert time.monotonic() - started < 120
    finally:
        redis.stop()
    here = chunks.LocalRunner(1).map(specs, tmp_path / "b")
    assert [r.index for r in there] == list(range(len(specs)))
    assert _segment_names(there) == _segment_names(here)


def test_a_long_title_on_the_workers_is_chunked_by_default(cluster, tmp_path):
    from reelforge import config
    from reelforge.video.chunks import LocalRunner
    from reelforge.video.publish import PublishOptions
    from reelforge.workers.chunks import AUTO_CHUNK_OVER_S, CeleryChunkRunner, worker_chunking

    long = tmp_path / "long.mp4"  # over the threshold, tiny: 2x2 at 1 fps
    run_ffmpeg("-f", "lavfi", "-i", f"color=c=gray:s=16x16:r=1:d={AUTO_CHUNK_OVER_S + 20}",
               "-c:v", "libx264", "-preset", "ultrafast", long)  # fmt: skip
    short = media("video/bbb_720p_2s_h264.mp4")
    cfg = config.load(cluster.env)  # the settings: the app is made only for chunks
    opts, runner = worker_chunking(PublishOptions(), long, str(tmp_path / "out"), cfg)
    assert opts.chunk_seconds == 30 and isinstance(runner, CeleryChunkRunner)
    assert runner.workers == 2
    opts, runner = worker_chunking(PublishOptions(), long, "s3://bucket/title", cfg)
    assert opts.chunk_seconds == 30 and isinstance(runner, LocalRunner)  # a local scratch
    for given, source in ((None, short), (0, long)):
        opts, runner = worker_chunking(PublishOptions(chunk_seconds=given), source, "o", cfg)
        assert (opts.chunk_seconds, runner) == (None, None)
    opts, runner = worker_chunking(PublishOptions(chunk_seconds=8), short, "o", cfg)
    assert opts.chunk_seconds == 8 and isinstance(runner, CeleryChunkRunner)


def test_watch_sends_each_file_to_the_workers(cluster, tmp_path):
    """The watcher keeps the inbox (a failed file moved to failed/ with its error, once) and
    the workers run the jobs; a second run finds everything done."""
    inbox, library = tmp_path / "inbox", tmp_path / "library"
    inbox.mkdir()
    (inbox / "clip.mp4").write_bytes(media("video/bbb_720p_2s_h264.mp4").read_bytes())
    (inbox / "notes.mp4").write_text("this is not a video\n" * 50)
    old = time.time() - 60
    for path in inbox.iterdir():
        os.utime(path, (old, old))
    watch = ("watch", inbox, "-o", library, "--once", "--settle", "0", "--json", *QUICK)
    first = cluster.cli(*watch, timeout=240)
    assert first.returncode == 0, first.stderr
    events = [json.loads(ln) for ln in first.stdout.splitlines()]
    ends = {e["file"]: e["event"] for e in events if e.get("event") in ("done", "failed")}
    assert ends == {"clip.mp4": "done", "notes.mp4": "failed"}
    assert any("progress" in e for e in events)  # the worker's progress, followed
    assert_stream(library / "clip")
    assert (inbox / "failed" / "notes.mp4").is_file()
    assert "notes.mp4" in (inbox / "failed" / "notes.mp4.error.txt").read_text()
    assert sorted(p.name for p in inbox.iterdir()) == [".reelforge-watch.lock", "clip.mp4",
                                                       "failed"]  # fmt: skip
    store = cluster.store()
    for job in store.list(limit=2, kind="publish"):
        assert job.args["worker"]["by"] in ("w1@test", "w2@test"), job
        assert job.attempts == 1
    again = cluster.cli(*watch, timeout=60)
    assert again.returncode == 0, again.stderr
    assert [json.loads(ln)["event"] for ln in again.stdout.splitlines()] == ["skipped"]


def test_a_chunked_publish_on_the_workers_runs_its_chunks_as_tasks(cluster, long_clip, ladder,
                                                                    tmp_path):  # fmt: skip
    """The job on one worker, its chunks on both (or on itself while no slot is free): every
    rung decodes to the frames of the same publish run here in one encode (the looped clip's
    seams leave timestamp gaps that publish fills at the constant rate: 488 frames from 480
    decoded)."""
    import av
    from streams import joined, read_media_playlist

    out = tmp_path / "stream"
    result = cluster.cli("publish", long_clip, "-o", out, *QUICK, "--ladder", ladder,
                         "--chunk-seconds", "8", "--json", cwd=tmp_path, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report.get("chunks") and report["chunks"]["count"] >= 2, (report, result.stderr)
    assert report["chunks"]["workers"] == 2  # the live workers' slots: encoders single-threaded
    assert_stream(out)
    here = tmp_path / "here"
    single = run_cli("publish", long_clip, "-o", here, *QUICK, "--ladder", ladder, "--json")
    assert single.returncode == 0, single.stderr

    def frames(stream: Path) -> dict[str, int]:
        counts = {}
        for variant in m3u8.load(str(stream / "master.m3u8")).playlists:
            whole = joined(read_media_playlist(stream / variant.uri), tmp_path / "whole.mp4")
            with av.open(str(whole)) as c:
                counts[variant.uri] = sum(1 for _ in c.decode(video=0))
        return counts

    assert frames(out) == frames(here)
    assert sum(frames(here).values()) == 2 * sum(c["frames"] for c in report["chunks"]["chunks"])
    job = cluster.store().list(limit=1, kind="publish")[0]
    assert job.status == "done" and job.args["worker"]["by"] in ("w1@test", "w2@test")
