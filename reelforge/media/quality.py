"""Full-reference video quality with libvmaf through ffmpeg.

Contract: frames are paired by index, not by timestamp (timestamps are rewritten to
``N/FRAME_RATE`` on both sides, since container changes round them differently), and the
distorted video is scaled to the reference's size before scoring. One ffmpeg run decodes
the reference once for any number of distorted videos.

Subsampled VMAF (:func:`vmaf_many` with ``subsample`` k >= 4) scores frames 0, k, 2k, ...
and drops every other frame before it is scaled, except each scored frame's two
neighbours: VMAF's motion feature (the smaller of the motion to the previous and to the
next frame) then sees what it sees when every frame is scored, and the features are
computed on 3 of every k frames. Measured: keeping only the next neighbour overstated VMAF
by 0.9 on a 10 s film clip at 150 kb/s (the motion to a frame k away is larger); dropping
both overstated it by 1-6 points; libvmaf's own ``n_subsample`` scales every frame and runs
the motion feature on all of them; k = 2 was off by up to 1.8 points on a 20 s 720p ladder
(every other frame of a GOP with B-frames is a B-frame), so :func:`choose_subsample` keeps
to odd steps. Scores are pooled over the scored frames.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reelforge.media import ffmpeg

INDEX_TIMESTAMPS = "settb=AVTB,setpts=N/FRAME_RATE/TB"


@dataclass(frozen=True)
class Distorted:
    """A video to score, and the filter (if any) that brings the reference to its frame rate."""

    path: Path
    reference_filter: str | None = None


@dataclass(frozen=True)
class VmafScore:
    """VMAF pooled over the scored frames."""

    mean: float
    harmonic_mean: float
    p5: float
    minimum: float
    frames: int
    subsample: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "mean": round(self.mean, 3),
            "harmonic_mean": round(self.harmonic_mean, 3),
            "p5": round(self.p5, 3),
            "min": round(self.minimum, 3),
            "frames": self.frames,
            "subsample": self.subsample,
        }


def pool(values: list[float], subsample: int = 1) -> VmafScore:
    """Mean, harmonic mean, 5th percentile and minimum of per-frame scores."""
    if not values:
        raise ValueError("no frames were scored")
    ordered = sorted(values)
    k = (len(ordered) - 1) * 0.05
    lo, hi = math.floor(k), math.ceil(k)
    p5 = ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
    harmonic = len(values) / sum(1.0 / (v + 1.0) for v in values) - 1.0
    return VmafScore(
        mean=sum(values) / len(values),
        harmonic_mean=harmonic,
        p5=p5,
        minimum=ordered[0],
        frames=len(values),
        subsample=subsample,
    )


SUBSAMPLE_STEPS = (1, 3, 5, 7)  # odd: no step lines up with an even GOP's frame types
MIN_SCORED_FRAMES = 24  # a subsampled score pools at least this many frames


def choose_subsample(frames: int, step: int = 7) -> int:
    """The largest odd step <= ``step`` (of :data:`SUBSAMPLE_STEPS`) that still scores
    :data:`MIN_SCORED_FRAMES` of ``frames``; 1 for clips too short for any."""
    fits = [k for k in SUBSAMPLE_STEPS if k <= step and math.ceil(frames / k) >= MIN_SCORED_FRAMES]
    return max(fits, default=1)


def default_threads() -> int:
    """libvmaf threads per scoring run: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def vmaf_many(
    reference: Path,
    distorted: list[Distorted],
    *,
    width: int,
    height: int,
    workdir: Path,
    reference_filters: list[str] | None = None,
    subsample: int = 1,
    threads: int | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> list[VmafScore]:
    """VMAF of each distorted video against ``reference`` at ``width`` x ``height``, on
    every ``subsample``-th frame (see the module docstring); ``threads``: libvmaf's
    threads (None: :func:`default_threads`)."""
    n = len(distorted)
    if n == 0:
        return []
    threads = threads or default_threads()
    # Frames k*i - 1, k*i and k*i + 1 go on and libvmaf scores the middle one of each three:
    # its motion feature then sees both true neighbours. Steps under 4 keep every frame.
    pick = [f"select='lt(mod(n+1\\,{subsample})\\,3)'"] if subsample >= 4 else []
    fed = 3 if pick else subsample  # libvmaf scores every fed-th frame it is given
    ref_filters = {d.reference_filter for d in distorted}
    shared = len(ref_filters) == 1  # one reference chain: pick frames before scaling it
    head = [*([next(iter(ref_filters))] if shared and None not in ref_filters else []), *pick]
    pre = [*(reference_filters or []), *(head if shared else []),
           f"scale={width}:{height}:flags=bicubic", "format=yuv420p"]  # fmt: skip
    graph = [f"[0:v:0]{','.join(pre)},split={n}" + "".join(f"[r{i}]" for i in range(n))]
    args: list[str] = ["-i", str(reference)]
    logs: list[Path] = []
    for i, d in enumerate(distorted):
        args += ["-i", str(d.path)]
        ref_chain = [] if shared else [*([d.reference_filter] if d.reference_filter else []),
                                       *pick]  # fmt: skip
        graph.append(f"[r{i}]{','.join([*ref_chain, INDEX_TIMESTAMPS])}[ref{i}]")
        graph.append(
            f"[{i + 1}:v:0]{''.join(p + ',' for p in pick)}scale={width}:{height}:"
            f"flags=bicubic,format=yuv420p,{INDEX_TIMESTAMPS}[dis{i}]"
        )
        log = workdir / f"vmaf-{i}.json"
        logs.append(log)
        graph.append(
            f"[dis{i}][ref{i}]libvmaf=log_fmt=json:log_path={_escape(log)}:"
            f"n_threads={threads}:n_subsample={fed}[o{i}]"
        )
    args += ["-filter_complex", ";".join(graph)]
    for i in range(n):
        args += ["-map", f"[o{i}]", "-f", "null", "-"]
    progress = on_progress
    if on_progress is not None and subsample > 1:  # 2 of every k frames reach the output

        def progress(seconds: float) -> None:
            on_progress(seconds * subsample / 2)

    ffmpeg.run(args, subject=reference, on_progress=progress)
    scores = []
    for log in logs:
        frames = json.loads(log.read_text())["frames"]
        scores.append(pool([f["metrics"]["vmaf"] for f in frames], subsample))
    return scores


def _escape(path: Path) -> str:
    """Escape a path for use as a filter option value."""
    return str(path).replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")


METRICS = ("vmaf", "psnr_y", "psnr_cb", "psnr_cr", "float_ssim", "xpsnr_y", "xpsnr_u", "xpsnr_v")


@dataclass
class FullReference:
    """Per-frame scores and their pooled values (see :func:`pool`) for every metric."""

    reference: str
    distorted: str
    width: int
    height: int
    frames: list[dict[str, float]]
    pooled: dict[str, dict[str, float | int]]
    notes: list[str]

    def as_dict(self) -> dict:
        return {"reference": self.reference, "distorted": self.distorted,
                "width": self.width, "height": self.height, "pooled": self.pooled,
                "notes": self.notes, "frames": self.frames}  # fmt: skip


def _read_xpsnr(path: Path) -> list[dict[str, float]]:
    rows = []
    for line in path.read_text().splitlines():
        if not line.startswith("n:"):
            continue
        parts = line.replace(":", " ").split()
        values = {parts[i + 1].lower(): parts[i + 2] for i in range(len(parts) - 2)
                  if parts[i] == "XPSNR"}  # fmt: skip
        rows.append({f"xpsnr_{k}": float(v) for k, v in values.items()})
    return rows


def full_reference(
    reference: Path,
    distorted: Path,
    *,
    workdir: Path,
    subsample: int = 1,
    threads: int = 2,
    on_progress: Callable[[float], None] | None = None,
    probed: tuple | None = None,
) -> FullReference:
    """VMAF, PSNR (Y, Cb, Cr), SSIM and XPSNR of ``distorted`` against ``reference``, frames
    paired by index, the distorted video scaled to the reference's (even) size, scoring
    stopping at the shorter of the two. PSNR is capped by libvmaf (60 dB at 8 bits), XPSNR
    is infinite for identical frames and pooled over the finite ones. ``probed``: the two
    files' :class:`~reelforge.media.probe.MediaInfo`, when the caller has them already."""
    from reelforge.media.probe import probe

    ref_info, dis_info = probed or (probe(reference), probe(distorted))
    for info, path in ((ref_info, reference), (dis_info, distorted)):
        if not info.video:
            from reelforge.errors import InputError

            raise InputError("has no video stream to score", path=path)
    rv, dv = ref_info.video[0], dis_info.video[0]
    width, height = (
        rv.display_width - rv.display_width % 2,
        rv.display_height - rv.display_height % 2,
    )
    notes = []
    if (dv.display_width, dv.display_height) != (rv.display_width, rv.display_height):
        notes.append(f"distorted {dv.display_width}x{dv.display_height} scaled to {width}x{height}")
    if dv.frames != rv.frames:
        notes.append(f"frame counts differ ({rv.frames} vs {dv.frames}): scored the shorter")
    prep = f"scale={width}:{height}:flags=bicubic,format=yuv420p,{INDEX_TIMESTAMPS}"
    vmaf_log, xpsnr_log = workdir / "quality-vmaf.json", workdir / "quality-xpsnr.txt"
    graph = ";".join([
        f"[0:v:0]{prep},split=2[r0][r1]",
        f"[1:v:0]{prep},split=2[d0][d1]",
        f"[d0][r0]libvmaf=log_fmt=json:log_path={_escape(vmaf_log)}:n_threads={threads}:"
        f"n_subsample={subsample}:shortest=1:feature=name=psnr|name=float_ssim[o0]",
        f"[d1][r1]xpsnr=stats_file={_escape(xpsnr_log)}:shortest=1[o1]",
    ])  # fmt: skip
    ffmpeg.run(["-i", str(reference), "-i", str(distorted), "-filter_complex", graph,
                "-map", "[o0]", "-f", "null", "-", "-map", "[o1]", "-f", "null", "-"],
               subject=distorted, on_progress=on_progress)  # fmt: skip
    frames = []
    for f in json.loads(vmaf_log.read_text())["frames"]:
        m = f["metrics"]
        frames.append({"n": f["frameNum"], **{k: m[k] for k in METRICS if k in m}})
    xpsnr = _read_xpsnr(xpsnr_log)
    for row in frames:
        if row["n"] < len(xpsnr):
            row.update(xpsnr[row["n"]])
    pooled = {}
    for metric in METRICS:
        values = [r[metric] for r in frames if metric in r and math.isfinite(r[metric])]
        if values:
            pooled[metric] = pool(values, subsample).as_dict()
        elif any(metric in r for r in frames):  # every frame identical: infinite
            pooled[metric] = {"mean": None, "identical": True, "frames": len(frames)}
    for row in frames:  # JSON has no infinity: identical frames read null
        row.update({k: None for k, v in row.items() if isinstance(v, float) and math.isinf(v)})
    return FullReference(str(reference), str(distorted), width, height, frames, pooled, notes)
