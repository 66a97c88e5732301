"""Full-reference video quality with libvmaf through ffmpeg.

Contract: frames are paired by index, not by timestamp (timestamps are rewritten to
``N/FRAME_RATE`` on both sides, since container changes round them differently), and the
distorted video is scaled to the reference's size before scoring. One ffmpeg run decodes
the reference once for any number of distorted videos.
"""

from __future__ import annotations

import json
import math
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


def vmaf_many(
    reference: Path,
    distorted: list[Distorted],
    *,
    width: int,
    height: int,
    workdir: Path,
    reference_filters: list[str] | None = None,
    subsample: int = 1,
    threads: int = 2,
    on_progress: Callable[[float], None] | None = None,
) -> list[VmafScore]:
    """VMAF of each distorted video against ``reference`` at ``width`` x ``height``."""
    n = len(distorted)
    if n == 0:
        return []
    pre = [*(reference_filters or []), f"scale={width}:{height}:flags=bicubic", "format=yuv420p"]
    graph = [f"[0:v:0]{','.join(pre)},split={n}" + "".join(f"[r{i}]" for i in range(n))]
    args: list[str] = ["-i", str(reference)]
    logs: list[Path] = []
    for i, d in enumerate(distorted):
        args += ["-i", str(d.path)]
        ref_chain = ([d.reference_filter] if d.reference_filter else []) + [INDEX_TIMESTAMPS]
        graph.append(f"[r{i}]{','.join(ref_chain)}[ref{i}]")
        graph.append(
            f"[{i + 1}:v:0]scale={width}:{height}:flags=bicubic,format=yuv420p,"
            f"{INDEX_TIMESTAMPS}[dis{i}]"
        )
        log = workdir / f"vmaf-{i}.json"
        logs.append(log)
        graph.append(
            f"[dis{i}][ref{i}]libvmaf=log_fmt=json:log_path={_escape(log)}:"
            f"n_threads={threads}:n_subsample={subsample}[o{i}]"
        )
    args += ["-filter_complex", ";".join(graph)]
    for i in range(n):
        args += ["-map", f"[o{i}]", "-f", "null", "-"]
    ffmpeg.run(args, subject=reference, on_progress=on_progress)
    scores = []
    for log in logs:
        frames = json.loads(log.read_text())["frames"]
        scores.append(pool([f["metrics"]["vmaf"] for f in frames], subsample))
    return scores


def _escape(path: Path) -> str:
    """Escape a path for use as a filter option value."""
    return str(path).replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")
