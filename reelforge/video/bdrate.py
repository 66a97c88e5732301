"""Bjontegaard delta rate between two rate-quality curves, and convex hulls of ladders.

Contract:

- :func:`bd_rate` is the average bitrate difference, in percent, of curve ``a`` against
  curve ``b`` at equal quality: negative when ``a`` needs fewer bits. Both curves are log
  bitrate as a function of quality, interpolated piecewise-cubically (PCHIP, as in the
  usual BD-rate tools since the 2017 JVET update) and integrated over the quality range the
  two curves share. Only each curve's efficient points count (a point that a cheaper point
  matches or beats in quality is dropped). ``None`` when the curves do not overlap or a
  curve has fewer than two points.
- :func:`upper_hull` is the upper convex hull of (log bitrate, quality) points: the
  points no mix of two other points beats.
- :func:`compare_reports` applies :func:`bd_rate` to two publish reports, per codec they
  share and overall (each report's best renditions across all its codecs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.interpolate import PchipInterpolator


@dataclass(frozen=True)
class Point:
    kbps: float
    quality: float
    label: str = ""


def efficient(points: list[Point]) -> list[Point]:
    """Points sorted by bitrate, each better in quality than every cheaper one."""
    out: list[Point] = []
    for p in sorted(points, key=lambda p: (p.kbps, -p.quality)):
        if p.kbps > 0 and (not out or p.quality > out[-1].quality):
            out.append(p)
    return out


def upper_hull(points: list[Point]) -> list[Point]:
    """The upper convex hull in (log bitrate, quality), from the cheapest point up."""
    pts = efficient(points)
    hull: list[Point] = []
    for p in pts:
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            xa, xb, xp = math.log(a.kbps), math.log(b.kbps), math.log(p.kbps)
            # b is under the chord from a to p: drop it (points on the chord stay).
            if (b.quality - a.quality) * (xp - xa) < (p.quality - a.quality) * (xb - xa) - 1e-9:
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def bd_rate(a: list[Point], b: list[Point]) -> float | None:
    """Percent bitrate of ``a`` against ``b`` at equal quality (see the module docstring)."""
    a, b = efficient(a), efficient(b)
    if len(a) < 2 or len(b) < 2:
        return None
    lo = max(a[0].quality, b[0].quality)
    hi = min(a[-1].quality, b[-1].quality)
    if hi <= lo:
        return None
    ra = PchipInterpolator([p.quality for p in a], [math.log(p.kbps) for p in a])
    rb = PchipInterpolator([p.quality for p in b], [math.log(p.kbps) for p in b])
    mean_diff = float((ra.integrate(lo, hi) - rb.integrate(lo, hi)) / (hi - lo))
    return (math.exp(mean_diff) - 1.0) * 100.0


def report_points(report: dict, codec: str | None = None) -> list[Point]:
    """(average kb/s, VMAF mean) of a publish report's video renditions (one codec or all)."""
    points = []
    for r in report.get("renditions", []):
        if r.get("kind") != "video" or not r.get("vmaf"):
            continue
        name = r["name"]
        if codec is not None and name.split("-")[0] != codec:
            continue
        points.append(Point(float(r["average_kbps"]), float(r["vmaf"]["mean"]), name))
    return points


def compare_reports(a: dict, b: dict, codec_a: str | None = None,
                    codec_b: str | None = None) -> dict:  # fmt: skip
    """BD-rate (VMAF) of report ``a`` against report ``b``: per shared codec and overall;
    or, given ``codec_a``/``codec_b``, of those codecs' ladders alone (they may come from
    the same report: HEVC against H.264, say)."""
    if codec_a or codec_b:
        label = f"{codec_a or 'all'} vs {codec_b or 'all'}"
        return {label: _row(report_points(a, codec_a), report_points(b, codec_b))}
    codecs_a = {r["name"].split("-")[0] for r in a.get("renditions", []) if r["kind"] == "video"}
    codecs_b = {r["name"].split("-")[0] for r in b.get("renditions", []) if r["kind"] == "video"}
    rows = {}
    for codec in sorted(codecs_a & codecs_b):
        rows[codec] = _row(report_points(a, codec), report_points(b, codec))
    rows["overall"] = _row(report_points(a), report_points(b))
    return rows


def _row(a: list[Point], b: list[Point]) -> dict:
    value = bd_rate(a, b)
    ea, eb = efficient(a), efficient(b)
    overlap = (max(ea[0].quality, eb[0].quality), min(ea[-1].quality, eb[-1].quality)) if (
        ea and eb) else None  # fmt: skip
    return {
        "bd_rate_percent": round(value, 2) if value is not None else None,
        "points_a": len(a),
        "points_b": len(b),
        "vmaf_range": [round(overlap[0], 2), round(overlap[1], 2)] if overlap else None,
    }
