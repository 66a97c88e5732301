"""Hosted lip-sync (D-ID, sync.so, fal.ai, Sonic on Replicate) against local servers that
implement each documented protocol."""

from __future__ import annotations

import av
import pytest
from conftest import media, run_ffmpeg
from fakes import FakeDid, FakeFalLipsync, FakeReplicate, FakeSyncSo

from reelforge.config import Services
from reelforge.errors import BackendError, InputError
from reelforge.lipsync.talk import TalkOptions, talk


@pytest.fixture(scope="module")
def result_video(tmp_path_factory) -> bytes:
    """What the service sends back: a talking-head MP4 (made here from a GRID clip)."""
    out = tmp_path_factory.mktemp("did") / "result.mp4"
    run_ffmpeg("-i", media("video/grid_bbaf2n.mpg"), "-t", "2", "-c:v", "libx264",
               "-preset", "ultrafast", "-c:a", "aac", out)  # fmt: skip
    return out.read_bytes()


@pytest.fixture
def env(tmp_path):
    return tmp_path


def _services(keys: dict[str, str], urls: dict[str, str] | None = None) -> Services:
    return Services(keys=keys, urls=urls or {}, http_backoff=0.01)


def _talk(fake, out, key="test-did-key", **opts):
    services = _services({"DID_API_KEY": key}, {"DID_API_URL": fake.base})
    return talk(media("faces/astronaut_eileen_collins.png"), media("speech/LJ001-0002.wav"),
                out, TalkOptions(backend="did", poll_interval=0.01, **opts),
                services=services)  # fmt: skip


def test_did_protocol_with_retries(env, result_video):
    fake = FakeDid(result_video, failures=[429, 500])
    try:
        report = _talk(fake, env / "did.mp4")
    finally:
        fake.close()
    paths = [(m, p) for m, p, _ in fake.requests]
    assert ("POST", "/images") in paths and ("POST", "/audios") in paths
    assert ("POST", "/talks") in paths and ("GET", "/files/result.mp4") in paths
    assert report.job["talk_id"] == "tlk_test"
    with av.open(str(env / "did.mp4")) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "h264" and float(v.average_rate) == 25
        assert c.streams.audio and abs(c.duration / 1e6 - 1.9) < 0.1


def test_did_failed_job_and_timeout_leave_nothing(env, result_video):
    for final, message in (("error", "ended as error: face not detected"),
                           ("never", "gave up waiting")):  # fmt: skip
        fake = FakeDid(result_video, final=final)
        try:
            with pytest.raises(BackendError, match=message):
                _talk(fake, env / "x.mp4", job_timeout=0.3)
        finally:
            fake.close()
    assert list(env.iterdir()) == []


def test_did_rejected_key(env, result_video):
    fake = FakeDid(result_video)
    try:
        with pytest.raises(InputError, match="DID_API_KEY") as err:
            _talk(fake, env / "x.mp4", key="wrong")
    finally:
        fake.close()
    assert "wrong" not in str(err.value) and len(fake.requests) == 1


GRID = "video/grid_bbaf2n.mpg"
SERVICES = {
    # backend: (fake, key variable, key, URL variables, input kind)
    "syncso": (FakeSyncSo, "SYNC_API_KEY", "test-sync-key", ("SYNC_API_URL",), "video"),
    "fal": (FakeFalLipsync, "FAL_KEY", "test-fal-key", ("FAL_QUEUE_URL", "FAL_REST_URL"),
            "video"),
    "sonic": (FakeReplicate, "REPLICATE_API_TOKEN", "test-replicate-token",
              ("REPLICATE_API_URL",), "image"),
}  # fmt: skip


def _hosted(backend, fake, out, **opts):
    _, key_env, key, url_envs, kind = SERVICES[backend]
    services = _services({key_env: key}, dict.fromkeys(url_envs, fake.base))
    audio = media("speech/LJ001-0002.wav")
    options = TalkOptions(backend=backend, poll_interval=0.01, **opts)
    if kind == "video":
        return talk(None, audio, out, options, video=media(GRID), services=services)
    return talk(media("faces/astronaut_eileen_collins.png"), audio, out, options, services=services)


