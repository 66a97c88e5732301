"""Ladder planning (pure functions)."""

from __future__ import annotations

import pytest

from reelforge.errors import InputError
from reelforge.video.ladder import (
    APPLE_H264_LADDER,
    Rung,
    fit,
    load_ladder_file,
    plan,
)
from reelforge.video.timeline import keyframe_interval


def sizes(renditions):
    return [(r.width, r.height, r.bitrate_kbps) for r in renditions]


def test_1080p_source_gets_the_whole_apple_ladder():
    out = plan(APPLE_H264_LADDER, display_width=1920, display_height=1080, source_fps=30)
    assert sizes(out)[0] == (416, 234, 145) and sizes(out)[-1] == (1920, 1080, 7800)
    assert len(out) == 9


def test_never_above_the_source():
    out = plan(APPLE_H264_LADDER, display_width=1280, display_height=720, source_fps=25)
    assert max(r.height for r in out) == 720 and len(out) == 7
    small = plan(APPLE_H264_LADDER, display_width=854, display_height=480, source_fps=24)
    assert sizes(small)[-1][:2] == (854, 480)
    assert all(r.width <= 854 and r.height <= 480 for r in small)
    tiny = plan(APPLE_H264_LADDER, display_width=320, display_height=180, source_fps=24)
    assert len(tiny) == 1 and tiny[0].height <= 180


def test_aspect_ratio_portrait_and_even_sizes():
    portrait = plan(APPLE_H264_LADDER, display_width=1080, display_height=1920, source_fps=30)
    assert (portrait[-1].width, portrait[-1].height) == (1080, 1920)
    scope = plan(APPLE_H264_LADDER, display_width=2048, display_height=858, source_fps=24)
    for r in [*portrait, *scope]:
        assert r.width % 2 == 0 and r.height % 2 == 0
    assert (scope[-1].width, scope[-1].height) == (1920, 804)
    assert fit(1920, 1080, 640, 480) == (1440, 1080)


def test_frame_rate_capped_for_low_rungs():
    out = plan(APPLE_H264_LADDER, display_width=1920, display_height=1080, source_fps=59.94)
    for r in out:
        if r.bitrate_kbps <= 1100:
            assert abs(r.fps - 29.97) < 0.01 and r.fps_filter == "framestep=2"
        else:
            assert abs(r.fps - 59.94) < 0.01 and r.fps_filter is None


def test_vbv_keeps_peaks_bounded():
    for r in plan(APPLE_H264_LADDER, display_width=1920, display_height=1080, source_fps=30):
        assert r.maxrate_kbps <= 1.5 * r.bitrate_kbps and r.bufsize_kbits <= 1.5 * r.bitrate_kbps


def test_keyframe_interval_divides_segments():
    assert keyframe_interval(4) == 2.0
    assert keyframe_interval(6) == 2.0
    assert keyframe_interval(1) == 1.0
    assert abs(keyframe_interval(5) * 3 - 5) < 1e-9


def test_ladder_file(tmp_path):
    good = tmp_path / "l.json"
    good.write_text('{"rungs": [{"width": 640, "height": 360, "bitrate_kbps": 500}]}')
    assert load_ladder_file(good) == [Rung(width=640, height=360, bitrate_kbps=500)]
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(InputError, match="not valid JSON"):
        load_ladder_file(bad)
    with pytest.raises(InputError, match="not found"):
        load_ladder_file(tmp_path / "missing.json")
