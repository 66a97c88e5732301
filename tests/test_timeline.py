"""Segment and keyframe timelines: the opening of short segments, then the regular grid."""

from __future__ import annotations

import itertools

import pytest
from conftest import run_ffmpeg
from streams import keyframe_times

from reelforge.errors import InputError
from reelforge.video.timeline import (
    Timeline,
    check_opening,
    default_opening,
    keyframe_interval,
    parse_opening,
)


def test_default_opening_returns_to_the_grid():
    assert default_opening(4) == (1.0, 1.0, 2.0)
    assert default_opening(6) == (1.0, 1.0, 2.0, 2.0)
    assert default_opening(2) == (1.0, 1.0)
    assert default_opening(1) == ()
    for seconds in (2, 3, 4, 5, 6, 8, 10):
        opening = default_opening(seconds)
        assert abs(sum(opening) % seconds) < 1e-6 or abs(sum(opening) % seconds - seconds) < 1e-6
        assert max(opening) <= keyframe_interval(seconds) + 1e-9


def test_boundaries_and_keyframes():
    t = Timeline(4.0, (1.0, 1.0, 2.0))
    assert list(itertools.islice(t.boundaries(), 6)) == [0, 1, 2, 4, 8, 12]
    assert t.keyframe_times(11) == [0, 1, 2, 4, 6, 8, 10]
    assert t.shortest == 1.0
    plain = Timeline(4.0)
    assert list(itertools.islice(plain.boundaries(), 3)) == [0, 4, 8]
    assert plain.keyframe_times(7) == [0, 2, 4, 6]
    assert Timeline(2.0, (0.5, 0.5, 1.0)).shortest == 0.5


@pytest.mark.parametrize("opening", [(), (1.0, 1.0, 2.0), (0.5, 0.5, 1.0)])
def test_ffmpeg_places_keyframes_where_the_expression_says(tmp_path, opening):
    """The -force_key_frames expression, run by ffmpeg's x264: keyframes exactly there."""
    timeline = Timeline(4.0, opening)
    out = tmp_path / "k.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=24", "-t", "9",
               "-c:v", "libx264", "-preset", "ultrafast", "-g", "49", "-keyint_min", "48",
               "-sc_threshold", "0", "-force_key_frames", timeline.keyframe_expression(),
               "-x264-params", "scenecut=0", out)  # fmt: skip
    times = keyframe_times(out)
    assert [round(t - times[0], 3) for t in times] == timeline.keyframe_times(9)


def test_parse_and_check_opening():
    assert parse_opening("1,1,2") == (1.0, 1.0, 2.0)
    assert parse_opening(" none ") == () == parse_opening("0") == parse_opening("")
    with pytest.raises(InputError, match="'a' is not a number"):
        parse_opening("1,a")
    with pytest.raises(InputError, match="not a number"):
        parse_opening("inf")
    check_opening((0.5, 2.0), 4.0)
    with pytest.raises(InputError, match=r"0\.25 to 2 s"):
        check_opening((2.5,), 4.0)
    with pytest.raises(InputError, match=r"not 0\.1"):
        check_opening((0.1,), 4.0)
