"""What the player page inlines: read back from a real published stream."""

from __future__ import annotations

import base64
import shutil

import m3u8

from reelforge.delivery import startup


def _first(out, playlist_uri: str) -> tuple[str, str]:
    pl = m3u8.load(str(out / playlist_uri))
    folder = playlist_uri.rsplit("/", 1)[0]
    return f"{folder}/{pl.segment_map[0].uri}", f"{folder}/{pl.segments[0].uri}"


def test_bootstrap_inlines_the_start_of_the_lowest_h264_rung_and_the_audio(talk):
    out, _ = talk
    boot = startup.bootstrap(out)
    master = m3u8.load(str(out / "master.m3u8"))
    lowest = min(master.playlists, key=lambda p: p.stream_info.bandwidth)
    audio = next(m.uri for m in master.media if m.type == "AUDIO" and m.default == "YES")
    assert boot["startUri"] == lowest.uri
    files = boot["files"]
    assert files["master.m3u8"]["text"] == (out / "master.m3u8").read_text()
    for uri in (lowest.uri, audio):
        assert files[uri]["text"] == (out / uri).read_text()
        for key in _first(out, uri):  # init segment and first media segment, byte for byte
            assert base64.b64decode(files[key]["b64"]) == (out / key).read_bytes()
    # nothing else: the other rungs and later segments are left to the network
    assert len(files) == 7


def test_bootstrap_keeps_to_its_budgets(talk, tmp_path):
    out, _ = talk
    boot = startup.bootstrap(out, media_budget=1000)
    assert len(boot["files"]) == 5  # playlists and init segments, no media segments
    assert not [k for k in boot["files"] if k.endswith(".m4s")]
    # a missing file is left to the network, not an error
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    master = m3u8.load(str(copy / "master.m3u8"))
    audio = next(m.uri for m in master.media if m.type == "AUDIO")
    init, first = _first(copy, audio)
    (copy / first).unlink()
    boot = startup.bootstrap(copy)
    assert init in boot["files"] and first not in boot["files"]
    # both first segments or neither: one alone cannot start playback
    assert not [k for k in boot["files"] if k.endswith(".m4s")]
    (copy / "master.m3u8").unlink()
    assert startup.bootstrap(copy) == {}
