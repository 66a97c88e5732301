"""`reelforge quality` and `reelforge compare`, and the rate-quality plot of a report."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest
from conftest import assert_refused, media, run_cli, run_ffmpeg

CLIP = "video/sintel_480p_2s_h264.mp4"


def _quality(ref, dist) -> dict:
    result = run_cli("quality", ref, dist, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_clip_against_itself_and_a_near_lossless_copy(tmp_path):
    ref = media(CLIP)
    same = _quality(ref, ref)["pooled"]
    assert same["vmaf"]["mean"] >= 99
    assert same["psnr_y"]["mean"] >= 59.9  # capped by libvmaf at 60 dB
    assert same["float_ssim"]["mean"] > 0.999
    assert same["xpsnr_y"].get("identical") is True  # infinite: every frame identical
    # The timestamp trap: a container change must not break the pairing of frames. (This
    # clip scores 99.34 against itself; CRF 8 reaches 98.9 on it, CRF 4 99.1.)
    copy = tmp_path / "near-lossless.mkv"
    run_ffmpeg("-i", ref, "-c:v", "libx264", "-crf", "4", "-preset", "medium", copy)
    near = _quality(ref, copy)
    assert near["pooled"]["vmaf"]["mean"] >= 99 and len(near["frames"]) == 48


def test_a_heavily_compressed_copy_scores_clearly_lower(tmp_path):
    ref = media(CLIP)
    bad = tmp_path / "bad.mp4"
    run_ffmpeg("-i", ref, "-vf", "scale=320:-2", "-c:v", "libx264", "-crf", "45", bad)
    result = _quality(ref, bad)
    pooled = result["pooled"]
    assert pooled["vmaf"]["mean"] < 50 and pooled["psnr_y"]["mean"] < 32
    assert pooled["float_ssim"]["mean"] < 0.95 and pooled["xpsnr_y"]["mean"] < 30
    p = pooled["vmaf"]
    assert p["min"] <= p["p5"] <= p["harmonic_mean"] <= p["mean"]
    assert (result["width"], result["height"]) == (854, 480)  # scored at the reference's size
    assert any("scaled" in n for n in result["notes"])


def _report(points: list[tuple[str, float, float]]) -> dict:
    return {"renditions": [
        {"name": f"{codec}-r{i}-{kbps:.0f}k", "kind": "video", "average_kbps": kbps,
         "vmaf": {"mean": vmaf}} for i, (codec, kbps, vmaf) in enumerate(points)]}  # fmt: skip


def test_compare_bd_rate_on_synthetic_curves(tmp_path):
    rates = [145, 365, 730, 1100, 2000, 3000, 4500]

    def quality(kbps):  # a typical concave rate-quality curve
        return 100 - 60 * math.exp(-kbps / 900)

    base = [("h264", r, quality(r)) for r in rates]
    doubled = [("h264", 2 * r, quality(r)) for r in rates]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_report(base)))
    b.write_text(json.dumps(_report(doubled)))
    for first, second, expected in ((a, a, 0.0), (a, b, -50.0), (b, a, 100.0)):
        result = run_cli("compare", first, second, "--json")
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        assert rows["h264"]["bd_rate_percent"] == pytest.approx(expected, abs=1.0)
        assert rows["overall"]["bd_rate_percent"] == pytest.approx(expected, abs=1.0)


def test_compare_codecs_within_one_report(tmp_path):
    rates = [200, 500, 1000, 2000]
    points = [("h264", r, 50 + 10 * math.log2(r / 200)) for r in rates]
    points += [("av1", 0.6 * r, 50 + 10 * math.log2(r / 200)) for r in rates]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_report(points)))
    result = run_cli("compare", path, path, "--codec-a", "av1", "--codec-b", "h264", "--json")
    row = json.loads(result.stdout)["av1 vs h264"]
    assert row["bd_rate_percent"] == pytest.approx(-40.0, abs=0.5)


def test_compare_refuses_what_is_not_a_report(tmp_path):
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert_refused(run_cli("compare", junk, junk), str(junk), "not a JSON report")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    assert_refused(run_cli("compare", other, other), str(other), "not a publish report")


def test_publish_report_has_rate_quality_points_and_a_plot(tmp_path):
    out = tmp_path / "pub"
    ladder = tmp_path / "ladder.json"
    ladder.write_text(json.dumps([{"width": 416, "height": 234, "bitrate_kbps": 200},
                                  {"width": 854, "height": 480, "bitrate_kbps": 900}]))  # fmt: skip
    result = run_cli("publish", media(CLIP), "-o", out, "--preset", "fast", "--ladder", ladder,
                     "--codecs", "h264,hevc", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    points = report["rate_quality"]
    assert sorted(p["codec"] for p in points) == ["h264", "h264", "hevc", "hevc"]
    for p in points:
        rendition = next(r for r in report["renditions"] if r["name"] == p["name"])
        assert p["kbps"] == pytest.approx(rendition["average_kbps"], rel=0.01)
        assert p["vmaf"] == rendition["vmaf"]["mean"]
    svg = ET.parse(out / report["files"]["rate_quality_plot"]).getroot()
    assert svg.tag.endswith("svg")
    text = ET.tostring(svg, encoding="unicode")
    assert "h264" in text and "hevc" in text and "VMAF" in text


def test_quality_refuses_what_has_no_picture(tmp_path):
    audio = media("speech/LJ001-0002.wav")
    assert_refused(run_cli("quality", audio, media(CLIP)), str(audio), "no video stream")
    assert_refused(run_cli("quality", media(CLIP), audio), str(audio), "no video stream")
    missing = tmp_path / "missing.mp4"
    assert_refused(run_cli("quality", media(CLIP), missing), str(missing), "no such file")
    assert_refused(run_cli("quality", media(CLIP), media(CLIP), "--subsample", "0"),
                   "--subsample")  # fmt: skip


def test_subsampled_vmaf_is_close_to_every_frame_and_frame_rate_aware(tmp_path):
    """Publish's subsampled scoring (every k-th frame, each with its two neighbours for the
    motion feature; k chosen on the rendition with the fewest frames) against scoring every
    frame, on a 10 s film clip at two rates, one of them at half the frame rate (the
    reference then goes through the same framestep)."""
    from pathlib import Path

    from reelforge.media.quality import Distorted, choose_subsample, vmaf_many

    assert choose_subsample(48) == 1 and choose_subsample(116) == 5
    assert choose_subsample(240) == 7 and choose_subsample(10_000) == 7
    ref = Path(media("video/tears_of_steel_360p_10s.mp4"))
    low, half = tmp_path / "low.mp4", tmp_path / "half.mp4"
    run_ffmpeg("-i", ref, "-c:v", "libx264", "-b:v", "150k", "-an", low)
    run_ffmpeg("-i", ref, "-vf", "framestep=2", "-c:v", "libx264", "-b:v", "300k", "-an", half)
    ds = [Distorted(low), Distorted(half, "framestep=2")]
    kw = {"width": 640, "height": 360, "workdir": tmp_path}
    full = vmaf_many(ref, ds, subsample=1, **kw)
    step = choose_subsample(120)  # as publish chooses: on the rendition with fewest frames
    sub = vmaf_many(ref, ds, subsample=step, **kw)
    assert [s.frames for s in full] == [240, 120]
    assert [s.frames for s in sub] == [48, 24] and sub[0].subsample == 5
    for a, b in zip(full, sub, strict=True):
        assert abs(a.mean - b.mean) <= 0.5, (a.mean, b.mean)
