"""Multi-codec ladders: H.264, HEVC, VP9 and AV1 from one publish, read back independently."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import av
import m3u8
import pytest
from conftest import assert_refused, media, publish_json, run_cli, run_ffmpeg
from mpegdash.parser import MPEGDASHParser
from streams import joined, keyframe_times, read_media_playlist, single_segment

CODEC_PATTERNS = {
    "h264": r"avc1\.64[0-9A-F]{4}",
    "hevc": r"hvc1\.1\.6\.L\d+\.[0-9A-F]+(\.[0-9A-F]+)*",
    "vp9": r"vp09\.00\.\d{2}\.08",
    "av1": r"av01\.0\.\d{2}[MH]\.08",
}
DECODER = {"h264": "h264", "hevc": "hevc", "vp9": "vp9", "av1": ("libdav1d", "av1")}


@pytest.fixture(scope="module")
def multi(tmp_path_factory) -> tuple[Path, dict]:
    """A 2 s film clip in all four codecs, a 3-rung ladder, 2 s segments opening with
    0.5, 0.5 and 1 s ones (so every encoder must honour forced keyframes)."""
    tmp = tmp_path_factory.mktemp("codecs")
    ladder = tmp / "ladder.json"
    ladder.write_text(json.dumps([
        {"width": 416, "height": 234, "bitrate_kbps": 200},
        {"width": 640, "height": 360, "bitrate_kbps": 500},
        {"width": 854, "height": 480, "bitrate_kbps": 1000},
    ]))  # fmt: skip
    out = tmp / "multi"
    report = publish_json(media("video/sintel_480p_2s_h264.mp4"), out, "--ladder", ladder,
                          "--codecs", "h264,hevc,vp9,av1", "--segment-duration", "2",
                          "--start-segments", "0.5,0.5,1")  # fmt: skip
    return out, report


def _codec_of(uri: str) -> str:
    return uri.split("/")[-2].split("-")[0]  # video/<codec>-<size>-<rate>/playlist.m3u8


def test_every_codec_covers_the_ladder_and_decodes(multi, tmp_path):
    out, _ = multi
    master = m3u8.load(str(out / "master.m3u8"))
    by_codec: dict[str, list] = {}
    for p in master.playlists:
        by_codec.setdefault(_codec_of(p.uri), []).append(p)
    assert sorted(by_codec) == ["av1", "h264", "hevc", "vp9"]
    sizes = {c: sorted(p.stream_info.resolution for p in ps) for c, ps in by_codec.items()}
    assert all(s == sizes["h264"] for s in sizes.values()) and len(sizes["h264"]) == 3
    for codec, playlists in by_codec.items():
        for p in playlists:
            pl = read_media_playlist(out / p.uri)
            with av.open(str(joined(pl, tmp_path / "j.mp4"))) as c:
                stream = c.streams.video[0]
                assert stream.codec_context.name in DECODER[codec]
                frames = list(c.decode(video=0))
            assert (frames[0].width, frames[0].height) == p.stream_info.resolution
            assert len(frames) == 48  # 2 s at 24 fps, every frame there


def test_codecs_strings_are_read_from_the_streams(multi, tmp_path):
    out, _ = multi
    master = m3u8.load(str(out / "master.m3u8"))
    for p in master.playlists:
        codec = _codec_of(p.uri)
        video_codec, audio_codec = p.stream_info.codecs.split(",")
        assert re.fullmatch(CODEC_PATTERNS[codec], video_codec), video_codec
        assert audio_codec == "mp4a.40.2"
        pl = read_media_playlist(out / p.uri)
        init = pl.init.read_bytes()
        entry = {"h264": b"avc1", "hevc": b"hvc1", "vp9": b"vp09", "av1": b"av01"}[codec]
        assert entry in init  # the sample entry the CODECS string names (hvc1, not hev1)
        with av.open(str(single_segment(pl, 0, tmp_path / "s.mp4"))) as c:
            cc = c.streams.video[0].codec_context
            if codec == "h264":
                assert int(video_codec[-2:], 16) == cc.level
            if codec == "hevc":
                assert int(video_codec.split(".")[3][1:]) == cc.level  # general_level_idc
            if codec in ("vp9", "av1"):
                assert cc.profile in ("Profile 0", "Main")


def test_keyframes_align_across_codecs_and_rungs(multi, tmp_path):
    out, _ = multi
    master = m3u8.load(str(out / "master.m3u8"))
    times = {}
    for n, p in enumerate(master.playlists):
        pl = read_media_playlist(out / p.uri)
        times[p.uri] = keyframe_times(joined(pl, tmp_path / f"k{n}.mp4"))
    starts = {uri: [round(t - ts[0], 3) for t in ts] for uri, ts in times.items()}
    assert all(s == [0.0, 0.5, 1.0] for s in starts.values()), times  # one per segment
    for p in master.playlists:
        durations = [round(d, 3) for _, d in read_media_playlist(out / p.uri).segments]
        assert durations == [0.5, 0.5, 1.0], (p.uri, durations)


def test_dash_has_one_adaptation_set_per_codec(multi):
    out, _ = multi
    mpd = MPEGDASHParser.parse(str(out / "manifest.mpd"))
    video = [a for a in mpd.periods[0].adaptation_sets if a.content_type == "video"]
    prefixes = sorted({r.codecs.split(".")[0] for a in video for r in a.representations})
    assert prefixes == ["av01", "avc1", "hvc1", "vp09"] and len(video) == 4
    for aset in video:
        assert len({r.codecs.split(".")[0] for r in aset.representations}) == 1
        assert len(aset.representations) == 3


def test_report_lists_every_codec_with_vmaf(multi):
    _, report = multi
    assert report["settings"]["codecs"] == ["h264", "hevc", "vp9", "av1"]
    video = [r for r in report["renditions"] if r["kind"] == "video"]
    assert len(video) == 12 and all(r["vmaf"]["mean"] > 30 for r in video)
    h264 = {(r["width"], r["height"]): r for r in video if r["name"].startswith("h264")}
    for r in video:
        if r["name"].startswith(("hevc", "av1")):
            # The efficient codecs get a smaller share of the H.264 bitrate for the same size.
            assert r["target_kbps"] < h264[(r["width"], r["height"])]["target_kbps"]


def test_hdr_source_keeps_ten_bit_in_hevc_and_tone_maps_h264(tmp_path):
    src = tmp_path / "pq.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=1",
               "-vf", "setparams=color_trc=smpte2084:color_primaries=bt2020:colorspace=bt2020nc,"
               "format=yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast",
               "-x265-params", "log-level=error", src)  # fmt: skip
    ladder = tmp_path / "ladder.json"
    ladder.write_text(json.dumps([{"width": 640, "height": 360, "bitrate_kbps": 800}]))
    out = tmp_path / "out"
    report = publish_json(src, out, "--ladder", ladder, "--codecs", "h264,hevc", "--no-quality")
    assert any("tone-mapped" in n and "hevc" in n for n in report["notes"])
    master = m3u8.load(str(out / "master.m3u8"))
    seen = {}
    for p in master.playlists:
        pl = read_media_playlist(out / p.uri)
        with av.open(str(single_segment(pl, 0, tmp_path / "f.mp4"))) as c:
            frame = next(c.decode(video=0))
            cc = c.streams.video[0].codec_context
            seen[_codec_of(p.uri)] = (frame.format.name, int(cc.color_trc), p.stream_info.codecs)
    assert seen["h264"][:2] == ("yuv420p", 1)  # BT.709 SDR
    assert seen["hevc"][:2] == ("yuv420p10le", 16)  # PQ kept
    assert seen["hevc"][2].startswith("hvc1.2.")  # Main 10


def test_variable_frame_rate_and_odd_size_sources(tmp_path):
    src = tmp_path / "vfr.mkv"
    # 30 fps nominal with every third frame held twice as long, at an odd size.
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=641x361:rate=30:duration=2",
               "-vf", "setpts='(N+floor(N/3))/30/TB'", "-fps_mode", "vfr",
               "-c:v", "libx264", "-preset", "ultrafast", src)  # fmt: skip
    ladder = tmp_path / "ladder.json"
    ladder.write_text(json.dumps([{"width": 640, "height": 360, "bitrate_kbps": 600}]))
    out = tmp_path / "out"
    report = publish_json(src, out, "--ladder", ladder, "--codecs", "h264,av1", "--no-quality")
    master = m3u8.load(str(out / "master.m3u8"))
    for p in master.playlists:
        w, h = p.stream_info.resolution
        assert w % 2 == 0 and h % 2 == 0
        pl = read_media_playlist(out / p.uri)
        with av.open(str(joined(pl, tmp_path / "v.mp4"))) as c:
            pts = [f.pts * f.time_base for f in c.decode(video=0)]
        steps = {round(float(b - a), 4) for a, b in itertools.pairwise(pts)}
        assert len(steps) == 1, steps  # constant frame rate
    assert report["renditions"][0]["frame_rate"] > 0


def test_unknown_codec_is_refused(tmp_path):
    src = media("video/sintel_480p_2s_h264.mp4")
    result = run_cli("publish", src, "-o", tmp_path / "out", "--codecs", "h264,theora")
    assert_refused(result, "unknown codec 'theora'")
    assert not (tmp_path / "out").exists()


def test_a_codec_missing_from_the_ffmpeg_build_is_refused(tmp_path):
    """An ffmpeg whose build lacks SVT-AV1 (the real binary, with that encoder left out of
    its encoder list): --codecs av1 is refused before any work, nothing written."""
    import os
    import stat

    from reelforge.media.ffmpeg import ffmpeg_exe

    real = ffmpeg_exe()
    wrapper = tmp_path / "ffmpeg-without-av1"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$*" = "-hide_banner -encoders" ]; then "{real}" "$@" | grep -v libsvtav1;\n'
        f'else exec "{real}" "$@"; fi\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "REELFORGE_FFMPEG": str(wrapper)}
    out = tmp_path / "out"
    result = run_cli("publish", media("video/sintel_480p_2s_h264.mp4"), "-o", out,
                     "--codecs", "h264,av1", env=env)  # fmt: skip
    assert_refused(result, "codec av1", "no libsvtav1 encoder")
    assert not out.exists()


def test_every_codec_keeps_its_peak_within_twice_its_average(multi):
    """Apple's authoring rule 1.26 for all four codecs: no variant's peak segment rate
    (measured over the segments, as the BANDWIDTH test measures it) above 2x its average,
    the short opening segments included."""
    from test_publish import _measured

    out, _ = multi
    master = m3u8.load(str(out / "master.m3u8"))
    seen = set()
    for variant in master.playlists:
        peak, average = _measured(out, variant.uri)
        assert peak <= 2 * average, (variant.uri, peak, average)
        seen.add(_codec_of(variant.uri))
    assert seen == {"h264", "hevc", "vp9", "av1"}
