"""Chunked publish on real media: chunks cut on the segment grid, encoded side by side in
worker processes, joined without re-encoding into the same stream an unchunked publish
makes (same frames at the same times, the same quality for the same bits)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import av
import m3u8
import numpy as np
import pytest
from conftest import CLI, assert_refused, media, publish_json, run_cli, run_ffmpeg
from mpegdash.parser import MPEGDASHParser
from streams import joined, nal_types, read_media_playlist, single_segment

from reelforge import layout
from reelforge.errors import MediaError
from reelforge.media.probe import probe
from reelforge.video import chunks, stages
from reelforge.video.chunks import ChunkEncode, ChunkOutput, ChunkSpec, LocalRunner
from reelforge.video.ladder import Rung
from reelforge.video.publish import PublishOptions, publish
from reelforge.video.timeline import Timeline

# Two small rungs with their CRF given, so the unchunked publish uses capped CRF too and the
# comparison measures chunking alone (rungs without one are calibrated: see test_calibrated).
RUNGS = [Rung(width=416, height=234, bitrate_kbps=145, crf=32),
         Rung(width=640, height=360, bitrate_kbps=365, crf=29)]  # fmt: skip
FPS = 24


def _options(**extra) -> PublishOptions:
    return PublishOptions(rungs=RUNGS, ladder_name="test", preset="fast", **extra)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """The 10 s film clip looped to 30 s with stream copy (720 frames, shot cuts)."""
    out = tmp_path_factory.mktemp("chunk-src") / "tears30.mp4"
    run_ffmpeg("-stream_loop", "2", "-i", media("video/tears_of_steel_360p_10s.mp4"),
               "-c", "copy", out)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def unchunked(tmp_path_factory, long_clip):
    out = tmp_path_factory.mktemp("chunk-pub") / "whole"
    report = publish(long_clip, out, _options(poster=False, thumbnails=False, fallback=False))
    return out, json.loads(report.model_dump_json())


@pytest.fixture(scope="module")
def chunked(tmp_path_factory, long_clip):
    out = tmp_path_factory.mktemp("chunk-pub") / "chunked"
    report = publish(long_clip, out, _options(chunk_seconds=8.0), runner=LocalRunner(2))
    return out, json.loads(report.model_dump_json())


def _playlists(out: Path) -> list[m3u8.Playlist]:
    master = m3u8.load(str(out / "master.m3u8"))
    assert master.is_variant
    return list(master.playlists)


def _decode(out: Path, uri: str, dest: Path) -> list[tuple[int, np.ndarray]]:
    """Every frame of a rendition (init + segments end to end): (pts, luma)."""
    path = joined(read_media_playlist(out / uri), dest)
    with av.open(str(path)) as c:
        return [(f.pts, f.to_ndarray(format="gray").astype(np.float32))
                for f in c.decode(video=0)]  # fmt: skip


# --- the plan ---------------------------------------------------------------------------


def test_chunks_fall_on_the_segment_grid_and_serialise(long_clip):
    info = probe(long_clip)
    encode = ChunkEncode(source=str(long_clip), info=info, preset="fast", segment_duration=4.0,
                         opening=[1.0, 1.0, 2.0], outputs=[])  # fmt: skip
    timeline = Timeline(4.0, (1.0, 1.0, 2.0))
    specs = chunks.plan_chunks(timeline, 30.0, 8.0, encode)
    assert [(s.start, s.end, s.first_segment) for s in specs] == [
        (0.0, 8.0, 0), (8.0, 16.0, 4), (16.0, 24.0, 6), (24.0, 30.0, 8)]  # fmt: skip
    assert [s.frames for s in specs] == [192, 192, 192, 144]
    # a remainder under half a chunk joins the chunk before; a sliver under 0.5 s is no cut
    assert [(s.start, s.end) for s in chunks.plan_chunks(timeline, 27.3, 8.0, encode)] == [
        (0.0, 8.0), (8.0, 16.0), (16.0, 27.3)]  # fmt: skip
    assert [(s.start, s.end) for s in chunks.plan_chunks(timeline, 16.3, 4.0, encode)] == [
        (0.0, 4.0), (4.0, 8.0), (8.0, 12.0), (12.0, 16.3)]  # fmt: skip
    # plain JSON: a Celery task can carry it, and the same spec names the same folder
    again = ChunkSpec.model_validate(json.loads(specs[1].model_dump_json()))
    assert again == specs[1] and again.folder == specs[1].folder
    assert again.timeline == Timeline(4.0, ()) and specs[0].timeline == timeline


def test_chunk_seconds_must_cover_a_segment(tmp_path):
    src = media("video/tears_of_steel_360p_10s.mp4")
    assert_refused(run_cli("publish", src, "-o", tmp_path / "o", "--chunk-seconds", "2"),
                   "--chunk-seconds")  # fmt: skip
    assert not (tmp_path / "o").exists()


# --- the chunked publish against the unchunked one ---------------------------------------


def test_chunked_stream_is_valid_hls_and_dash(chunked, tmp_path):
    out, report = chunked
    assert report["chunks"]["count"] == 4 and report["chunks"]["workers"] == 2
    assert report["chunks"]["crf"] == {"h264-416x234-145k": 32, "h264-640x360-365k": 29}
    for p in _playlists(out):
        pl = read_media_playlist(out / p.uri)
        assert [round(d, 3) for _, d in pl.segments] == [1, 1, 2, 4, 4, 4, 4, 4, 4, 2]
        assert len(list((out / p.uri).parent.glob("init-*.mp4"))) == 1  # one init, shared
        for i, (seg, _) in enumerate(pl.segments):
            assert seg.is_file()
            with av.open(str(single_segment(pl, i, tmp_path / f"s{i}.mp4"))) as c:
                first = next(c.demux(video=0))
                assert first.is_keyframe and 5 in nal_types(bytes(first)), (p.uri, i)
    mpd = MPEGDASHParser.parse(str(out / "manifest.mpd"))
    video = next(a for a in mpd.periods[0].adaptation_sets if a.content_type == "video")
    for rep in video.representations:
        seg_list = rep.segment_lists[0]
        assert (out / seg_list.initializations[0].source_url).is_file()
        assert len(seg_list.segment_urls) == 10
        assert all((out / u.media).is_file() for u in seg_list.segment_urls)
    # the extras read the joined renditions
    assert report["state"] == "complete", report["extras"]
    with av.open(str(out / report["files"]["fallback"])) as c:
        assert sum(1 for _ in c.decode(video=0)) == 30 * FPS


def test_frames_at_every_join_are_the_unchunked_ones(chunked, unchunked, tmp_path):
    """Exact in count and timestamps, and each frame beside a join is the picture the
    unchunked decode shows there (closer to it than to either neighbour)."""
    joins = [round(c["start"] * FPS) for c in chunked[1]["chunks"]["chunks"][1:]]
    assert joins == [192, 384, 576]
    for p in _playlists(chunked[0]):
        mine = _decode(chunked[0], p.uri, tmp_path / "c.mp4")
        theirs = _decode(unchunked[0], p.uri, tmp_path / "u.mp4")
        assert len(mine) == len(theirs) == 30 * FPS
        assert [t for t, _ in mine] == [t for t, _ in theirs]
        for j in joins:
            for k in range(j - 2, j + 2):
                err = [float(np.mean((mine[k][1] - theirs[k + d][1]) ** 2)) for d in (-1, 0, 1)]
                assert err[1] < min(err[0], err[2]) / 2, (p.uri, k, err)
                psnr = 10 * np.log10(255**2 / max(err[1], 1e-6))
                assert psnr > 30, (p.uri, k, psnr)


def test_quality_and_bitrate_match_the_unchunked_publish(chunked, unchunked):
    whole = {r["name"]: r for r in unchunked[1]["renditions"] if r["kind"] == "video"}
    parts = {r["name"]: r for r in chunked[1]["renditions"] if r["kind"] == "video"}
    assert set(whole) == set(parts) and len(parts) == 2
    for name, r in parts.items():
        assert abs(r["vmaf"]["mean"] - whole[name]["vmaf"]["mean"]) <= 0.5, (name, r, whole[name])
        assert abs(r["average_kbps"] / whole[name]["average_kbps"] - 1) <= 0.05, name
        assert r["segments"] == whole[name]["segments"]


def test_a_29_97_fps_source_with_stray_timestamps_joins_frame_exactly(talk_source, tmp_path):
    """The looped talking head: 30000/1001 fps (no chunk boundary is a frame time) and
    timestamps off the frame grid after each loop. Chunked, it decodes to the unchunked
    stream's frames at the same timestamps, segment for segment."""
    opts = {"rungs": [Rung(width=416, height=234, bitrate_kbps=200, crf=30)],
            "preset": "fast", "quality": False, "poster": False, "thumbnails": False,
            "fallback": False}  # fmt: skip
    publish(talk_source, tmp_path / "whole", PublishOptions(**opts))
    report = publish(talk_source, tmp_path / "parts", PublishOptions(**opts, chunk_seconds=4.0),
                     runner=LocalRunner(2))  # fmt: skip
    assert [c["start"] for c in report.chunks["chunks"]] == [0.0, 4.0, 8.0]
    (uri,) = [p.uri for p in _playlists(tmp_path / "whole")]
    whole = read_media_playlist(tmp_path / "whole" / uri)
    parts = read_media_playlist(tmp_path / "parts" / uri)
    assert [d for _, d in parts.segments] == [d for _, d in whole.segments]
    stamps = []
    for pl, name in ((whole, "w.mp4"), (parts, "p.mp4")):
        with av.open(str(joined(pl, tmp_path / name))) as c:
            stamps.append([f.pts for f in c.decode(video=0)])
    assert len(stamps[0]) > 340 and stamps[1] == stamps[0]


