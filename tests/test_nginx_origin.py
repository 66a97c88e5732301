"""The nginx origin's own token handling (``reelforge cdn nginx --serve``): the token
endpoint only nginx may ask, the per-token cache that must end when the token does, and a
cached token that keeps a stream playing while the app restarts. Real nginx, raw requests
over loopback."""

from __future__ import annotations

import os
import time

import pytest
from origins import NginxOrigin
from test_origin_access import raw

from reelforge.delivery.signing import make_token

KEY = "nginx-origin-test-key"
ENV = {"REELFORGE_PLAYBACK_KEY": KEY}
SEGMENT = os.urandom(200_000)


@pytest.fixture
def nginx(tmp_path):
    """nginx over a private stream ``s1`` (a playlist and one segment) and a public ``s2``."""
    root = tmp_path / "root"
    for name in ("s1", "s2"):
        (root / name / "video").mkdir(parents=True)
        (root / name / "master.m3u8").write_text("#EXTM3U\n#EXT-X-VERSION:7\n")
        (root / name / "video" / "seg-1.m4s").write_bytes(SEGMENT)
    (root / "s1" / ".private").write_text("")
    origin = NginxOrigin(root, env=ENV)
    yield origin
    origin.stop()


def _token(prefix: str, seconds: float) -> str:
    return make_token(KEY.encode(), prefix, int(time.time() + seconds))


def test_the_token_endpoint_is_not_reachable_through_nginx(nginx):
    token = _token("s1", 600)
    for target in (f"/_reelforge/token/{token}", f"//_reelforge/token/{token}",
                   f"/_reelforge/%74oken/{token}", f"/_reelforge/./token/{token}",
                   f"/x/../_reelforge/token/{token}", "/_reelforge_auth",
                   f"/_reelforge_auth?t={token}"):  # fmt: skip
        status, body = raw(nginx.port, target)
        assert status == 404, (target, status, body[:200])
    # the app itself answers it (nginx's auth_request is what asks)
    status, _ = raw(nginx.app.port, f"/_reelforge/token/{token}")
    assert status == 200


def test_a_cached_token_ends_with_the_token(nginx):
    """The per-token cache holds an answer only until the token's last valid second: an
    expired token is refused (410, as the app refuses it) though its answer was cached."""
    token = _token("s1", 3)
    expires = int(time.time() + 3)
    target = f"/p/{token}/s1/video/seg-1.m4s"
    status, body = raw(nginx.port, target)
    assert status == 200 and body == SEGMENT
    assert raw(nginx.port, target)[0] == 200  # from the cache now
    assert raw(nginx.port, "/media/s1/video/seg-1.m4s")[0] == 403  # private without it
    assert raw(nginx.port, f"/p/{token}/s2/video/seg-1.m4s")[0] == 403  # another stream
    time.sleep(max(0.0, expires + 1.5 - time.time()))
    status, body = raw(nginx.port, target)
    assert status == raw(nginx.app.port, target)[0] == 410  # the app's answer: expired
    assert SEGMENT[:64] not in body


def test_a_cached_token_plays_on_while_the_app_restarts(nginx):
    """nginx sends the files itself: once a token's answer is cached, its stream's segments
    are served with the app stopped; a token never seen is not let through."""
    token = _token("s1", 600)
    target = f"/p/{token}/s1/video/seg-1.m4s"
    assert raw(nginx.port, target) == (200, SEGMENT)
    nginx.app.stop()
    assert raw(nginx.port, target) == (200, SEGMENT)
    assert raw(nginx.port, "/media/s2/video/seg-1.m4s") == (200, SEGMENT)  # public
    status, body = raw(nginx.port, f"/p/{_token('s1', 500)}/s1/video/seg-1.m4s")
    assert status != 200 and SEGMENT[:64] not in body


def test_a_marker_in_any_folder_above_a_file_makes_it_private(nginx, tmp_path):
    """The fast path checks each folder of the path for ``.private``, the deepest too."""
    deep = tmp_path / "root" / "s2" / "video" / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "seg-2.m4s").write_bytes(SEGMENT)
    assert raw(nginx.port, "/media/s2/video/a/b/seg-2.m4s") == (200, SEGMENT)
    (deep / ".private").write_text("")
    assert raw(nginx.port, "/media/s2/video/a/b/seg-2.m4s")[0] == 403
    (deep / ".private").unlink()
    (tmp_path / "root" / "s2" / "video" / "a" / ".private").write_text("")
    assert raw(nginx.port, "/media/s2/video/a/b/seg-2.m4s")[0] == 403
    assert raw(nginx.port, "/media/s2/video/seg-1.m4s") == (200, SEGMENT)  # above it: public
