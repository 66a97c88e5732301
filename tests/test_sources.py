"""Awkward sources: HDR (PQ) and interlaced video come out as progressive SDR BT.709."""

from __future__ import annotations

import json

import av
import numpy as np
from conftest import publish_json, run_ffmpeg


def _ladder(tmp_path):
    path = tmp_path / "ladder.json"
    path.write_text(json.dumps([{"width": 640, "height": 360, "bitrate_kbps": 800}]))
    return path


def _first_frame(out):
    import m3u8

    master = m3u8.load(str(out / "master.m3u8"))
    uri = out / master.playlists[0].uri
    pl = m3u8.load(str(uri))
    joined = out.parent / "first.mp4"
    joined.write_bytes(
        (uri.parent / pl.segment_map[0].uri).read_bytes()
        + (uri.parent / pl.segments[0].uri).read_bytes()
    )
    with av.open(str(joined)) as c:
        frame = next(c.decode(video=0))
        return frame, c.streams.video[0].codec_context


def test_hdr_source_is_tone_mapped_to_sdr(tmp_path):
    src = tmp_path / "pq.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=2",
               "-vf", "setparams=color_trc=smpte2084:color_primaries=bt2020:colorspace=bt2020nc,"
               "format=yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast",
               "-x265-params", "log-level=error", src)  # fmt: skip
    report = publish_json(src, tmp_path / "out", "--ladder", _ladder(tmp_path), "--no-quality")
    assert report["source"]["video"][0]["color_transfer"] == "smpte2084"
    frame, cc = _first_frame(tmp_path / "out")
    assert frame.format.name == "yuv420p"
    assert (int(cc.color_trc), int(cc.color_primaries)) == (1, 1)  # BT.709
    y = np.asarray(frame.to_ndarray(format="gray"), dtype=np.float32)
    assert 30 < y.mean() < 220 and y.std() > 20  # a picture, not a flat wash


def test_interlaced_source_is_deinterlaced(tmp_path):
    src = tmp_path / "tff.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=720x576:rate=50:duration=2",
               "-vf", "interlace", "-c:v", "libx264", "-flags", "+ildct+ilme",
               "-x264-params", "tff=1", src)  # fmt: skip
    report = publish_json(src, tmp_path / "out", "--ladder", _ladder(tmp_path), "--no-quality")
    assert report["source"]["video"][0]["field_order"] in ("tt", "tb")
    frame, cc = _first_frame(tmp_path / "out")
    assert cc.field_order in (0, 1)  # unknown or progressive, never interlaced
    assert frame.interlaced_frame is False
