"""Per-title ladders: rungs chosen on this title's own rate-quality convex hull.

Contract: :func:`analyse` measures how this source compresses and returns a
:class:`PerTitle` with the measured points, their upper convex hull and the chosen rungs
(ready for :func:`reelforge.video.ladder.plan`); it costs one short lossless digest, one
ffmpeg run of sample encodes and one VMAF run, all in ``workdir``.

Method:

1. A digest of the title: windows of 1 s spread evenly over it (about 10% of its length,
   2 to 16 windows; the whole title when it is 3 s or shorter), joined into one lossless
   clip with the same source filters as the final encode (deinterlace, tone-map, CFR,
   BT.709 matrix).
2. Sample encodes of the digest with x264 at the final encode's preset, all from one
   decode, with the final encode's fixed keyframe interval: every ladder resolution up to
   the source's (Apple's sizes fitted to its aspect
   ratio; 432p, between 360p and 540p, left out for its cost) at CRF 18, 24, 30 and 36.
   Bitrate from the packets; VMAF at the source's display size, frames paired by index
   (every 3rd frame scored).
3. The upper convex hull of (log bitrate, VMAF) over all resolutions. The top rung is where
   the hull reaches the target VMAF (default 95; the hull's best point when it never does),
   at the resolution of the hull vertex that reaches it. Lower rungs follow down the hull
   by a bitrate ratio (default 1.8) to a floor (default 145 kb/s), each at the resolution of
   the hull vertex nearest in log bitrate, never larger than the rung above; a rung whose
   predicted quality a cheaper rung matches is dropped.
4. Each rung is encoded with capped CRF: the CRF that gives the rung's bitrate at its size
   (interpolated between that size's samples), with the ladder's VBV cap (1.5x the bitrate,
   1.5 s buffer). The quality the analysis measured is what the rung gets, on short titles
   too, where 1-pass ABR spends its first seconds finding the rate.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import av

from reelforge.media import ffmpeg
from reelforge.media.probe import VideoStreamInfo
from reelforge.media.quality import Distorted, vmaf_many
from reelforge.video import ladder
from reelforge.video.bdrate import Point, upper_hull
from reelforge.video.codecs import CODECS
from reelforge.video.encode import source_filters, to_bt709

CRFS = (18, 24, 30, 36)
WINDOW = 1.0
SHARE = 0.10


@dataclass
class Sample:
    width: int
    height: int
    crf: int
    kbps: float
    vmaf: float

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass
class ChosenRung:
    width: int
    height: int
    bitrate_kbps: int
    predicted_vmaf: float  # the hull's VMAF at this bitrate
    crf: float | None = None  # x264 CRF at this size that gives this bitrate


@dataclass
class PerTitle:
    samples: list[Sample]
    hull: list[Sample]
    rungs: list[ChosenRung]
    target_vmaf: float
    digest_seconds: float
    analysis_seconds: float
    notes: list[str] = field(default_factory=list)

    def ladder_rungs(self) -> list[ladder.Rung]:
        return [ladder.Rung(width=r.width, height=r.height, bitrate_kbps=r.bitrate_kbps,
                            crf=r.crf) for r in self.rungs]  # fmt: skip

    def as_dict(self) -> dict:
        return {
            "target_vmaf": self.target_vmaf,
            "digest_seconds": round(self.digest_seconds, 3),
            "analysis_seconds": round(self.analysis_seconds, 3),
            "samples": [vars(s) | {"kbps": round(s.kbps, 1), "vmaf": round(s.vmaf, 3)}
                        for s in self.samples],
            "hull": [{"width": s.width, "height": s.height, "crf": s.crf,
                      "kbps": round(s.kbps, 1), "vmaf": round(s.vmaf, 3)} for s in self.hull],
            "rungs": [vars(r) | {"predicted_vmaf": round(r.predicted_vmaf, 2)}
                      for r in self.rungs],
            "notes": self.notes,
        }  # fmt: skip


def windows(duration: float) -> list[tuple[float, float]]:
    """(start, end) of the digest's windows, spread evenly over the title."""
    if duration <= 3 * WINDOW:
        return [(0.0, duration)]
    count = max(2, min(16, round(SHARE * duration / WINDOW)))
    out = []
    for k in range(count):
        centre = (k + 0.5) * duration / count
        start = min(max(0.0, centre - WINDOW / 2), duration - WINDOW)
        out.append((round(start, 3), round(start + WINDOW, 3)))
    return out


