"""Hosted lip-sync through Tavus, HeyGen, Synthesia and Vozo, against local servers that
implement each documented protocol; inputs that must be reachable by URL are staged in a
real S3-compatible server (moto) on loopback and read back through presigned URLs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import av
import boto3
import httpx
import numpy as np
import pytest
from conftest import free_port, media, run_cli, run_ffmpeg
from fakes_lipsync import (
    RETRY_AFTER,
    FakeHeyGen,
    FakeLipDub,
    FakeSynthesia,
    FakeTavus,
    FakeVozo,
)
from PIL import Image

from reelforge.config import Services
from reelforge.errors import BackendError, InputError
from reelforge.lipsync.talk import TalkOptions, talk

BUCKET = "staging"
FACE = "faces/astronaut_eileen_collins.png"  # 512x512
GRID = "video/grid_bbaf2n.mpg"  # 360x288, 25 fps
SPEECH = "speech/LJ001-0002.wav"  # 1.9 s
SERVICES = {
    # backend: (fake, key variable, key, URL variables, input kind, model)
    "tavus": (FakeTavus, "TAVUS_API_KEY", "test-tavus-key", ("TAVUS_API_URL",), "video", None),
    "heygen": (
        FakeHeyGen,
        "HEYGEN_API_KEY",
        "test-heygen-key",
        ("HEYGEN_API_URL", "HEYGEN_UPLOAD_URL"),
        "image",
        None,
    ),
    "synthesia": (
        FakeSynthesia,
        "SYNTHESIA_API_KEY",
        "test-synthesia-key",
        ("SYNTHESIA_API_URL", "SYNTHESIA_UPLOAD_URL"),
        "image",
        "anna_costume1_cameraA@en-GB",
    ),
    "vozo": (FakeVozo, "VOZO_API_KEY", "test-vozo-key", ("VOZO_API_URL",), "image", None),
    "lipdub": (FakeLipDub, "LIPDUB_API_KEY", "test-lipdub-key", ("LIPDUB_API_URL",), "video", None),
}
REASONS = {
    "tavus": "ended as error: no face found in the video",
    "heygen": "ended as failed: face not detected",
    "synthesia": "ended as rejected",
    "vozo": "ended as failed: no speaking face found",
    "lipdub": "ended as failed while fetching its sources: no speaking face in the source",
}


@pytest.fixture(scope="module")
def s3_server():
    """A moto S3 server on loopback with an empty bucket; yields (environment, client)."""
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for _ in range(100):
        try:
            httpx.get(env["AWS_ENDPOINT_URL"], timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    )
    s3.create_bucket(Bucket=BUCKET)
    yield env, s3
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3(s3_server, monkeypatch):
    env, client = s3_server
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield client
    left = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert left == [], "staged inputs were left in the bucket"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, bytes]:
    """What the services send back: a 2 s talking-head MP4 (from a GRID clip), and for
    Synthesia a 16:9 one (its stock avatars render at 16:9)."""
    folder = tmp_path_factory.mktemp("results")
    clip, wide = folder / "clip.mp4", folder / "wide.mp4"
    run_ffmpeg(
        "-i", media(GRID), "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", clip
    )
    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        wide,
    )
    return {"clip": clip.read_bytes(), "wide": wide.read_bytes()}


def _fake(backend, results, **kwargs):
    return SERVICES[backend][0](results["wide" if backend == "synthesia" else "clip"], **kwargs)


def _services(backend, fake, key=None) -> Services:
    _, key_env, good, url_envs, _, _ = SERVICES[backend]
    return Services(
        keys={key_env: key or good},
        urls=dict.fromkeys(url_envs, fake.base),
        http_backoff=0.01,
        staging=f"s3://{BUCKET}/in",
        staging_expiry=60,
    )


def _talk(backend, fake, out, key=None, kind=None, **opts):
    kind = kind or SERVICES[backend][4]
    opts.setdefault("model", SERVICES[backend][5])
    options = TalkOptions(backend=backend, poll_interval=0.01, **opts)
    services = _services(backend, fake, key)
    if kind == "video":
        return talk(None, media(SPEECH), out, options, video=media(GRID), services=services)
    return talk(media(FACE), media(SPEECH), out, options, services=services)


@pytest.mark.parametrize("backend", sorted(SERVICES))
def test_protocol_with_retries(backend, tmp_path, s3, results, caplog):
    fake = _fake(backend, results, failures=[429, 503])
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    try:
        report = _talk(backend, fake, tmp_path / "out.mp4")
    finally:
        fake.close()
    assert time.monotonic() - started >= float(RETRY_AFTER)  # the 429's Retry-After was kept
    paths = [(m, p) for m, p, _ in fake.requests]
    assert ("GET", "/files/result.mp4") in paths
    assert report.backend == backend and report.job
    with av.open(str(tmp_path / "out.mp4")) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "h264" and c.streams.audio
        size = (360, 288) if SERVICES[backend][4] == "video" else (512, 512)
        assert (v.width, v.height) == size
        assert abs(c.duration / 1e6 - 1.9) < 0.1  # as long as our audio
    key = SERVICES[backend][2]
    saved = (tmp_path / "out.mp4.report.json").read_text()
    assert key not in saved and key not in caplog.text
    assert "retrying" in caplog.text  # the 429 and the 503 were retried, and said so


def test_tavus_gets_presigned_urls_of_our_files(tmp_path, s3, results):
    fake = FakeTavus(results["clip"])
    try:
        _talk("tavus", fake, tmp_path / "out.mp4")
    finally:
        fake.close()
    # Tavus takes MP4: the MPEG-PS clip went as an H.264 MP4 of the same frames; the WAV as is.
    sent_video = _write(tmp_path / "sent.mp4", fake.fetched["video"])
    with av.open(sent_video) as got, av.open(str(media(GRID))) as source:
        assert got.format.name.startswith("mov,mp4")
        v = got.streams.video[0]
        assert (v.codec_context.name, v.width, v.height) == ("h264", 360, 288)
        assert not got.streams.audio
        frames = sum(1 for _ in got.decode(video=0))
        assert frames == sum(1 for _ in source.decode(video=0))
    assert fake.fetched["audio"] == media(SPEECH).read_bytes()
    sent = next(b for m, p, b in fake.requests if p == "/v2/lipsync")
    query = parse_qs(urlparse(sent["original_video_url"]).query)
    if "X-Amz-Expires" in query:  # SigV4
        assert query["X-Amz-Expires"] == ["60"]
    else:  # SigV2: an absolute expiry time
        assert abs(int(query["Expires"][0]) - time.time() - 60) < 30
    with pytest.raises(Exception):  # noqa: B017 - the objects are gone once the job ended
        s3.get_object(Bucket=BUCKET, Key=urlparse(sent["source_audio_url"]).path.split("/", 2)[2])


def test_heygen_gets_a_talking_photo_and_mp3_at_the_portrait_aspect(tmp_path, results):
    fake = FakeHeyGen(results["clip"])
    try:
        report = _talk("heygen", fake, tmp_path / "out.mp4")
    finally:
        fake.close()
    assert fake.photos["tp-1"][:3] == b"\xff\xd8\xff"  # the portrait as talk read it (JPEG)
    mp3 = tmp_path / "sent.mp3"
    mp3.write_bytes(fake.assets["asset-1"])
    with av.open(str(mp3)) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name.startswith("mp3") and abs(c.duration / 1e6 - 1.9) < 0.1
    generate = next(b for m, p, b in fake.requests if p == "/v2/video/generate")
    assert generate["dimension"] == {"width": 512, "height": 512}
    assert report.job["video_id"] == "vid-1" and report.job["duration"] == 1.9


def test_synthesia_avatar_language_and_crop(tmp_path, results):
    fake = FakeSynthesia(results["wide"])
    try:
        report = _talk("synthesia", fake, tmp_path / "out.mp4")
    finally:
        fake.close()
    clip = next(b for m, p, b in fake.requests if p == "/v2/videos")["input"][0]
    assert (clip["avatar"], clip["scriptLanguage"]) == ("anna_costume1_cameraA", "en-GB")
    assert report.job["avatar"] == "anna_costume1_cameraA"
    # The 320x180 result was cropped to the square portrait's aspect, not squeezed into it:
    # testsrc2's centre column stays in the middle of the frame.
    with av.open(str(tmp_path / "out.mp4")) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    with av.open(_write(tmp_path / "wide.mp4", results["wide"])) as c:
        wide = next(c.decode(video=0)).to_ndarray(format="rgb24")
    centre = wide[:, 70:250]  # the middle 180x180 of the 320x180 source
    expect = np.asarray(Image.fromarray(centre).resize((512, 512), Image.LANCZOS), dtype=float)
    assert np.abs(frame.astype(float) - expect).mean() < 12


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_inputs_in_a_taken_container_go_as_they_are(tmp_path):
    from reelforge.lipsync.backends.prep import audio_as, video_as

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not decoded")
    assert video_as(clip, (".mp4",), tmp_path) == clip
    assert audio_as(media(SPEECH), (".wav",), tmp_path) == media(SPEECH)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_synthesia_needs_an_avatar(tmp_path):
    with pytest.raises(InputError, match="--model AVATAR"):
        talk(
            media(FACE),
            media(SPEECH),
            tmp_path / "x.mp4",
            TalkOptions(backend="synthesia"),
            services=Services(keys={"SYNTHESIA_API_KEY": "k"}),
        )
    assert list(tmp_path.iterdir()) == []


def test_vozo_dubs_a_video_too(tmp_path, s3, results):
    fake = FakeVozo(results["clip"])
    try:
        report = _talk("vozo", fake, tmp_path / "out.mp4", kind="video")
    finally:
        fake.close()
    sent = next(b for m, p, b in fake.requests if p == "/v1/video_generation")
    assert sent["reference_file_type"] == "video" and sent["model"] == "standard_v1"
    with av.open(_write(tmp_path / "ref.mp4", fake.fetched["reference"])) as got:
        v = got.streams.video[0]  # .mpg is not a container Vozo takes: sent as H.264 MP4
        assert (v.codec_context.name, v.width, v.height) == ("h264", 360, 288)
    assert report.job["input"] == "video"


@pytest.mark.parametrize("backend", sorted(SERVICES))
def test_failed_job_and_timeout_leave_nothing(backend, tmp_path, s3, results):
    out = tmp_path / "out"
    out.mkdir()
    for final, message in (("error", REASONS[backend]), ("never", "gave up waiting")):
        fake = _fake(backend, results, final=final)
        try:
            with pytest.raises(BackendError, match=message) as err:
                _talk(backend, fake, out / "x.mp4", job_timeout=0.3)
        finally:
            fake.close()
        assert "\n" not in str(err.value)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("backend", ["tavus", "vozo"])
def test_url_services_need_staging(backend, tmp_path):
    _, key_env, key, _, _, _ = SERVICES[backend]
    with pytest.raises(InputError, match="REELFORGE_STAGING"):
        talk(
            media(FACE),
            media(SPEECH),
            tmp_path / "x.mp4",
            TalkOptions(backend=backend),
            services=Services(keys={key_env: key}),
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", sorted(SERVICES))
def test_cli_rejected_key_exits_2_at_once_without_the_key(
    backend, tmp_path, s3_server, s3, results
):
    fake = _fake(backend, results)
    _, key_env, _, url_envs, kind, model = SERVICES[backend]
    wrong = f"wrong-{backend}-key-123"
    env = {
        **os.environ,
        **s3_server[0],
        key_env: wrong,
        "REELFORGE_HTTP_BACKOFF": "0.01",
        "REELFORGE_STAGING": f"s3://{BUCKET}/in",
        **dict.fromkeys(url_envs, fake.base),
    }
    visual = ["--video", media(GRID)] if kind == "video" else ["--face", media(FACE)]
    try:
        r = run_cli(
            "talk",
            *visual,
            "--audio",
            media(SPEECH),
            "-o",
            tmp_path / "x.mp4",
            "--backend",
            backend,
            *(["--model", model] if model else []),
            env=env,
            timeout=120,
        )
    finally:
        fake.close()
    assert r.returncode == 2, r.stderr
    assert key_env in r.stderr and "rejected the API key" in r.stderr
    assert wrong not in r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "━" not in ln]
    assert len(lines) == 1, r.stderr
    assert len([m for m, p, _ in fake.requests if not p.startswith("/files/")]) == 1  # no retry
    assert list(tmp_path.iterdir()) == []


def test_staging_settings_from_the_environment():
    from reelforge.config import load

    cfg = load(
        {
            "REELFORGE_STAGING": "s3://bucket/inputs",
            "REELFORGE_STAGING_EXPIRY": "120",
            "TAVUS_API_KEY": "secret-tavus",
            "TAVUS_API_URL": "http://127.0.0.1:9",
        }
    )
    assert cfg.services.staging == "s3://bucket/inputs" and cfg.services.staging_expiry == 120
    assert cfg.services.url("TAVUS_API_URL", "x") == "http://127.0.0.1:9"
    assert "secret-tavus" not in repr(cfg)
    for bad in (
        {"REELFORGE_STAGING": "/tmp/inputs"},
        {"REELFORGE_STAGING_EXPIRY": "soon"},
        {"REELFORGE_STAGING_EXPIRY": "0"},
    ):
        with pytest.raises(InputError, match="REELFORGE_STAGING"):
            load(bad)
