"""End-to-end publish on real media: decode what was encoded, parse what was written."""

from __future__ import annotations

import itertools
import re
from fractions import Fraction
from pathlib import Path

import av
import m3u8
import numpy as np
from mpegdash.parser import MPEGDASHParser
from PIL import Image
from streams import (
    joined,
    keyframe_times,
    nal_types,
    read_media_playlist,
    single_segment,
    top_level_boxes,
)

KEY_INTERVAL = 2.0
OPENING = {4.0: [1.0, 1.0, 2.0], 2.0: [1.0, 1.0]}  # the default short first segments


def segment_starts(segment_duration: float, until: float) -> list[float]:
    """Where segments should start: the opening's short ones, then the regular grid."""
    starts, t = [], 0.0
    for d in OPENING[segment_duration]:
        starts.append(t)
        t += d
    while t < until:
        starts.append(t)
        t += segment_duration
    return starts


def keyframe_grid(segment_duration: float, until: float) -> list[float]:
    """Keyframes: every opening segment's start, then every KEY_INTERVAL."""
    times, t = [], 0.0
    for d in OPENING[segment_duration]:
        times.append(t)
        t += d
    while t < until - 1e-6:
        times.append(t)
        t += KEY_INTERVAL
    return times


def variants(out: Path) -> m3u8.M3U8:
    master = m3u8.load(str(out / "master.m3u8"))
    assert master.is_variant
    return master


def test_master_playlist_lists_every_rung_with_required_attributes(talk):
    out, _report = talk
    master = variants(out)
    text = (out / "master.m3u8").read_text()
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in text
    sizes = sorted(p.stream_info.resolution for p in master.playlists)
    assert sizes == [(416, 234), (640, 360), (960, 540), (1280, 720)]
    for p in master.playlists:
        info = p.stream_info
        assert info.bandwidth and info.average_bandwidth and info.frame_rate
        assert info.codecs.endswith(",mp4a.40.2")
        assert info.audio == "audio"
    audio = [m for m in master.media if m.type == "AUDIO"]
    assert len(audio) == 1 and audio[0].group_id == "audio" and audio[0].channels == "2"
    assert len(master.iframe_playlists) == 4


def test_every_uri_resolves_to_a_file(talk, scenes):
    for out, _ in (talk, scenes):
        master = variants(out)
        uris = [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]
        uris += [p.uri for p in master.iframe_playlists]
        for uri in uris:
            pl = m3u8.load(str(out / uri))
            base = (out / uri).parent
            assert (base / pl.segment_map[0].uri).is_file()
            for seg in pl.segments:
                path = base / seg.uri
                assert path.is_file(), path
                if seg.byterange:
                    length, offset = (int(x) for x in seg.byterange.split("@"))
                    assert offset + length <= path.stat().st_size


def test_media_playlists_are_vod_cmaf(talk):
    out, _ = talk
    for p in variants(out).playlists:
        text = (out / p.uri).read_text()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and "#EXT-X-MAP:URI=" in text
        assert "#EXT-X-INDEPENDENT-SEGMENTS" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
        pl = m3u8.load(str(out / p.uri))
        assert all(round(s.duration) <= pl.target_duration for s in pl.segments)


def test_renditions_decode_end_to_end_at_size_and_rate(talk, tmp_path):
    out, report = talk
    source = report["source"]
    source_frames = source["duration"] * source["video"][0]["frame_rate"]
    for p in variants(out).playlists:
        pl = read_media_playlist(out / p.uri)
        path = joined(pl, tmp_path / "all.mp4")
        with av.open(str(path)) as c:
            rate = c.streams.video[0].average_rate
            frames = list(c.decode(video=0))
        w, h = p.stream_info.resolution
        assert {(f.width, f.height) for f in frames} == {(w, h)}
        assert abs(len(frames) - source_frames) <= 2
        assert abs(float(rate) - p.stream_info.frame_rate) < 0.01


