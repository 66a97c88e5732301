"""The audio-visual sync meter on real talking heads."""

from __future__ import annotations

import json

import pytest
from conftest import media, run_cli, run_ffmpeg

from reelforge.lipsync.syncmeter import measure

SHIFTS = (80, -80, 200, -200)
CLIPS = ["grid_bbaf2n.mpg", "grid_brbk7n.mpg", "grid_lbax4n.mpg", "obama_weekly_answers.mp4"]


def shifted(src, ms, out):
    """The clip with its audio leading (ms > 0) or lagging (ms < 0) the picture by |ms|."""
    late = ["-itsoffset", f"{abs(ms) / 1000:.3f}"]
    first, second = (late, []) if ms > 0 else ([], late)
    run_ffmpeg(*first, "-i", src, *second, "-i", src, "-map", "0:v", "-map", "1:a",
               "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", out)  # fmt: skip
    return out


@pytest.mark.parametrize("clip", CLIPS)
def test_estimate_moves_with_the_shift(tmp_path, clip):
    src = media(f"video/{clip}")
    base = measure(src).offset_ms
    for ms in SHIFTS:
        reading = measure(shifted(src, ms, tmp_path / f"{ms}.mp4"))
        assert abs(reading.offset_ms - base - ms) <= 40, (clip, ms, reading.offset_ms, base)


@pytest.fixture(scope="module")
def joined_grid(tmp_path_factory):
    """Three GRID clips, each with its own audio, joined: 9 s with about 4.5 s of speech."""
    out = tmp_path_factory.mktemp("sync") / "grid-joined.mp4"
    clips = [media(f"video/{c}") for c in CLIPS[:3]]
    run_ffmpeg(*[a for c in clips for a in ("-i", c)], "-filter_complex",
               "[0:v][0:a][1:v][1:a][2:v][2:a]concat=n=3:v=1:a=1[v][a]",
               "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast",
               "-c:a", "aac", out)  # fmt: skip
    return out


def test_long_clip_with_its_own_audio_is_determined_and_close(joined_grid):
    reading = measure(joined_grid)
    assert reading.determined, reading.reason
    assert abs(reading.offset_ms) <= 80


def test_mismatched_pairs_are_never_determined(tmp_path, joined_grid):
    pairs = [(0, 1), (1, 2), (2, 0), (3, 0), (0, 3)]
    for a, b in pairs:
        out = tmp_path / f"mm{a}{b}.mp4"
        run_ffmpeg("-i", media(f"video/{CLIPS[a]}"), "-i", media(f"video/{CLIPS[b]}"),
                   "-map", "0:v", "-map", "1:a", "-shortest", "-c:v", "libx264",
                   "-preset", "ultrafast", "-c:a", "aac", out)  # fmt: skip
        assert not measure(out).determined, (a, b)
    # A long picture against long unrelated speech.
    speech = media("speech/LJ001-0001.wav")
    out = tmp_path / "long-mismatch.mp4"
    run_ffmpeg("-i", joined_grid, "-i", speech, "-map", "0:v", "-map", "1:a", "-shortest",
               "-c:v", "copy", "-c:a", "aac", out)  # fmt: skip
    reading = measure(out)
    assert not reading.determined, reading


def test_sync_check_cli(joined_grid, tmp_path):
    result = run_cli("sync-check", joined_grid, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["determined"] is True and set(data) >= {"offset_ms", "confidence", "reason"}
    silent = tmp_path / "silent.mp4"
    run_ffmpeg("-i", media("video/tears_of_steel_360p_10s.mp4"), "-t", "1", "-c", "copy", silent)
    result = run_cli("sync-check", silent)
    assert result.returncode == 2 and "has no audio stream" in result.stderr
    speech_only = media("speech/LJ001-0002.wav")
    result = run_cli("sync-check", speech_only)
    assert result.returncode == 2 and "has no video stream" in result.stderr