# --- codecs, calibration, the chunk function ---------------------------------------------


def test_four_codecs_chunked_from_the_cli(tmp_path):
    """Every codec's chunks share one init (the join refuses others), every segment
    starts with a keyframe, every rendition decodes to the source's frames; rungs without
    a CRF get one calibrated for their bitrate."""
    ladder = tmp_path / "ladder.json"
    ladder.write_text(json.dumps([{"width": 416, "height": 234, "bitrate_kbps": 200}]))
    out = tmp_path / "four"
    report = publish_json(media("video/tears_of_steel_360p_10s.mp4"), out, "--ladder", ladder,
                          "--codecs", "h264,hevc,vp9,av1", "--chunk-seconds", "4",
                          "--no-quality", "--no-thumbnails", "--no-fallback")  # fmt: skip
    assert report["chunks"]["count"] == 3
    assert set(report["chunks"]["crf"]) == {r["name"] for r in report["renditions"]
                                            if r["kind"] == "video"}  # fmt: skip
    playlists = _playlists(out)
    assert {p.stream_info.codecs.split(".")[0] for p in playlists} == {
        "avc1", "hvc1", "vp09", "av01"}  # fmt: skip
    for p in playlists:
        pl = read_media_playlist(out / p.uri)
        assert len(list((out / p.uri).parent.glob("init-*.mp4"))) == 1
        for i in range(len(pl.segments)):
            with av.open(str(single_segment(pl, i, tmp_path / "s.mp4"))) as c:
                assert next(c.demux(video=0)).is_keyframe, (p.uri, i)
        with av.open(str(joined(pl, tmp_path / "all.mp4"))) as c:
            assert sum(1 for _ in c.decode(video=0)) == 10 * FPS, p.uri
    for r in report["renditions"]:
        if r["kind"] == "video" and r["codec"].startswith(("avc1", "hvc1")):
            # calibrated on a digest of the title: near the target, not on it
            assert abs(r["average_kbps"] / r["target_kbps"] - 1) < 0.25, r