def test_audio_rendition_is_aac_lc_stereo_48k(talk, tmp_path):
    out, report = talk
    audio = next(m for m in variants(out).media if m.type == "AUDIO")
    pl = read_media_playlist(out / audio.uri)
    with av.open(str(joined(pl, tmp_path / "a.mp4"))) as c:
        s = c.streams.audio[0]
        assert (s.codec_context.name, s.codec_context.profile) == ("aac", "LC")
        assert (s.rate, s.channels) == (48000, 2)
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(samples / 48000 - report["source"]["duration"]) < 0.1


def test_every_segment_starts_with_an_idr(talk, scenes, tmp_path):
    for out, _ in (talk, scenes):
        for p in variants(out).playlists:
            pl = read_media_playlist(out / p.uri)
            for i in range(len(pl.segments)):
                seg = single_segment(pl, i, tmp_path / f"s{i}.mp4")
                with av.open(str(seg)) as c:
                    first = next(c.demux(video=0))
                    assert first.is_keyframe
                    assert 5 in nal_types(bytes(first)), f"{p.uri} segment {i} has no IDR"


def test_idr_times_are_identical_across_renditions_and_on_the_grid(talk, scenes, tmp_path):
    for out, report in (talk, scenes):
        times = []
        for n, p in enumerate(variants(out).playlists):
            pl = read_media_playlist(out / p.uri)
            times.append(keyframe_times(joined(pl, tmp_path / f"k{n}.mp4")))
        assert all(t == times[0] for t in times), times
        duration = report["source"]["duration"]
        expected = keyframe_grid(report["settings"]["segment_duration"], duration)
        assert report["settings"]["start_segments"] == OPENING[
            report["settings"]["segment_duration"]]  # fmt: skip
        assert len(times[0]) == len(expected), (times[0], expected)
        frame = 1 / report["source"]["video"][0]["frame_rate"]
        # ffmpeg's reader delays presentation by the reorder depth; count from the first frame.
        for want, t in zip(expected, (t - times[0][0] for t in times[0]), strict=True):
            # The first frame at or after each grid time.
            assert -0.001 <= t - want < frame + 0.001, (want, t)


def test_segments_keep_to_the_opening_and_the_target_duration(talk, scenes):
    for out, report in (talk, scenes):
        target = report["settings"]["segment_duration"]
        starts = segment_starts(target, report["source"]["duration"] - 0.5)
        wanted = [b - a for a, b in itertools.pairwise(starts)]
        for p in variants(out).playlists:
            pl = read_media_playlist(out / p.uri)
            durations = [d for _, d in pl.segments]
            assert len(durations) == len(starts), (durations, starts)
            assert max(durations) <= target + 0.5
            # every segment but the last lasts what the timeline says (within a frame)
            assert all(abs(d - w) < 0.05 for d, w in zip(durations, wanted, strict=False)), (
                durations, wanted)  # fmt: skip


def _measured(out: Path, uri: str) -> tuple[float, float]:
    """(peak, average) bit rate; the peak as RFC 8216 defines it: the highest rate of any
    run of consecutive segments lasting 0.5 to 1.5 target durations."""
    pl = read_media_playlist(out / uri)
    target = m3u8.load(str(out / uri)).target_duration
    sizes = [seg.stat().st_size * 8 for seg, _ in pl.segments]
    durations = [d for _, d in pl.segments]
    peak = 0.0
    for i in range(len(sizes)):
        for j in range(i + 1, len(sizes) + 1):
            span = sum(durations[i:j])
            if span > 1.5 * target and j > i + 1:
                break
            if span >= 0.5 * target:
                peak = max(peak, sum(sizes[i:j]) / span)
    total = sum(sizes) / pl.duration
    return peak, total


def test_bandwidth_attributes_match_measured_segments(talk, scenes):
    for out, _ in (talk, scenes):
        master = variants(out)
        audio = [m for m in master.media if m.type == "AUDIO"]
        a_peak, a_avg = _measured(out, audio[0].uri) if audio else (0.0, 0.0)
        for p in master.playlists:
            peak, avg = _measured(out, p.uri)
            # Apple rules 1.26/1.27: within 10% of what the segments measure.
            assert abs(p.stream_info.bandwidth - (peak + a_peak)) <= 0.1 * (peak + a_peak)
            assert abs(p.stream_info.average_bandwidth - (avg + a_avg)) <= 0.1 * (avg + a_avg)
            # Peak segment bitrate at most twice the average.
            assert peak <= 2 * avg, (p.uri, peak, avg)