@pytest.mark.parametrize("backend", sorted(SERVICES))
def test_hosted_protocols(backend, env, result_video):
    fake = SERVICES[backend][0](result_video, failures=[429, 503])
    try:
        report = _hosted(backend, fake, env / "out.mp4")
    finally:
        fake.close()
    assert ("GET", "/files/result.mp4") in [(m, p) for m, p, _ in fake.requests]
    assert report.backend == backend and report.job
    with av.open(str(env / "out.mp4")) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "h264" and c.streams.audio
        if SERVICES[backend][4] == "video":  # the dubbed video's own size and rate
            assert (v.width, v.height, float(v.average_rate)) == (360, 288, 25)
        assert abs(c.duration / 1e6 - 1.9) < 0.1  # as long as the audio (cut mode)
    if backend == "syncso":
        generate = next(b for m, p, b in fake.requests if p == "/v2/generate" and m == "POST")
        assert generate["options"]["sync_mode"] == "cut_off"
        assert {"/upload/grid_bbaf2n.mpg", "/upload/LJ001-0002.wav"} <= fake.uploads.keys()
    if backend == "sonic":
        assert sum(p == "/v1/files" for _, p, _ in fake.requests) == 2 + 2  # 2 retried


@pytest.mark.parametrize("backend", sorted(SERVICES))
def test_hosted_failure_and_timeout_leave_nothing(backend, env, result_video):
    for final, message in (("error", "ended as"), ("never", "gave up waiting")):
        fake = SERVICES[backend][0](result_video, final=final)
        try:
            with pytest.raises(BackendError, match=message):
                _hosted(backend, fake, env / "x.mp4", job_timeout=0.3)
        finally:
            fake.close()
    assert list(env.iterdir()) == []


def test_hosted_model_choice_and_latentsync(env, result_video):
    fake = FakeSyncSo(result_video)
    try:
        _hosted("syncso", fake, env / "pro.mp4", model="lipsync-2-pro",
                sync_mode="loop")  # fmt: skip
    finally:
        fake.close()
    generate = next(b for m, p, b in fake.requests if p == "/v2/generate")
    assert generate["model"] == "lipsync-2-pro" and generate["options"]["sync_mode"] == "loop"
    fake = FakeFalLipsync(result_video)
    try:
        _hosted("fal", fake, env / "latent.mp4", model="fal-ai/latentsync",
                sync_mode="pingpong")  # fmt: skip
    finally:
        fake.close()
    submit = next(b for m, p, b in fake.requests if p == "/fal-ai/latentsync")
    assert submit["loop_mode"] == "pingpong"
    with pytest.raises(InputError, match="unknown model"):
        _hosted("syncso", fake, env / "x.mp4", model="lipsync-9")


def test_portrait_only_service_refuses_a_video(env, result_video):
    with pytest.raises(InputError, match="animates a still portrait"):
        talk(None, media("speech/LJ001-0002.wav"), env / "x.mp4", TalkOptions(backend="sonic"),
             video=media(GRID),
             services=_services({"REPLICATE_API_TOKEN": "test-replicate-token"}))  # fmt: skip
    assert list(env.iterdir()) == []


def test_video_only_service_gets_the_portrait_as_a_still_clip(env, result_video):
    fake = FakeSyncSo(result_video)
    services = _services({"SYNC_API_KEY": "test-sync-key"}, {"SYNC_API_URL": fake.base})
    try:
        talk(media("faces/astronaut_eileen_collins.png"), media("speech/LJ001-0002.wav"),
             env / "still.mp4", TalkOptions(backend="syncso", poll_interval=0.01),
             services=services)  # fmt: skip
    finally:
        fake.close()
    sent = fake.uploads["/upload/portrait.mp4"]
    clip = env / "sent.mp4"
    clip.write_bytes(sent)
    with av.open(str(clip)) as c:
        assert c.streams.video[0].width == 512 and abs(c.duration / 1e6 - 1.9) < 0.1


def test_the_registry_names_every_hosted_backend():
    from reelforge.lipsync import backends
    from reelforge.lipsync.backends.hosted import HOSTED

    assert set(backends.HOSTED_NAMES) == set(HOSTED)
    for name, cls in HOSTED.items():
        assert cls.name == name and set(cls.accepts) <= {"image", "video"}
