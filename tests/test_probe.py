"""Probing real files."""

from __future__ import annotations

import json

from conftest import media, run_cli, run_ffmpeg

from reelforge.media.probe import probe


def test_probe_reads_streams_and_layout():
    info = probe(media("video/obama_weekly_answers.mp4"))
    assert info.container.startswith("mov,mp4")
    assert abs(info.duration - 3.88) < 0.01
    assert info.fast_start is False
    v = info.video[0]
    assert (v.codec, v.profile, v.width, v.height) == ("h264", "High", 1280, 720)
    assert (v.display_aspect_ratio, v.rotation, v.pix_fmt, v.bit_depth) == ("16:9", 0, "yuv420p", 8)
    assert abs(v.frame_rate - 29.97) < 0.01
    a = info.audio[0]
    assert (a.codec, a.profile, a.sample_rate, a.channels) == ("aac", "LC", 44100, 2)


def test_probe_keyframe_interval_and_other_containers():
    grid = probe(media("video/grid_bbaf2n.mpg"))
    assert grid.container == "mpeg" and grid.fast_start is None
    assert grid.video[0].codec == "mpeg1video" and grid.audio[0].codec == "mp2"
    assert abs(grid.video[0].keyframe_interval - 0.48) < 0.01
    webm = probe(media("video/bbb_720p_1s_vp8.webm"))
    assert webm.video[0].codec == "vp8" and webm.audio[0].codec == "vorbis"


def test_probe_rotation_and_fast_start(tmp_path):
    src = media("video/obama_weekly_answers.mp4")
    out = tmp_path / "turned.mp4"
    run_ffmpeg("-display_rotation", "90", "-i", src, "-c", "copy", "-movflags", "+faststart", out)
    info = probe(out)
    v = info.video[0]
    assert info.fast_start is True
    assert v.rotation in (90, 270)
    assert (v.display_width, v.display_height, v.display_aspect_ratio) == (720, 1280, "9:16")


def test_probe_cli_json_and_table():
    src = media("video/tears_of_steel_360p_10s.mp4")
    result = run_cli("probe", src, "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["video"][0]["width"] == 640 and data["audio"] == []
    table = run_cli("probe", src)
    assert table.returncode == 0 and "keyframe interval" in table.stdout


def test_nominal_frame_rate_survives_timestamp_gaps(tmp_path):
    # Joining a clip to itself leaves gaps at the joins that pull the average rate down.
    looped = tmp_path / "looped.mp4"
    run_ffmpeg("-stream_loop", "4", "-i", media("video/bbb_720p_2s_h264.mp4"), "-c", "copy", looped)
    v = probe(looped).video[0]
    assert v.frame_rate_exact == "24/1"
    webm = probe(media("video/bbb_720p_1s_vp8.webm")).video[0]  # millisecond time base
    assert webm.frame_rate_exact == "24/1"
