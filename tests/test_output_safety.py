"""Outputs never destroy inputs, never race each other, and fail in one line naming the output.

Every step (publish, publish --versioned, images, voice, talk, sample) claims its output the
same way (``reelforge/outputs.py``); these tests run the real CLI on real files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import m3u8
import pytest
from conftest import CLI, media, run_cli
from PIL import Image

FAST = ("--preset", "fast", "--no-quality", "--no-thumbnails", "--no-fallback")


def one_line(result: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """Exit ``code`` and exactly one line on stderr (no blank line, no bars), with needles."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def wait_for(folder: Path, marker: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(marker in p.name for p in folder.iterdir()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {marker} in {folder}"
        time.sleep(0.01)


def publish_proc(src: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "publish", str(src), "-o", str(out), *FAST, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A 2 s clip, and two 8 s clips of different sizes (a publish of those takes a while)."""
    folder = tmp_path_factory.mktemp("clips")
    made = {}
    for name, duration, size in (("short", 2, "320x180"), ("a", 8, "640x360"),
                                 ("b", 8, "480x270")):  # fmt: skip
        made[name] = folder / f"{name}.mp4"
        r = run_cli("sample", made[name], "--duration", duration, "--size", size)
        assert r.returncode == 0, r.stderr
    return made


# --- 1. --force never deletes an input -------------------------------------------------


def test_publish_never_writes_over_or_around_its_input(tmp_path, clips):
    v = tmp_path / "v"
    v.mkdir()
    clip = v / "clip.mp4"
    shutil.copy(clips["short"], clip)
    (v / "keep.txt").write_text("mine")
    (tmp_path / "link").symlink_to(v)
    before = snapshot(tmp_path)
    for out, extra in ((v, ["--force"]), (clip, ["--force"]), (tmp_path / "link", ["--force"]),
                       (tmp_path, ["--force"]), (v, ["--versioned"]),
                       (tmp_path / "link" / "clip.mp4", [])):  # fmt: skip
        r = run_cli("publish", clip, "-o", out, *FAST, *extra)
        one_line(r, 2, str(out), str(clip))
    assert snapshot(tmp_path) == before
    # beside the input is fine
    r = run_cli("publish", clip, "-o", v / "out", *FAST, "--force")
    assert r.returncode == 0, r.stderr
    assert (v / "out" / "master.m3u8").is_file() and (v / "keep.txt").read_text() == "mine"
    assert clip.stat().st_size == before["v/clip.mp4"]


def test_images_never_write_over_or_around_their_sources(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(media("faces/hopper_128.jpg"), photos / "hopper.jpg")
    (photos / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    for src, out in ((photos, photos), (photos / "hopper.jpg", photos), (photos, tmp_path),
                     (photos / "hopper.jpg", photos / "hopper.jpg")):  # fmt: skip
        r = run_cli("images", src, "-o", out, "--force")
        one_line(r, 2, str(out), str(src))
    assert snapshot(tmp_path) == before


def test_force_replaces_only_a_previous_output_of_the_same_kind(tmp_path, clips):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    one_line(run_cli("publish", clips["short"], "-o", mine, *FAST, "--force"), 2,
             str(mine), "not a previous publish output", "remove it yourself")  # fmt: skip
    photo = media("faces/hopper_128.jpg")
    one_line(run_cli("images", photo, "-o", mine, "--force"), 2,
             str(mine), "not a previous images output")  # fmt: skip
    assert snapshot(mine) == {"keep.txt": 4}

    stream = tmp_path / "stream"
    assert run_cli("publish", clips["short"], "-o", stream, *FAST).returncode == 0
    # an images output is not a publish output, and the other way round
    one_line(run_cli("images", photo, "-o", stream, "--force"), 2, "not a previous images")
    r = run_cli("publish", clips["b"], "-o", stream, *FAST, "--force")
    assert r.returncode == 0, r.stderr
    assert json.loads((stream / "report.json").read_text())["input"] == str(clips["b"])

    site = tmp_path / "site"
    assert run_cli("images", photo, "-o", site, "--formats", "webp").returncode == 0
    one_line(run_cli("publish", clips["short"], "-o", site, *FAST, "--force"), 2,
             "not a previous publish output")  # fmt: skip
    r = run_cli("images", photo, "-o", site, "--formats", "jpeg", "--force")
    assert r.returncode == 0, r.stderr
    assert {p.suffix for p in (site / "hopper_128").iterdir()} == {".jpg", ".html"}
    assert leftovers(tmp_path) == []


def test_voice_and_talk_never_write_over_an_input(tmp_path, clips):
    ref = tmp_path / "ref.wav"
    shutil.copy(media("speech/LJ001-0002.wav"), ref)
    script = tmp_path / "s.txt"
    script.write_text(f"---\nspeakers:\n  S1: {{reference: {ref}, transcript: Hi.}}\n---\n"
                      "[S1] Hi.\n")  # fmt: skip
    (tmp_path / "alias.wav").symlink_to(ref)
    clip = tmp_path / "clip.mp4"
    shutil.copy(clips["short"], clip)
    face = media("faces/astronaut_eileen_collins.png")
    before = snapshot(tmp_path)
    for out in (script, ref, tmp_path / "alias.wav"):
        r = run_cli("voice", script, "-o", out, "--backend", "espeak", "--no-mos")
        one_line(r, 2, str(out), "is the input")
    one_line(run_cli("talk", "--face", face, "--audio", clip, "-o", clip), 2,
             str(clip), "is the input")  # fmt: skip
    one_line(run_cli("talk", "--video", clip, "--audio", ref, "-o", clip), 2,
             str(clip), "is the input")  # fmt: skip
    assert snapshot(tmp_path) == before


# --- 2. one run per output --------------------------------------------------------------


def _complete_stream(out: Path) -> None:
    master = m3u8.load(str(out / "master.m3u8"))
    playlists = [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]
    assert playlists
    for uri in playlists:
        child = m3u8.load(str(out / uri))
        folder = (out / uri).parent
        assert child.segments
        for seg in child.segments:
            assert (folder / seg.uri).is_file(), seg.uri
        assert (folder / child.segment_map[0].uri).is_file()


@pytest.mark.timing  # both runs must overlap: on busy cores the second can start late
def test_two_publishes_into_one_output_one_wins_whole(tmp_path, clips):
    out = tmp_path / "stream"
    procs = {name: publish_proc(clips[name], out) for name in ("a", "b")}
    results = {name: finish(p) for name, p in procs.items()}
    winners = [n for n, r in results.items() if r.returncode == 0]
    assert len(winners) == 1, {n: (r.returncode, r.stderr) for n, r in results.items()}
    (winner,) = winners
    (loser,) = set(results) - {winner}
    one_line(results[loser], 2, f"another run (PID {procs[winner].pid}) is writing", str(out))
    _complete_stream(out)
    report = json.loads((out / "report.json").read_text())
    assert report["input"] == str(clips[winner])
    assert max(r["width"] for r in report["renditions"]) == (640 if winner == "a" else 480)
    assert leftovers(tmp_path) == []


@pytest.mark.timing  # both runs must overlap: on busy cores the second can start late
def test_two_versioned_publishes_into_one_stream_add_one_version(tmp_path, clips):
    stream = tmp_path / "show"
    procs = {name: publish_proc(clips[name], stream, "--versioned") for name in ("a", "b")}
    results = {name: finish(p) for name, p in procs.items()}
    winners = [n for n, r in results.items() if r.returncode == 0]
    assert len(winners) == 1, {n: (r.returncode, r.stderr) for n, r in results.items()}
    (loser,) = set(results) - set(winners)
    one_line(results[loser], 2, f"another run (PID {procs[winners[0]].pid}) is writing")
    versions = [p for p in stream.iterdir() if p.is_dir()]
    assert len(versions) == 1
    assert json.loads((stream / "current.json").read_text())["version"] == versions[0].name
    assert json.loads((versions[0] / "report.json").read_text())["input"] == str(
        clips[winners[0]])  # fmt: skip
    assert leftovers(tmp_path) == [] and leftovers(stream) == []


def test_a_killed_run_neither_holds_the_output_nor_leaves_litter(tmp_path, clips):
    out = tmp_path / "stream"
    proc = publish_proc(clips["a"], out)
    wait_for(tmp_path, ".stream.partial-", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert leftovers(tmp_path)  # a killed process cannot clean up: the next run does
    r = run_cli("publish", clips["short"], "-o", out, *FAST)
    assert r.returncode == 0, r.stderr
    _complete_stream(out)
    assert leftovers(tmp_path) == []


def test_a_killed_versioned_run_leaves_nothing_the_next_one_keeps(tmp_path, clips):
    stream = tmp_path / "show"
    proc = publish_proc(clips["a"], stream, "--versioned")
    deadline = time.monotonic() + 60
    while not (stream.is_dir() and any(".partial-" in p.name for p in stream.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = run_cli("publish", clips["short"], "-o", stream, "--versioned", *FAST)
    assert r.returncode == 0, r.stderr
    assert leftovers(stream) == [] and leftovers(tmp_path) == []
    assert [p.name for p in stream.iterdir() if p.is_dir()] == [
        json.loads((stream / "current.json").read_text())["version"]]  # fmt: skip


@pytest.mark.parametrize("what", ["empty folder", "someone's folder"])
def test_an_output_that_appears_during_the_run_is_left_alone(tmp_path, clips, what):
    out = tmp_path / "stream"
    proc = publish_proc(clips["a"], out)
    wait_for(tmp_path, ".stream.partial-", proc)
    out.mkdir()
    if what != "empty folder":
        (out / "keep.txt").write_text("mine")
    one_line(finish(proc), 2, str(out), "appeared while this run was working")
    assert snapshot(out) == ({} if what == "empty folder" else {"keep.txt": 4})
    assert leftovers(tmp_path) == []


def test_force_keeps_a_folder_that_stopped_being_a_previous_output(tmp_path, clips):
    out = tmp_path / "stream"
    assert run_cli("publish", clips["short"], "-o", out, *FAST).returncode == 0
    proc = publish_proc(clips["a"], out, "--force")
    wait_for(tmp_path, ".stream.partial-", proc)
    shutil.rmtree(out)
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    one_line(finish(proc), 2, str(out), "no longer a previous publish output")
    assert snapshot(out) == {"keep.txt": 4}
    assert leftovers(tmp_path) == []


# --- 3. environment failures ------------------------------------------------------------


def _voice_script(folder: Path, sentences: int = 1) -> Path:
    script = folder / "s.txt"
    line = "[S1] This is sentence number {} of a longer test script, spoken slowly.\n"
    script.write_text("".join(line.format(i) for i in range(sentences)))
    return script


@pytest.mark.parametrize("step", ["publish", "images", "voice", "talk", "sample"])
@pytest.mark.parametrize("where", ["/proc", "/sys", "under a file"])
def test_an_unwritable_output_is_one_line_and_nothing_is_done(tmp_path, clips, step, where):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    parent = blocker if where == "under a file" else Path(where) / "reelforge-test"
    cache = tmp_path / "cache"
    env = {**os.environ, "REELFORGE_CACHE_DIR": str(cache)}
    out = {"publish": parent / "out", "images": parent / "out", "voice": parent / "out.wav",
           "talk": parent / "out.mp4", "sample": parent / "out.mp4"}[step]  # fmt: skip
    args = {
        "publish": ["publish", clips["short"], "-o", out, *FAST],
        "images": ["images", media("faces/hopper_128.jpg"), "-o", out],
        "voice": ["voice", _voice_script(tmp_path), "-o", out, "--backend", "espeak", "--no-mos"],
        "talk": ["talk", "--face", media("faces/astronaut_eileen_collins.png"),
                 "--audio", media("speech/LJ001-0002.wav"), "-o", out],
        "sample": ["sample", out, "--duration", "1", "--size", "64x64"],
    }[step]  # fmt: skip
    line = one_line(run_cli(*args, env=env, timeout=120), 1, str(out))
    assert ".partial" not in line and ".work" not in line and ".lock" not in line
    assert not cache.exists()  # nothing was synthesised
    assert blocker.read_text() == "a file, not a folder"


@pytest.fixture
def tiny_disk(tmp_path):
    """A 384 KiB tmpfs (needs root and mount(2); skipped, saying so, where either is missing)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk is emulated with a tiny tmpfs, which needs root and mount")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(disk)],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_is_one_line_naming_the_output_and_leaves_nothing(tmp_path, clips,
                                                                      tiny_disk):  # fmt: skip
    out = tiny_disk / "stream"
    one_line(run_cli("publish", clips["a"], "-o", out, *FAST), 1,
             str(out), "No space left on device")  # fmt: skip
    assert list(tiny_disk.iterdir()) == []
    # voice: the whole script does not fit (24-bit 48 kHz wav: about 144 KB/s)
    cache = tmp_path / "cache"
    env = {**os.environ, "REELFORGE_CACHE_DIR": str(cache)}
    wav = tiny_disk / "talk" / "out.wav"
    script = _voice_script(tmp_path, sentences=3)
    line = one_line(run_cli("voice", script, "-o", wav, "--backend", "espeak", "--no-mos",
                            env=env), 1, str(wav), "No space left on device")  # fmt: skip
    assert ".partial" not in line
    assert list(tiny_disk.iterdir()) == []
    # a disk already full is found before any synthesis
    shutil.rmtree(cache)
    filler = tiny_disk / "filler"
    with filler.open("wb", buffering=0) as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 4096)
    one_line(run_cli("voice", script, "-o", wav, "--backend", "espeak", "--no-mos", env=env), 1,
             str(wav), "No space left on device")  # fmt: skip
    assert not cache.exists()
    assert [p.name for p in tiny_disk.iterdir()] == ["filler"]


