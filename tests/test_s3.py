"""Publishing to and serving from S3-compatible storage: a real moto server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import pytest
from conftest import TEST_LADDER, Server, free_port, media, run_cli

from reelforge.media import ffmpeg

BUCKET = "media"


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
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
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
    s3.create_bucket(Bucket=BUCKET)
    yield env, s3
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def published(tmp_path_factory, s3_env):
    env, _ = s3_env
    clip = tmp_path_factory.mktemp("s3src") / "clip.mp4"
    ffmpeg.run(["-i", media("video/bbb_720p_2s_h264.mp4"), "-t", "2", "-c", "copy", clip],
               subject=clip)  # fmt: skip
    ladder = tmp_path_factory.mktemp("s3l") / "ladder.json"
    ladder.write_text(json.dumps({"rungs": TEST_LADDER[:2]}))
    r = run_cli("publish", clip, "-o", f"s3://{BUCKET}/show", "--versioned", "--ladder", ladder,
                "--preset", "fast", "--no-quality", "--no-thumbnails", "--segment-duration", "1",
                "--json", env={**os.environ, **env})  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_publish_writes_objects_with_their_headers(s3_env, published):
    _, s3 = s3_env
    version = published["version"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="show/")["Contents"]}
    assert {"show/master.m3u8", "show/manifest.mpd", "show/current.json"} <= keys
    assert f"show/{version}/master.m3u8" in keys
    master = s3.head_object(Bucket=BUCKET, Key="show/master.m3u8")
    assert master["ContentType"] == "application/vnd.apple.mpegurl"
    assert "max-age=60" in master["CacheControl"]
    seg = next(k for k in keys if k.endswith(".m4s"))
    head = s3.head_object(Bucket=BUCKET, Key=seg)
    assert head["ContentType"] == "video/iso.segment"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    body = s3.get_object(Bucket=BUCKET, Key="show/master.m3u8")["Body"].read().decode()
    assert all(ln.startswith(f"{version}/") for ln in body.splitlines() if ln and ln[0] != "#")


def test_origin_streams_from_s3(tmp_path, s3_env, published):
    env, s3 = s3_env
    server = Server(f"s3://{BUCKET}/show", env=env)  # type: ignore[arg-type]
    try:
        r = httpx.get(f"{server.base}/media/master.m3u8")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert "max-age=60" in r.headers["cache-control"]
        out = subprocess.run(
            [ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i",
             f"{server.base}/media/master.m3u8", "-map", "0:v:0", "-c", "copy", "-f", "null",
             "-"], capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="show/")["Contents"]]
        seg = next(k for k in keys if k.endswith(".m4s"))
        data = s3.get_object(Bucket=BUCKET, Key=seg)["Body"].read()
        url = f"{server.base}/media/{seg.removeprefix('show/')}"
        full = httpx.get(url)
        assert full.content == data and full.headers["cache-control"].endswith("immutable")
        part = httpx.get(url, headers={"Range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == data[10:100]
        assert part.headers["content-range"] == f"bytes 10-99/{len(data)}"
        assert httpx.get(url, headers={"If-None-Match": full.headers["etag"]}).status_code == 304
        assert httpx.get(url, headers={"Range": f"bytes={len(data) + 5}-"}).status_code == 416
        ignored = httpx.get(url, headers={"Range": "bytes=5-2"})  # RFC 9110: served whole
        assert ignored.status_code == 200 and ignored.content == data
        assert httpx.get(f"{server.base}/media/nothing.m3u8").status_code == 404
        assert httpx.get(f"{server.base}/media/.hidden").status_code == 404
        head = httpx.head(url)
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
    finally:
        server.stop()


def test_origin_redirects_to_presigned_urls(s3_env, published):
    env, s3 = s3_env
    server = Server(f"s3://{BUCKET}/show", env={**env, "REELFORGE_S3_MODE": "redirect"})
    try:
        r = httpx.get(f"{server.base}/media/master.m3u8")
        assert (r.status_code == 302 and "Signature" in r.headers["location"]) or \
            "X-Amz-Signature" in r.headers["location"]  # fmt: skip
        followed = httpx.get(f"{server.base}/media/master.m3u8", follow_redirects=True)
        expected = s3.get_object(Bucket=BUCKET, Key="show/master.m3u8")["Body"].read()
        assert followed.status_code == 200 and followed.content == expected
    finally:
        server.stop()


def test_images_to_s3(s3_env):
    env, s3 = s3_env
    r = run_cli("images", media("faces/hopper_128.jpg"), "-o", f"s3://{BUCKET}/site", "--json",
                env={**os.environ, **env})  # fmt: skip
    assert r.returncode == 0, r.stderr
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="site/manifest.json")["Body"].read())
    for variant in manifest["images"][0]["variants"]:
        head = s3.head_object(Bucket=BUCKET, Key=f"site/{variant['file']}")
        assert head["ContentType"] == variant["mime"]
        assert head["ContentLength"] == variant["bytes"]


def test_make_publishes_a_story_to_s3(s3_env, tmp_path):
    """``make -o s3://...``: the story made in a scratch folder, uploaded with every file
    its playlists name, the report naming the location; nothing left on disk but the
    step cache."""
    import m3u8
    from test_make import SHORT_LINES, env_for, write_story

    env, s3 = s3_env
    story = write_story(tmp_path / "story", SHORT_LINES["S1b"], SHORT_LINES)
    state = tmp_path / "state"
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("reelforge-make-*"))
    r = run_cli("make", story, "-o", f"s3://{BUCKET}/made/lighthouse", "--json",
                env={**env_for(state), **env}, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.splitlines()[-1])
    assert report["output"] == f"s3://{BUCKET}/made/lighthouse"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="made/")["Contents"]}
    assert {"made/lighthouse/master.m3u8", "made/lighthouse/make.json"} <= keys

    def text(key: str) -> str:
        return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()

    master = m3u8.loads(text("made/lighthouse/master.m3u8"))
    for variant in [*master.playlists, *[m for m in master.media if m.uri]]:
        key = f"made/lighthouse/{variant.uri}"
        playlist = m3u8.loads(text(key))
        folder = key.rsplit("/", 1)[0]
        named = {s.uri for s in playlist.segments} | {m.uri for m in playlist.segment_map}
        assert named and {f"{folder}/{n}" for n in named} <= keys, key
    assert not (tmp_path / "story" / "out").exists() and not Path("s3:").exists()
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("reelforge-make-*")) == before
    bad = run_cli("make", story, "-o", "s3://", env={**env_for(state), **env})
    assert bad.returncode == 2 and "S3 location" in bad.stderr
