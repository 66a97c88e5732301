"""Capped-CRF calibration: the CRF at which each rendition meets its bitrate on this title.

Contract: :func:`calibrate` returns, for every output without a CRF of its own, the CRF
(in its codec's scale) that gives the rendition's target bitrate on this title, measured on
a digest of it; outputs that already carry a CRF (per-title H.264 rungs) keep theirs. It
writes only into ``workdir``.

Why: a chunked encode cuts the title into chunks that are encoded apart. A bitrate target
per chunk would make each chunk spend the average on its own, so a hard chunk next to an
easy one would look worse than it; one CRF for the whole title gives every chunk the same
quality, and the VBV cap (the ladder's 1.5x peak, 1.5 s buffer) bounds its peaks as in the
unchunked encode.

Method: a digest of the title, whole keyframe intervals (GOPs) of the title's own grid
spread evenly over it (about :data:`SHARE` of its length, :data:`MIN_WINDOWS` to
:data:`MAX_WINDOWS` of them, read by seeking: only they are decoded), goes through the
final encode's filter graph and encoder settings (preset, keyframe interval, VBV cap), all
outputs from one decode: first at each codec's usual CRF, then at the CRF the rate slope
predicts for the target, and a third time (at most :data:`MAX_PROBES`) for the outputs
whose second probe is still more than :data:`TOLERANCE` off. Each window is one GOP of the
final encode, so the digest costs what those GOPs will cost (windows of other lengths were
tried: each cut between windows is a scene cut the encoder pays for, and the CRF found fell
10-25% short of the target bitrate on the whole title). Each next CRF follows the slope of
log bitrate the last two probes measured (kept near the nominal one), or the nominal slope
when a probe came near the VBV cap, which flattens the curve (extrapolating from a capped
probe overshot the CRF by 2-3 steps). Costs two to three encodes of the digest: about 2-3 x
:data:`SHARE` of the encode itself, more for titles too short for two windows to be that
share. A sample is not the title: the bitrate a chunked encode lands on follows the
content between the windows too, and may miss the target by some percent either way.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import av

from reelforge.media import ffmpeg
from reelforge.media.probe import MediaInfo
from reelforge.video.codecs import SDR
from reelforge.video.encode import Output, build_filter_graph, deep_colour
from reelforge.video.timeline import Timeline

SHARE = 0.03  # of the title's length
MIN_WINDOWS, MAX_WINDOWS = 2, 16
# Per codec: the first probe's CRF, the nominal slope of ln(bitrate) per CRF step, the CRF
# range, and the step CRFs are rounded to (x264 and x265 take fractions).
START = {"h264": 26.0, "hevc": 28.0, "vp9": 42.0, "av1": 44.0}
SLOPE = {"h264": 0.115, "hevc": 0.11, "vp9": 0.06, "av1": 0.06}
RANGE = {"h264": (8.0, 45.0), "hevc": (8.0, 45.0), "vp9": (8.0, 63.0), "av1": (8.0, 63.0)}
STEP = {"h264": 0.25, "hevc": 0.25, "vp9": 1.0, "av1": 1.0}
SLOPE_SPREAD = 1.6  # a measured slope is kept within this factor of the nominal one
CAPPED = 0.85  # a probe at this share of the peak rate or more was held by the cap
MAX_PROBES = 3  # encodes of the digest at most; the third only for outputs still off
TOLERANCE = 0.04  # a probe this close to the target needs no further one


def windows(timeline: Timeline, duration: float) -> list[tuple[float, float]]:
    """(start, length) of the digest's windows: whole keyframe intervals of the regular
    grid (after the opening), spread evenly over the title; the whole title when it holds
    fewer than :data:`MIN_WINDOWS` of them."""
    interval = timeline.keyframe_interval
    start = timeline.opening_end
    available = math.floor((duration - start) / interval + 1e-6)
    if available < MIN_WINDOWS:
        return [(0.0, duration)]
    count = max(MIN_WINDOWS, min(MAX_WINDOWS, available, round(SHARE * duration / interval)))
    picks = [math.floor((k + 0.5) * available / count) for k in range(count)]
    return [(round(start + j * interval, 6), interval) for j in picks]


def _round(codec: str, crf: float) -> float:
    low, high = RANGE[codec]
    step = STEP[codec]
    return min(high, max(low, round(crf / step) * step))


def _probe(source: Path, info: MediaInfo, outputs: list[Output], crfs: list[float],
           timeline: Timeline, preset: str, workdir: Path, tag: str) -> list[float]:  # fmt: skip
    """Encode the digest of ``timeline``'s windows once per output at its CRF (keyframes
    every keyframe interval: on each window's first frame); the kb/s each one measured."""
    video = info.video[0]
    spans = windows(timeline, info.duration)
    args: list[str] = []
    for a, length in spans:
        args += ["-ss", f"{a:.3f}", "-t", f"{length:.3f}", "-i", str(source)]
    head = [f"[{k}:v:0]setpts=PTS-STARTPTS[w{k}]" for k in range(len(spans))]
    head.append("".join(f"[w{k}]" for k in range(len(spans)))
                + f"concat=n={len(spans)}:v=1:a=0[digest]")  # fmt: skip
    graph = build_filter_graph(video, outputs).replace("[0:v:0]", "[digest]", 1)
    grid = Timeline(timeline.segment_duration, ())
    args += ["-filter_complex", ";".join([*head, graph])]
    files = []
    for i, (o, crf) in enumerate(zip(outputs, crfs, strict=True)):
        out = workdir / f"calibrate-{tag}-{i}.mp4"
        files.append(out)
        rendition = o.rendition.model_copy(update={"crf": crf})
        colour = deep_colour(video) if o.deep else SDR
        args += ["-map", f"[v{i}]", *o.codec.args(rendition, grid, preset, colour),
                 "-an", str(out)]  # fmt: skip
    ffmpeg.run(args, subject=source)
    rates = []
    for o, path in zip(outputs, files, strict=True):
        with av.open(str(path)) as c:
            sizes = [p.size for p in c.demux(c.streams.video[0]) if p.size]
        seconds = max(len(sizes) / o.rendition.fps, 1e-6)
        rates.append(max(sum(sizes) * 8 / seconds / 1000, 1e-3))
        path.unlink()
    return rates


