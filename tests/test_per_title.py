"""Per-title ladders: rungs on the title's own convex hull, the top rung at its target."""

from __future__ import annotations

import itertools
import math

import pytest
from conftest import media, publish_json


@pytest.fixture(scope="module")
def per_title(tmp_path_factory):
    out = tmp_path_factory.mktemp("pt") / "pub"
    src = media("video/tears_of_steel_360p_10s.mp4")
    return publish_json(src, out, "--ladder", "per-title", "--no-thumbnails", "--no-fallback")


def test_rungs_lie_on_the_hull_in_order(per_title):
    analysis = per_title["per_title"]
    rungs = analysis["rungs"]
    assert len(rungs) >= 3
    for lower, upper in itertools.pairwise(rungs):
        assert lower["bitrate_kbps"] < upper["bitrate_kbps"]
        assert lower["width"] * lower["height"] <= upper["width"] * upper["height"]
        assert lower["predicted_vmaf"] < upper["predicted_vmaf"]
        assert 1.4 <= upper["bitrate_kbps"] / lower["bitrate_kbps"] <= 2.0
    samples = analysis["samples"]
    for rung in rungs:
        # Not dominated: no measured encode is cheaper and clearly better.
        better = [s for s in samples if s["kbps"] <= rung["bitrate_kbps"]
                  and s["vmaf"] > rung["predicted_vmaf"] + 0.5]  # fmt: skip
        assert not better, (rung, better)
    hull = analysis["hull"]
    assert all(h in [{k: s[k] for k in h} for s in samples] for h in hull)
    # The hull is concave in log bitrate: slopes fall from one vertex to the next.
    slopes = [(b["vmaf"] - a["vmaf"]) / (math.log(b["kbps"]) - math.log(a["kbps"]))
              for a, b in itertools.pairwise(hull)]  # fmt: skip
    assert all(s1 >= s2 - 1e-6 for s1, s2 in itertools.pairwise(slopes))


def test_top_rung_meets_its_target_within_a_point(per_title):
    top = max(per_title["per_title"]["rungs"], key=lambda r: r["bitrate_kbps"])
    assert abs(top["predicted_vmaf"] - 95) <= 1
    encoded = [r for r in per_title["renditions"] if r["kind"] == "video"]
    best = max(encoded, key=lambda r: r["target_kbps"])
    assert abs(best["vmaf"]["mean"] - 95) <= 1, best["vmaf"]  # measured on the final encode


def test_the_report_keeps_the_analysis_and_its_cost(per_title):
    totals = per_title["totals"]
    assert totals["analysis_seconds"] > 0 and totals["encode_seconds"] > 0
    assert per_title["settings"]["ladder"] == "per-title"
    assert per_title["hull"] and per_title["rate_quality"]
    encoded = sorted(r["target_kbps"] for r in per_title["renditions"] if r["kind"] == "video")
    assert encoded == sorted(r["bitrate_kbps"] for r in per_title["per_title"]["rungs"])
