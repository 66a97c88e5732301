"""Ready before complete: the stream is in place and plays before the slow extras are done."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import m3u8
import pytest
from conftest import TEST_LADDER, media

from reelforge.errors import Cancelled, InputError
from reelforge.media import ffmpeg
from reelforge.outputs import locked
from reelforge.video import stages
from reelforge.video.ladder import Rung
from reelforge.video.publish import PublishOptions, publish


def _options(**extra) -> PublishOptions:
    return PublishOptions(rungs=[Rung(**r) for r in TEST_LADDER[:2]], preset="fast",
                          segment_duration=2.0, **extra)  # fmt: skip


@pytest.fixture(scope="module")
def clip() -> Path:
    return media("video/bbb_720p_2s_h264.mp4")


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def _plays(out: Path) -> None:
    master = m3u8.load(str(out / "master.m3u8"))
    for p in master.playlists:
        pl = m3u8.load(str(out / p.uri))
        assert all((out / p.uri).parent.joinpath(s.uri).is_file() for s in pl.segments)
    r = subprocess.run([ffmpeg.ffmpeg_exe(), "-v", "error", "-i", str(out / "master.m3u8"),
                        "-map", "0:v:0", "-f", "null", "-"], capture_output=True, text=True,
                       check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_stream_is_in_place_and_plays_before_the_extras(tmp_path, clip):
    out = tmp_path / "out"
    seen: dict = {}

    def playable(report) -> None:
        seen["report"] = _report(out)
        seen["files"] = sorted(p.name for p in out.iterdir())
        _plays(out)
        with pytest.raises(InputError, match="is writing"), locked(out):  # ours till complete
            pass

    report = publish(clip, out, _options(), on_playable=playable)
    first = seen["report"]
    assert first["state"] == "playable"
    assert first["files"]["hls"] == "master.m3u8" and first["files"]["poster_preview"]
    assert first["extras"]["poster_preview"]["state"] == "done"
    pending = {n for n, e in first["extras"].items() if e["state"] == "pending"}
    assert pending == {"poster", "fallback", "sprites", "quality", "rate_quality_plot"}
    assert "thumbnails.vtt" not in seen["files"] and not first["files"]["fallback"]
    assert first["totals"]["playable_seconds"] and first["totals"]["complete_seconds"] is None
    # the last report: everything there, and both times
    last = _report(out)
    assert last == json.loads(report.model_dump_json())
    assert last["state"] == "complete"
    assert {e["state"] for e in last["extras"].values()} == {"done"}
    t = last["totals"]
    assert 0 < t["playable_seconds"] < t["complete_seconds"] == t["wall_seconds"]
    assert t["stage_seconds"]["encode"] > 0 and t["stage_seconds"]["quality"] > 0
    assert (out / last["files"]["thumbnails_vtt"]).is_file()
    assert all((out / n).is_file() for n in last["files"]["poster"].values())
    assert all(r["vmaf"]["mean"] > 0 for r in last["renditions"] if r["kind"] == "video")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_a_failing_extra_leaves_a_valid_stream_and_says_so(tmp_path, clip, monkeypatch):
    def broken(ctx, staging):
        (staging / "thumbs").mkdir()
        (staging / "thumbs" / "sprite-000-0123456789.jpg").write_bytes(b"half")
        raise ValueError("no keyframes to make thumbnails from")

    monkeypatch.setitem(stages._MAKERS, stages.SPRITES, broken)
    out = tmp_path / "out"
    report = publish(clip, out, _options(quality=False))
    assert report.state == "incomplete"
    sprites = report.extras["sprites"]
    assert sprites.state == "failed" and "no keyframes" in sprites.reason
    assert report.extras["fallback"].state == "done" and report.files.fallback
    assert report.files.thumbnails_vtt is None and not (out / "thumbs").exists()
    assert _report(out)["state"] == "incomplete"
    _plays(out)


def test_an_interrupt_after_playable_keeps_the_stream(tmp_path, clip, monkeypatch):
    def interrupted(ctx, staging):
        raise KeyboardInterrupt

    monkeypatch.setitem(stages._MAKERS, stages.FALLBACK, interrupted)
    out = tmp_path / "out"
    with pytest.raises(Cancelled, match=r"report\.json lists the extras left out"):
        publish(clip, out, _options())
    report = _report(out)
    assert report["state"] == "incomplete"
    assert report["extras"]["poster"]["state"] == "done"
    left = {n for n, e in report["extras"].items() if e["state"] == "interrupted"}
    assert left == {"fallback", "sprites", "quality", "rate_quality_plot"}
    _plays(out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # lock released


def test_an_interrupt_before_playable_leaves_nothing(tmp_path, clip, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "manifests", interrupted)
    with pytest.raises(KeyboardInterrupt):
        publish(clip, tmp_path / "out", _options())
    assert not list(tmp_path.iterdir())


def test_a_versioned_stream_switches_when_the_version_is_playable(tmp_path, clip, monkeypatch):
    from reelforge.delivery.deliver import publish_to

    stream = tmp_path / "show"
    pointed: list[str] = []
    make_sprites = stages._MAKERS[stages.SPRITES]

    def sprites(ctx, staging):  # a late extra: the pointer is already there
        pointed.append(json.loads((stream / "current.json").read_text())["version"])
        return make_sprites(ctx, staging)

    monkeypatch.setitem(stages._MAKERS, stages.SPRITES, sprites)
    done = publish_to(clip, stream, _options(quality=False), versioned=True)
    assert pointed == [done.version] and done.state["version"] == done.version
    assert _report(stream / done.version)["state"] == "complete"
    _plays(stream)