# --- 4. one line, no blank line before it -------------------------------------------------


def test_publish_errors_are_exactly_one_line(tmp_path, clips):
    one_line(run_cli("publish", tmp_path / "nope.mp4", "-o", tmp_path / "o", *FAST), 2,
             "nope.mp4")  # fmt: skip
    (tmp_path / "o").mkdir()
    one_line(run_cli("publish", clips["short"], "-o", tmp_path / "o", *FAST), 2,
             "already exists")  # fmt: skip
    one_line(run_cli("publish", clips["short"], "-o", tmp_path / "x", "--codecs", "mpeg2"), 2,
             "mpeg2")  # fmt: skip


# --- 5. images: every source read before any encode ---------------------------------------


def _broken(folder: Path, kind: str) -> Path:
    photo = Image.open(media("photos/kodim01.png")).convert("RGB")
    if kind == "bomb":
        from test_image_source import _png_header_only

        path = folder / "z-bomb.png"
        _png_header_only(path, 30000, 30000)
        return path
    path = folder / f"z-bad.{kind}"
    photo.save(path, quality=90) if kind == "jpg" else photo.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("kind", ["jpg", "png", "bomb"])
def test_images_refuse_a_broken_source_before_encoding_any(tmp_path, kind):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(media("photos/kodim03.png"), src / "a-good.png")
    bad = _broken(src, kind)
    watched = tmp_path / "out"
    watched.mkdir()
    proc = subprocess.Popen([*CLI, "images", str(src), "-o", str(watched / "site")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen: set[str] = set()
    while proc.poll() is None:  # an encode takes seconds: its temporary folder would show
        seen |= {p.name for p in watched.iterdir()}
        time.sleep(0.005)
    one_line(finish(proc), 2, str(bad))
    assert seen == set() and list(watched.iterdir()) == []