def sizes(video: VideoStreamInfo) -> list[tuple[int, int]]:
    """The ladder's resolutions fitted to the source, up to its own size."""
    out: list[tuple[int, int]] = []
    for rung in ladder.APPLE_H264_LADDER:
        if rung.height == 432:  # between 360p and 540p: little to learn for its cost
            continue
        w, h = ladder.fit(rung.width, rung.height, video.display_width, video.display_height)
        if w <= video.display_width and h <= video.display_height and (w, h) not in out:
            out.append((w, h))
    if not out:
        out.append((video.display_width - video.display_width % 2,
                    video.display_height - video.display_height % 2))  # fmt: skip
    return out


def _kbps(path: Path) -> float:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        total, frames = 0, 0
        for packet in c.demux(stream):
            if packet.size:
                total += packet.size
                frames += 1
        rate = float(stream.average_rate or 25)
    return total * 8 / max(frames / rate, 1e-6) / 1000


def _make_digest(source: Path, video: VideoStreamInfo, duration: float, work: Path) -> Path:
    """The windows, each read by seeking (only they are decoded), through the final
    encode's source filters, joined and stored losslessly."""
    spans = windows(duration)
    args: list[str] = []
    graph = []
    chain = ",".join([*source_filters(video), *to_bt709(video), "setpts=PTS-STARTPTS"])
    for k, (a, b) in enumerate(spans):
        args += ["-ss", f"{a:.3f}", "-t", f"{b - a:.3f}", "-i", str(source)]
        graph.append(f"[{k}:v:0]{chain}[w{k}]")
    graph.append("".join(f"[w{k}]" for k in range(len(spans)))
                 + f"concat=n={len(spans)}:v=1:a=0,setpts=N/FRAME_RATE/TB[d]")  # fmt: skip
    digest = work / "digest.mkv"
    ffmpeg.run([*args, "-filter_complex", ";".join(graph), "-map", "[d]", "-an",
                "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                str(digest)], subject=source)  # fmt: skip
    return digest


def _sample_encodes(digest: Path, sizes_: list[tuple[int, int]], preset: str, gop: int,
                    work: Path) -> list[tuple[int, int, int, Path]]:  # fmt: skip
    """Every size at every CRF, at the final encode's x264 preset, from one decode. (Fast
    presets moved to the final one by a calibration pair were tried: CRF means too
    different a thing across presets, and the top rung missed its target by 2 points.)"""
    x264 = CODECS["h264"].presets[preset]
    graph = [f"[0:v:0]split={len(sizes_)}" + "".join(f"[s{i}]" for i in range(len(sizes_)))]
    args: list[str] = ["-i", str(digest)]
    outputs = []
    for i, (w, h) in enumerate(sizes_):
        graph.append(
            f"[s{i}]scale={w}:{h}:flags=lanczos,setsar=1,format=yuv420p,"
            f"split={len(CRFS)}" + "".join(f"[v{i}_{j}]" for j in range(len(CRFS)))
        )
        for j, crf in enumerate(CRFS):
            out = work / f"sample-{w}x{h}-crf{crf}.mp4"
            outputs.append((w, h, crf, out))
            args += ["-map", f"[v{i}_{j}]", "-c:v", "libx264", "-preset", x264,
                     "-crf", str(crf), "-g", str(gop), "-keyint_min", str(gop),
                     "-sc_threshold", "0", "-an", str(out)]  # fmt: skip
    ffmpeg.run([*args[:2], "-filter_complex", ";".join(graph), *args[2:]], subject=digest)
    return outputs


def choose_rungs(
    samples: list[Sample], target: float, ratio: float, floor_kbps: float
) -> tuple[list[Sample], list[ChosenRung], list[str]]:
    """The hull and the rungs on it (see the module docstring)."""
    notes: list[str] = []
    by_point = {(s.kbps, s.vmaf): s for s in samples}
    hull_points = upper_hull([Point(s.kbps, s.vmaf) for s in samples])
    hull = [by_point[(p.kbps, p.quality)] for p in hull_points]

    def on_hull(kbps: float) -> float:
        """The hull's VMAF at ``kbps`` (linear in log bitrate between vertices)."""
        x = math.log(kbps)
        for a, b in itertools.pairwise(hull):
            if a.kbps <= kbps <= b.kbps:
                t = (x - math.log(a.kbps)) / (math.log(b.kbps) - math.log(a.kbps))
                return a.vmaf + t * (b.vmaf - a.vmaf)
        return hull[0].vmaf if kbps < hull[0].kbps else hull[-1].vmaf

    # Top rung: where the hull reaches the target.
    reach = next((i for i, s in enumerate(hull) if s.vmaf >= target), None)
    if reach is None:
        top_kbps, top_res = hull[-1].kbps, hull[-1]
        notes.append(f"VMAF {target:g} is beyond this title's hull (best {hull[-1].vmaf:.1f} "
                     f"at {hull[-1].kbps:.0f} kb/s): top rung there")  # fmt: skip
    elif reach == 0:
        top_kbps, top_res = hull[0].kbps, hull[0]
    else:
        a, b = hull[reach - 1], hull[reach]
        t = (target - a.vmaf) / (b.vmaf - a.vmaf)
        top_kbps = math.exp(math.log(a.kbps) + t * (math.log(b.kbps) - math.log(a.kbps)))
        top_res = b
    rungs = [ChosenRung(top_res.width, top_res.height, round(top_kbps), on_hull(top_kbps))]
    kbps = top_kbps / ratio
    while kbps >= floor_kbps * 0.999:
        nearest = min(hull, key=lambda s: abs(math.log(s.kbps) - math.log(kbps)))
        above = rungs[-1]
        w, h = (nearest.width, nearest.height)
        if w * h > above.width * above.height:
            w, h = above.width, above.height
        predicted = on_hull(kbps)
        if predicted < above.predicted_vmaf - 0.01:
            rungs.append(ChosenRung(w, h, round(kbps), predicted))
        kbps /= ratio
    if rungs[-1].bitrate_kbps > floor_kbps * ratio / 1.2 and floor_kbps < top_kbps:
        # The ratio overshot the floor by a lot: end on the floor itself.
        smallest = min(hull, key=lambda s: abs(math.log(s.kbps) - math.log(floor_kbps)))
        w, h = (smallest.width, smallest.height)
        if w * h > rungs[-1].width * rungs[-1].height:
            w, h = rungs[-1].width, rungs[-1].height
        rungs.append(ChosenRung(w, h, round(floor_kbps), on_hull(floor_kbps)))
    rungs.reverse()
    for rung in rungs:
        rung.crf = crf_for(samples, rung.width, rung.height, rung.bitrate_kbps)
    return hull, rungs, notes


def crf_for(samples: list[Sample], width: int, height: int, kbps: float) -> float:
    """The CRF at this size that gives ``kbps``: interpolated in log bitrate between the
    size's samples (clamped to the CRFs measured), to a quarter step."""
    own = sorted((s for s in samples if (s.width, s.height) == (width, height)),
                 key=lambda s: s.kbps)  # fmt: skip
    xs = [math.log(s.kbps) for s in own]
    crfs = [float(s.crf) for s in own]
    if len(own) == 1:
        return crfs[0]
    x = min(max(math.log(kbps), xs[0]), xs[-1])
    for (x0, c0), (x1, c1) in itertools.pairwise(zip(xs, crfs, strict=True)):
        if x0 <= x <= x1:
            crf = c0 + (c1 - c0) * (x - x0) / (x1 - x0) if x1 > x0 else c0
            return round(crf * 4) / 4
    return crfs[-1]


def analyse(
    source: Path,
    video: VideoStreamInfo,
    duration: float,
    work: Path,
    *,
    preset: str = "balanced",
    target_vmaf: float = 95.0,
    ratio: float = 1.8,
    floor_kbps: float = 145.0,
    keyframe_interval: float = 2.0,
    on_step=None,
) -> PerTitle:
    started = time.monotonic()
    step = on_step or (lambda _n: None)
    digest = _make_digest(source, video, duration, work)
    step(1)
    with av.open(str(digest)) as c:
        digest_seconds = float(c.duration or 0) / 1e6
    sizes_ = sizes(video)
    gop = max(1, round(keyframe_interval * video.frame_rate))
    encodes = _sample_encodes(digest, sizes_, preset, gop, work)
    step(2)
    width = video.display_width - video.display_width % 2
    height = video.display_height - video.display_height % 2
    scores = vmaf_many(digest, [Distorted(path) for *_, path in encodes], width=width,
                       height=height, workdir=work, subsample=3)  # fmt: skip
    step(3)
    samples = [Sample(w, h, crf, _kbps(path), s.mean)
               for (w, h, crf, path), s in zip(encodes, scores, strict=True)]  # fmt: skip
    hull, rungs, notes = choose_rungs(samples, target_vmaf, ratio, floor_kbps)
    return PerTitle(samples, hull, rungs, target_vmaf, digest_seconds,
                    time.monotonic() - started, notes)  # fmt: skip
