"""Hosted Dia backends against local servers that implement their protocols."""

from __future__ import annotations

import pytest
from conftest import media
from fakes import FakeFal, FakeSegmind

from reelforge.config import Services
from reelforge.errors import BackendError, InputError
from reelforge.voice.render import VoiceOptions, render

SCRIPT = "[S1] Hello there, welcome back. (laughs)\n[S2] Thanks, it is good to be here."


@pytest.fixture
def speech() -> bytes:
    return media("speech/LJ001-0002.wav").read_bytes()


KEYS = {"FAL_KEY": "test-fal-key", "SEGMIND_API_KEY": "test-segmind-key"}


@pytest.fixture
def env(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text(SCRIPT)
    return tmp_path, script


def _render(tmp, script, backend, base, name="o.wav", keys=KEYS):
    """``base`` reaches the backend through the services' URL variables, as set-up gives
    them (``FAL_QUEUE_URL``, ``SEGMIND_API_URL``)."""
    urls = {"FAL_QUEUE_URL": base, "SEGMIND_API_URL": base}
    services = Services(keys=keys, urls=urls, http_backoff=0.01)
    quick = {"poll_interval": 0.05}  # the fake queue answers IN_QUEUE once: no 1 s waits
    return render(script, tmp / name, VoiceOptions(backend=backend, cache_dir=tmp / "cache",
                                                   mos=False, backend_options=quick),
                  services=services)  # fmt: skip


@pytest.mark.parametrize("failures", [[], [429], [500], [503, 429]])
def test_fal_queue_protocol_with_retries(env, speech, failures):
    tmp, script = env
    fake = FakeFal(speech, failures)
    try:
        report = _render(tmp, script, "fal", fake.base)
    finally:
        fake.close()
    posts = [r for r in fake.requests if r[0] == "POST"]
    # Anchor voices for S1 and S2, then the chunk, plus one retry per injected failure.
    assert len(posts) == 3 + len(failures)
    assert any(r[1].endswith("/voice-clone") for r in posts)
    clone = next(r[2] for r in posts if r[1].endswith("/voice-clone"))
    assert clone["ref_audio_url"].startswith("data:audio/wav;base64,") and clone["ref_text"]
    assert any(r[1].endswith("/status") for r in fake.requests)
    assert report.backend_calls == 3 and report.chunks[0].cost["request_id"]
    assert report.duration > 1.0


def test_fal_rejected_key_is_not_retried(env, speech):
    tmp, script = env
    fake = FakeFal(speech)
    try:
        with pytest.raises(InputError) as err:
            _render(tmp, script, "fal", fake.base, keys={"FAL_KEY": "wrong-key-123"})
    finally:
        fake.close()
    assert len(fake.requests) == 1
    assert "FAL_KEY" in str(err.value) and "wrong-key-123" not in str(err.value)
    assert not (tmp / "o.wav").exists()


def test_fal_gives_up_after_repeated_server_errors(env, speech):
    tmp, script = env
    fake = FakeFal(speech, [500] * 10)
    try:
        with pytest.raises(BackendError, match="failed after 5 tries"):
            _render(tmp, script, "fal", fake.base)
    finally:
        fake.close()
    assert not (tmp / "o.wav").exists()


@pytest.mark.parametrize(("json_mode", "failures"), [(False, []), (True, [429]), (False, [500])])
def test_segmind_binary_and_json_bodies(env, speech, json_mode, failures):
    tmp, script = env
    fake = FakeSegmind(speech, failures)
    fake.json_mode = json_mode
    try:
        report = _render(tmp, script, "segmind", fake.base)
    finally:
        fake.close()
    assert len(fake.requests) == 1 + len(failures)
    assert fake.requests[-1][2]["text"].startswith("[S1] Hello there")
    assert report.chunks[0].cost["remaining_credits"] in ("41.5", "42.0")


def test_segmind_rejected_key(env, speech):
    tmp, script = env
    fake = FakeSegmind(speech)
    try:
        with pytest.raises(InputError, match="SEGMIND_API_KEY") as err:
            _render(tmp, script, "segmind", fake.base, keys={"SEGMIND_API_KEY": "nope-123"})
    finally:
        fake.close()
    assert len(fake.requests) == 1
    assert "nope-123" not in str(err.value)


def test_a_backend_made_without_services_names_the_missing_key(env):
    """The library reads no environment: without services a hosted backend has no key, and
    says which variable the command line takes it from."""
    tmp, script = env
    for backend, var in (("fal", "FAL_KEY"), ("segmind", "SEGMIND_API_KEY")):
        with pytest.raises(InputError, match=f"needs an API key: set {var}"):
            render(script, tmp / "o.wav", VoiceOptions(backend=backend, mos=False,
                                                       cache_dir=tmp / "cache"))  # fmt: skip
    assert not (tmp / "o.wav").exists()