def _next_crf(o: Output, probes: list[tuple[float, float]]) -> float:
    """The CRF the probes so far ((CRF, kb/s), in order) predict for ``o``'s bitrate: from
    the last probe along the slope the last two measured (kept near the nominal slope),
    or along the nominal slope when there is one probe or a probe came near the cap."""
    codec = o.codec.name
    nominal = SLOPE[codec]
    slope = nominal
    c2, k2 = probes[-1]
    if len(probes) >= 2:
        c1, k1 = probes[-2]
        capped = max(k1, k2) >= CAPPED * o.rendition.maxrate_kbps  # the cap, not the CRF
        if c2 != c1 and not capped:
            slope = (math.log(k1) - math.log(k2)) / (c2 - c1)
            slope = min(max(slope, nominal / SLOPE_SPREAD), nominal * SLOPE_SPREAD)
    return _round(codec, c2 + math.log(k2 / o.rendition.bitrate_kbps) / slope)


def calibrate(source: Path, info: MediaInfo, outputs: list[Output], timeline: Timeline,
              preset: str, workdir: Path) -> dict[str, float]:  # fmt: skip
    """Rendition name -> CRF for every output (see the module docstring)."""
    result = {o.rendition.name: o.rendition.crf for o in outputs if o.rendition.crf is not None}
    todo = [o for o in outputs if o.rendition.crf is None]
    if not todo or not info.video:
        return result
    probes: dict[str, list[tuple[float, float]]] = {o.rendition.name: [] for o in todo}
    crfs = [START[o.codec.name] for o in todo]
    for round_ in range(MAX_PROBES):
        rates = _probe(source, info, todo, crfs, timeline, preset, workdir, str(round_))
        for o, crf, kbps in zip(todo, crfs, rates, strict=True):
            probes[o.rendition.name].append((crf, kbps))
        again = []
        for o in todo:
            crf = _next_crf(o, probes[o.rendition.name])
            result[o.rendition.name] = crf
            last_crf, last_kbps = probes[o.rendition.name][-1]
            near = abs(last_kbps / o.rendition.bitrate_kbps - 1) <= TOLERANCE
            if round_ == 0 or (not near and crf != last_crf):
                again.append(o)
        todo = again
        crfs = [result[o.rendition.name] for o in todo]
        if not todo:
            break
    return result


def with_crfs(outputs: list[Output], crfs: dict[str, float]) -> list[Output]:
    """``outputs`` with each rendition's CRF set from ``crfs`` (capped CRF)."""
    return [replace(o, rendition=o.rendition.model_copy(update={"crf": crfs[o.rendition.name]}))
            for o in outputs]  # fmt: skip
