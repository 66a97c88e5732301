"""Bad input: one line naming the file and the problem, exit 2, nothing written."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CLI, assert_refused, media, run_cli, run_ffmpeg


def _nothing_written(parent: Path, before: set[str]) -> None:
    assert {p.name for p in parent.iterdir()} == before


def _publish(src: Path, out: Path, *extra: str):
    return run_cli("publish", src, "-o", out, "--preset", "fast", *extra)


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    text = tmp / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    empty = tmp / "empty.mp4"
    empty.touch()
    half = tmp / "half.mp4"
    whole = media("video/obama_weekly_answers.mp4").read_bytes()
    half.write_bytes(whole[: len(whole) // 2])
    subs = tmp / "subs.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    no_av = tmp / "subtitles-only.mkv"
    run_ffmpeg("-i", subs, "-c:s", "srt", no_av)
    subs.unlink()
    return {
        "missing": (tmp / "nope.mp4", "no such file"),
        "directory": (tmp / "adir", "is a directory"),
        "text": (text, "not a media file"),
        "truncated": (half, "truncated"),
        "empty": (empty, "is empty"),
        "no streams": (no_av, "has no video or audio stream"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "directory", "text", "truncated", "empty", "no streams"]
)
def test_bad_inputs_are_refused_cleanly(tmp_path, case):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "adir").mkdir()
    path, reason = _bad_files(inputs)[case]
    before_in = {p.name for p in inputs.iterdir()}
    sizes = {p.name: p.stat().st_size for p in inputs.iterdir() if p.is_file()}
    outdir = tmp_path / "out"
    outdir.mkdir()
    result = _publish(path, outdir / "stream")
    assert_refused(result, str(path), reason)
    _nothing_written(outdir, set())
    assert {p.name for p in inputs.iterdir()} == before_in
    assert sizes == {p.name: p.stat().st_size for p in inputs.iterdir() if p.is_file()}


def test_probe_refuses_the_same_way(tmp_path):
    path = tmp_path / "empty.mov"
    path.touch()
    assert_refused(run_cli("probe", path), str(path), "is empty")


def test_existing_output_is_refused_without_force(tmp_path):
    src = media("video/bbb_720p_1s_vp8.webm")
    out = tmp_path / "stream"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_refused(_publish(src, out), str(out), "already exists", "--force")
    # --force replaces a previous publish (or an empty folder), never someone's folder
    assert_refused(_publish(src, out, "--force", "--no-quality"), str(out),
                   "not a previous publish output")  # fmt: skip
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (out / "keep.txt").unlink()
    for _ in range(2):
        result = _publish(src, out, "--force", "--no-quality")
        assert result.returncode == 0, result.stderr
    assert (out / "master.m3u8").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stream"]


def test_bad_options_exit_2(tmp_path):
    src = media("video/bbb_720p_1s_vp8.webm")
    assert_refused(_publish(src, tmp_path / "o", "--segment-duration", "0.2"), "segment-duration")
    ladder = tmp_path / "ladder.json"
    ladder.write_text('[{"width": 640, "height": 360}]')
    assert_refused(_publish(src, tmp_path / "o", "--ladder", ladder), str(ladder), "bitrate_kbps")
    assert_refused(_publish(src, tmp_path / "o", "--start-segments", "1,x"),
                   "--start-segments", "'x' is not a number")  # fmt: skip
    # each opening segment must fit the keyframe interval (2 s for 4 s segments)
    assert_refused(_publish(src, tmp_path / "o", "--start-segments", "1,3"),
                   "--start-segments", "0.25 to 2 s", "not 3")  # fmt: skip
    assert_refused(_publish(src, tmp_path / "o", "--start-segments", "0.1"), "not 0.1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ladder.json"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_publish_leaves_nothing(tmp_path, talk_source, sig):
    out = tmp_path / "stream"
    proc = subprocess.Popen(
        [*CLI, "publish", str(talk_source), "-o", str(out), "--preset", "best"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(".work-" in p.name for p in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the encode
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert list(tmp_path.iterdir()) == []


def test_errors_carry_a_code_an_option_and_a_status():
    from reelforge.errors import InputError, OutputError
    from reelforge.pipeline.jobs import UnknownJobError

    err = InputError("--preset must be fast, balanced or best, not 'x'")
    assert (err.code, err.option, err.http_status, err.exit_code) == ("input", "--preset", 422, 2)
    named = InputError("port busy", option="--port", code="port-in-use")
    assert named.as_dict() == {"code": "port-in-use", "message": "port busy", "path": None,
                               "option": "--port"}  # fmt: skip
    assert OutputError("cannot write", path="out").as_dict()["path"] == "out"
    assert UnknownJobError("abc").http_status == 404


def test_a_broken_file_quoted_in_an_error_stays_one_line(tmp_path):
    """A truncated MP4 whose box type holds control bytes (a newline among them): the
    error quotes them escaped, on one line."""
    import struct

    from conftest import assert_refused, run_cli

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(struct.pack(">I4s", 24, b"ftyp") + b"isom" + b"\0" * 12
                    + struct.pack(">I4s", 1 << 30, b"\xe5\n\x1e\xbd") + b"\0" * 64)  # fmt: skip
    result = run_cli("publish", bad, "-o", tmp_path / "out")
    assert_refused(result, "broken.mp4")
    assert not (tmp_path / "out").exists()