def _spec(start: float, end: float, first: int, **rung) -> ChunkSpec:
    """A chunk of the 10 s clip at one 234p rung (capped CRF 30, single-threaded)."""
    src = media("video/tears_of_steel_360p_10s.mp4")
    info = probe(src)
    plan = stages.plan(info, PublishOptions(rungs=[Rung(width=416, height=234,
                                                        bitrate_kbps=200, **rung)]))  # fmt: skip
    encode = ChunkEncode(source=str(src), info=info, preset="fast", segment_duration=4.0,
                         opening=[1.0, 1.0, 2.0], threads=1,
                         outputs=[ChunkOutput(rendition=o.rendition.model_copy(
                             update={"crf": 30}), deep=o.deep) for o in plan.outputs])  # fmt: skip
    limits = {
        o.rendition.name: chunks.output_frames(o.rendition, chunks.source_rate(info), start, end)
        for o in encode.outputs
    }
    return ChunkSpec(index=1 if start else 0, start=start, end=end, first_segment=first,
                     frames=round((end - start) * FPS), encode=encode,
                     limits=limits)  # fmt: skip


@pytest.mark.timing  # a chunk already there is found within 0.5 s
def test_encode_chunk_is_idempotent_and_its_output_named_by_content(tmp_path):
    spec = _spec(4.0, 8.0, 3)
    first = chunks.encode_chunk(spec, tmp_path)
    folder = tmp_path / spec.folder
    names = sorted(p.name for p in folder.rglob("*") if p.is_file())
    assert len(names) == 3 and "chunk.json" in names
    for name in set(names) - {"chunk.json"}:  # init and segment named by their bytes
        assert layout.HASHED.search(name), name
    assert [p.name for p in tmp_path.iterdir()] == [spec.folder]  # nothing half-written
    t0 = time.monotonic()
    again = chunks.encode_chunk(spec, tmp_path)
    assert again == first and time.monotonic() - t0 < 0.5  # already there: not encoded again
    track = first.tracks[0]
    assert [s.duration_ticks / track.timescale for s in track.segments] == [4.0]
    assert track.segments[0].start_ticks == 0  # times count from the chunk's start
    (tmp_path / "other").mkdir()
    redo = chunks.encode_chunk(spec, tmp_path / "other")  # the same spec elsewhere
    assert [s.name for s in redo.tracks[0].segments] == [s.name for s in track.segments]