def test_codecs_strings_match_the_bitstream(talk, tmp_path):
    out, _ = talk
    for p in variants(out).playlists:
        video_codec = p.stream_info.codecs.split(",")[0]
        m = re.fullmatch(r"avc1\.([0-9A-F]{2})([0-9A-F]{2})([0-9A-F]{2})", video_codec)
        assert m, video_codec
        pl = read_media_playlist(out / p.uri)
        with av.open(str(single_segment(pl, 0, tmp_path / "c.mp4"))) as c:
            cc = c.streams.video[0].codec_context
            assert cc.profile == "High" and int(m.group(1), 16) == 100
            assert int(m.group(3), 16) == cc.level


def test_dash_manifest_parses_and_resolves(talk, tmp_path):
    out, _ = talk
    mpd = MPEGDASHParser.parse(str(out / "manifest.mpd"))
    assert mpd.type == "static"
    sets = mpd.periods[0].adaptation_sets
    kinds = sorted(a.content_type for a in sets)
    assert kinds == ["audio", "video"]
    master = variants(out)
    hls_segments = {str((out / p.uri).parent / s.uri) for p in master.playlists
                    for s in m3u8.load(str(out / p.uri)).segments}  # fmt: skip
    video = next(a for a in sets if a.content_type == "video")
    assert len(video.representations) == 4
    for aset in sets:
        for rep in aset.representations:
            seg_list = rep.segment_lists[0]
            assert (out / seg_list.initializations[0].source_url).is_file()
            urls = [out / u.media for u in seg_list.segment_urls]
            assert urls and all(u.is_file() for u in urls)
            timeline = seg_list.segment_timelines[0].Ss
            count = sum(1 + (s.r or 0) for s in timeline)
            assert count == len(urls)
            if aset.content_type == "video":
                # The same CMAF files serve HLS and DASH: written once.
                assert {str(u) for u in urls} <= hls_segments
                assert rep.codecs.startswith("avc1.")


def test_iframe_playlists_point_at_decodable_keyframes(talk, tmp_path):
    out, _ = talk
    master = variants(out)
    for ip in master.iframe_playlists:
        pl = m3u8.load(str(out / ip.uri))
        assert pl.is_i_frames_only
        base = (out / ip.uri).parent
        init = (base / pl.segment_map[0].uri).read_bytes()
        for seg in pl.segments:
            length, offset = (int(x) for x in seg.byterange.split("@"))
            data = (base / seg.uri).read_bytes()[offset : offset + length]
            probe = tmp_path / "i.mp4"
            probe.write_bytes(init + data)
            with av.open(str(probe)) as c:
                frames = list(c.decode(video=0))
            assert len(frames) >= 1 and frames[0].key_frame


def test_fallback_mp4_is_fast_start_and_plays(talk):
    out, report = talk
    fallback = out / report["files"]["fallback"]
    boxes = top_level_boxes(fallback)
    assert boxes.index("moov") < boxes.index("mdat")
    with av.open(str(fallback)) as c:
        assert c.streams.video[0].codec_context.height == 720
        assert c.streams.audio
        frames = sum(1 for _ in c.decode(video=0))
    source = report["source"]
    assert abs(frames - source["duration"] * source["video"][0]["frame_rate"]) <= 2


def test_poster_is_representative_in_three_formats(talk):
    out, report = talk
    poster = report["files"]["poster"]
    assert set(poster) == {"avif", "webp", "jpeg"}
    for fmt, name in poster.items():
        with Image.open(out / name) as img:
            assert img.format.lower() == {"jpeg": "jpeg", "webp": "webp", "avif": "avif"}[fmt]
            assert img.size == (1280, 720)
            y = np.asarray(img.convert("L"), dtype=np.float32)
        assert 24 < y.mean() < 232 and y.std() > 12


