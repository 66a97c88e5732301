"""Hosted lip-sync (D-ID) against a local server that implements its protocol."""

from __future__ import annotations

import av
import pytest
from conftest import media, run_ffmpeg
from fakes import FakeDid

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
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("DID_API_KEY", "test-did-key")
    monkeypatch.setenv("REELFORGE_HTTP_BACKOFF", "0.01")
    return tmp_path


def _talk(fake, out, **opts):
    import os

    os.environ["DID_API_URL"] = fake.base
    try:
        return talk(media("faces/astronaut_eileen_collins.png"), media("speech/LJ001-0002.wav"),
                    out, TalkOptions(backend="did", poll_interval=0.01, **opts))  # fmt: skip
    finally:
        del os.environ["DID_API_URL"]


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


def test_did_rejected_key(env, result_video, monkeypatch):
    monkeypatch.setenv("DID_API_KEY", "wrong")
    fake = FakeDid(result_video)
    try:
        with pytest.raises(InputError, match="DID_API_KEY") as err:
            _talk(fake, env / "x.mp4")
    finally:
        fake.close()
    assert "wrong" not in str(err.value) and len(fake.requests) == 1