def test_join_refuses_chunks_with_another_codec_configuration(tmp_path):
    """Two chunks of one rendition whose encoder set another frame rate (so another
    sequence parameter set in the init segment) cannot be joined."""
    a = chunks.encode_chunk(_spec(0.0, 4.0, 0), tmp_path)
    b = chunks.encode_chunk(_spec(4.0, 8.0, 3, max_fps=12), tmp_path)
    assert a.tracks[0].name == b.tracks[0].name
    with pytest.raises(MediaError, match="codec configuration"):
        chunks.join([a, b], tmp_path, tmp_path / "out")


# --- interrupts ---------------------------------------------------------------------------


def _descendants(pid: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def _encoders(pids: set[int]) -> int:
    count = 0
    for pid in pids:
        try:
            cmd = (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue
        count += b"ffmpeg" in cmd and b"libx264" in cmd
    return count


@pytest.mark.timing
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_stops_every_chunk_within_a_second(tmp_path, talk_source, sig):
    """While two chunks encode side by side (a 720p rung at the slowest preset, its CRF
    given, so no calibration comes first), Ctrl-C or SIGTERM to the publish ends it with
    130 within the interrupt tests' deadline, every worker and ffmpeg gone (reaped, not
    left as zombies) and nothing left beside the output."""
    ladder = tmp_path / "ladder.json"
    ladder.write_text(json.dumps([{"width": 1280, "height": 720, "bitrate_kbps": 2000,
                                   "crf": 23}]))  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen([*CLI, "publish", talk_source, "-o", work / "stream", "--ladder",
                             ladder, "--preset", "best", "--chunk-seconds", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ})  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _encoders(_descendants(proc.pid)) < 2:  # two chunks encoding side by side
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        children = _descendants(proc.pid)
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert elapsed <= 1.5, f"took {elapsed:.2f} s to stop"
    grace = time.monotonic() + 0.5
    while time.monotonic() < grace and any(Path(f"/proc/{p}").exists() for p in children):
        time.sleep(0.02)
    assert not [p for p in children if Path(f"/proc/{p}").exists()]
    assert list(work.iterdir()) == []