def test_scrubbing_sprites_and_vtt(talk):
    out, report = talk
    vtt = (out / report["files"]["thumbnails_vtt"]).read_text().splitlines()
    assert vtt[0] == "WEBVTT"
    cues = [(vtt[i], vtt[i + 1]) for i, line in enumerate(vtt) if "-->" in line]
    assert len(cues) >= 5
    last_end = 0.0
    for timing, target in cues:
        start, end = (_seconds(t) for t in timing.split(" --> "))
        assert abs(start - last_end) < 0.01 and end > start
        last_end = end
        file, frag = target.split("#xywh=")
        x, y, w, h = (int(v) for v in frag.split(","))
        with Image.open(out / file) as sheet:
            assert x + w <= sheet.width and y + h <= sheet.height
    assert abs(last_end - report["source"]["duration"]) < 0.1


def _seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_file_names_carry_content_hashes(talk):
    import hashlib

    out, _ = talk
    for path in out.rglob("*"):
        if path.suffix in (".m4s", ".mp4", ".avif", ".webp", ".jpg"):
            digest = re.search(r"-([0-9a-f]{10})\.", path.name).group(1)
            assert hashlib.sha256(path.read_bytes()).hexdigest().startswith(digest)


def test_report_has_measurements_and_vmaf(talk):
    out, report = talk
    video = [r for r in report["renditions"] if r["kind"] == "video"]
    assert len(video) == 4
    vmafs = [r["vmaf"]["mean"] for r in sorted(video, key=lambda r: r["target_kbps"])]
    assert vmafs == sorted(vmafs) and vmafs[-1] > 85
    for r in video:
        assert r["size_bytes"] > 0 and r["peak_to_average"] <= 2.0
        assert abs(r["average_kbps"] - r["target_kbps"]) < 0.35 * r["target_kbps"]
    assert report["totals"]["encode_speed_x_realtime"] > 0
    assert not [p for p in out.parent.iterdir() if ".partial" in p.name or ".work" in p.name]


def test_no_audio_source_publishes_video_only(scenes):
    out, _report = scenes
    master = variants(out)
    assert not [m for m in master.media if m.type == "AUDIO"]
    for p in master.playlists:
        assert p.stream_info.codecs.startswith("avc1.") and "mp4a" not in p.stream_info.codecs
    # A 360p source: no rung above its own size.
    assert max(p.stream_info.resolution[1] for p in master.playlists) == 360


def test_audio_only_input_gives_an_audio_only_stream(tmp_path):
    from conftest import media, publish_json

    out = tmp_path / "speech"
    report = publish_json(media("speech/LJ001-0001.wav"), out)
    master = variants(out)
    assert len(master.playlists) == 1
    assert master.playlists[0].stream_info.codecs == "mp4a.40.2"
    pl = read_media_playlist(out / master.playlists[0].uri)
    with av.open(str(joined(pl, tmp_path / "a.mp4"))) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(samples / 48000 - 9.66) < 0.1
    assert report["files"]["fallback"].endswith(".m4a")


def test_rotation_and_non_square_pixels_are_honoured(tmp_path):
    from conftest import media, publish_json, run_ffmpeg

    src = media("video/grid_bbaf2n.mpg")
    anamorphic = tmp_path / "anamorphic.mp4"
    # 360x288 stored, displayed at 4:3 pixels -> 480x288; then turned a quarter.
    run_ffmpeg("-i", src, "-vf", "setsar=4/3", "-c:v", "libx264", "-preset", "ultrafast",
               "-c:a", "aac", anamorphic)  # fmt: skip
    rotated = tmp_path / "rotated.mp4"
    run_ffmpeg("-display_rotation", "90", "-i", anamorphic, "-c", "copy", rotated)
    report = publish_json(rotated, tmp_path / "out", "--no-quality")
    video = report["source"]["video"][0]
    assert (video["display_width"], video["display_height"]) == (288, 480)
    sizes = {(r["width"], r["height"]) for r in report["renditions"] if r["kind"] == "video"}
    for w, h in sizes:
        assert w % 2 == 0 and h % 2 == 0 and h > w
        assert abs(Fraction(w, h) - Fraction(288, 480)) < 0.02
    assert (288, 480) in sizes
