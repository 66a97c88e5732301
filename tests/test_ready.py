"""Ready before complete: the stream is in place and plays before the slow extras are done.

Every scenario is real: a real ``reelforge publish`` (in-process through the public
``on_playable`` hook, or the CLI as a subprocess that the test watches and signals), real
media, and, for a failing extra, the real ffmpeg behind a wrapper that fails one command
(the edge of the world: an external binary that breaks)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import imageio_ffmpeg
import m3u8
import pytest
from conftest import CLI, TEST_LADDER, media
from mpegdash.parser import MPEGDASHParser
from processes import descendants as _descendants

from reelforge.errors import InputError
from reelforge.outputs import locked
from reelforge.video.ladder import Rung
from reelforge.video.publish import PublishOptions, publish

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()  # the real binary, whatever REELFORGE_FFMPEG says
LATE = ["poster", "fallback", "sprites", "quality", "rate_quality_plot"]  # in the order run
EXTRAS = ["poster_preview", *LATE]
DEADLINE = 120  # seconds a watched publish may take to reach the moment a test waits for


def _options(**extra) -> PublishOptions:
    return PublishOptions(rungs=[Rung(**r) for r in TEST_LADDER[:2]], preset="fast",
                          segment_duration=2.0, **extra)  # fmt: skip


@pytest.fixture(scope="module")
def clip() -> Path:
    return media("video/bbb_720p_2s_h264.mp4")


@pytest.fixture(scope="module")
def ladder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ladder") / "ladder.json"
    path.write_text(json.dumps({"rungs": TEST_LADDER[:2]}))
    return path


def _args(clip: Path, out: Path, ladder: Path, *extra: str) -> list[str]:
    """``reelforge publish`` of the clip on the two-rung ladder, VMAF and every extra on."""
    return ["publish", str(clip), "-o", str(out), "--ladder", str(ladder), "--preset", "fast",
            "--segment-duration", "2", *extra]  # fmt: skip


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def _plays(root: Path) -> None:
    """The stream at ``root`` (a publish, or a versioned stream's pointers) parses with
    independent readers (m3u8, mpegdash), every file either names exists, and ffmpeg
    decodes the HLS stream, video and audio, to the end."""
    master = m3u8.load(str(root / "master.m3u8"))
    assert master.playlists
    uris = [*(p.uri for p in master.playlists), *(m.uri for m in master.media if m.uri),
            *(p.uri for p in master.iframe_playlists)]  # fmt: skip
    for uri in uris:
        path = root / uri
        playlist = m3u8.load(str(path))
        assert playlist.is_endlist and playlist.segments, uri
        names = [*(m.uri for m in playlist.segment_map), *(s.uri for s in playlist.segments)]
        missing = [n for n in names if not (path.parent / n).is_file()]
        assert not missing, (uri, missing)
    mpd = MPEGDASHParser.parse(str(root / "manifest.mpd"))
    base = root / (mpd.base_urls[0].base_url_value if mpd.base_urls else "")
    representations = [rep for aset in mpd.periods[0].adaptation_sets
                       for rep in aset.representations]  # fmt: skip
    assert {aset.content_type for aset in mpd.periods[0].adaptation_sets} == {"video", "audio"}
    for rep in representations:
        segments = rep.segment_lists[0]
        files = [segments.initializations[0].source_url,
                 *(u.media for u in segments.segment_urls)]  # fmt: skip
        missing = [f for f in files if not (base / f).is_file()]
        assert len(files) > 1 and not missing, (rep.id, missing)
    decoded = subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-i", str(root / "master.m3u8"),
                              "-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert decoded.returncode == 0, decoded.stderr


def _listed_files_exist(out: Path, report: dict) -> None:
    """Every file the report names is in the output, and no temporary is."""
    files = report["files"]
    named = [files["hls"], files["dash"], files["poster_preview"], *files["poster"].values(),
             files["thumbnails_vtt"], *files["sprites"], files["fallback"],
             files["rate_quality_plot"]]  # fmt: skip
    assert all((out / n).is_file() for n in named if n), named
    assert not [p for p in out.rglob(".*")], "a temporary inside the output"


# --- a publish watched from outside -----------------------------------------------------


def _ffmpeg_with(word: str, children: dict[int, str]) -> bool:
    return any("ffmpeg" in cmd and word in cmd for cmd in children.values())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Watched:
    """``reelforge ARGS`` started in a session of its own, for a test to watch and signal."""

    def __init__(self, args: list[str], env: dict | None = None) -> None:
        self.proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True,
                                     env={**os.environ, **(env or {})})  # fmt: skip
        self.children: dict[int, str] = {}

    def wait_for(self, ready: Callable[[dict[int, str]], bool]) -> None:
        """Poll (deadline :data:`DEADLINE`) until ``ready(descendants)`` holds while the run
        is still going; remembers the descendants seen then."""
        deadline = time.monotonic() + DEADLINE
        while True:
            children = _descendants(self.proc.pid)
            if ready(children):
                self.children = children
                return
            assert self.proc.poll() is None, ("ended before the moment came",
                                              self.proc.communicate())  # fmt: skip
            assert time.monotonic() < deadline, "the moment to wait for never came"
            time.sleep(0.02)

    def stop(self, sig: int) -> tuple[int, str, str]:
        """Send ``sig``, then :meth:`finish`."""
        assert self.proc.poll() is None, self.proc.communicate()
        self.proc.send_signal(sig)
        return self.finish()

    def finish(self) -> tuple[int, str, str]:
        """Wait for the run to end; its exit code, stdout and stderr. Then assert that
        nothing it started (of what :meth:`wait_for` saw) is left running."""
        try:
            out, err = self.proc.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        grace = time.monotonic() + 5
        while any(_alive(p) for p in self.children) and time.monotonic() < grace:
            time.sleep(0.02)
        left = {p: c for p, c in self.children.items() if _alive(p)}
        self.kill()
        assert not left, f"left running: {left}"
        with pytest.raises(ProcessLookupError):
            os.killpg(self.proc.pid, 0)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        """Make sure the run is gone (a failed assertion must not leave it working)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in self.children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _warnings(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip() and "━" not in ln]


# --- the tests ----------------------------------------------------------------------------


def test_stream_is_in_place_and_plays_before_the_extras(tmp_path, clip):
    out = tmp_path / "out"
    seen: dict = {}

    def playable(report) -> None:
        seen["report"] = _report(out)
        seen["files"] = sorted(p.name for p in out.iterdir())
        _plays(out)
        with pytest.raises(InputError, match="is writing"), locked(out):  # ours till complete
            pass

    report = publish(clip, out, _options(), on_playable=playable)
    first = seen["report"]
    assert first["state"] == "playable"
    assert first["files"]["hls"] == "master.m3u8" and first["files"]["poster_preview"]
    assert first["extras"]["poster_preview"]["state"] == "done"
    pending = {n for n, e in first["extras"].items() if e["state"] == "pending"}
    assert pending == set(LATE)
    assert "thumbnails.vtt" not in seen["files"] and not first["files"]["fallback"]
    assert first["totals"]["playable_seconds"] and first["totals"]["complete_seconds"] is None
    # the last report: everything there, and both times
    last = _report(out)
    assert last == json.loads(report.model_dump_json())
    assert last["state"] == "complete"
    assert {e["state"] for e in last["extras"].values()} == {"done"}
    t = last["totals"]
    assert 0 < t["playable_seconds"] < t["complete_seconds"] == t["wall_seconds"]
    assert t["stage_seconds"]["encode"] > 0 and t["stage_seconds"]["quality"] > 0
    assert (out / last["files"]["thumbnails_vtt"]).is_file()
    assert all((out / n).is_file() for n in last["files"]["poster"].values())
    assert all(r["vmaf"]["mean"] > 0 for r in last["renditions"] if r["kind"] == "video")
    _listed_files_exist(out, last)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporaries, lock released


def _failing_ffmpeg(folder: Path, word: str, message: str) -> Path:
    """An ffmpeg that is the real one, except that a command whose arguments hold ``word``
    runs for real (writing what it writes) and then fails, saying ``message``. Every
    command it is given is appended to ``calls.log`` beside it."""
    folder.mkdir()
    wrapper = folder / "ffmpeg"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{folder / "calls.log"}"\n'
        f'case "$*" in *{word}*) "{FFMPEG}" "$@"; echo "{message}" >&2; exit 1 ;; esac\n'
        f'exec "{FFMPEG}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper


def test_a_failing_extra_leaves_a_valid_stream_and_says_so(tmp_path, clip, ladder):
    """The MP4 fallback's ffmpeg fails (after writing its file): the publish exits 0, the
    stream plays, the report says incomplete and why, and the extras after it are made."""
    message = "fallback.mp4: Input/output error writing the moov box"
    wrapper = _failing_ffmpeg(tmp_path / "bin", "fallback.partial", message)
    out = tmp_path / "out"
    run = Watched([*_args(clip, out, ladder), "--json"], env={"REELFORGE_FFMPEG": str(wrapper)})
    code, stdout, err = run.finish()
    calls = (tmp_path / "bin" / "calls.log").read_text().splitlines()
    assert any("fallback.partial" in c for c in calls), "REELFORGE_FFMPEG was not used"
    assert code == 0, err  # a failed extra is a warning, not a failed publish
    lines = _warnings(err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("warning: fallback not made (") and message in lines[0]
    assert "the stream plays without it" in lines[0]
    report = _report(out)
    assert json.loads(stdout) == report
    assert report["state"] == "incomplete"
    fallback = report["extras"]["fallback"]
    assert fallback["state"] == "failed" and "\n" not in fallback["reason"]
    assert "ffmpeg failed (exit 1)" in fallback["reason"] and message in fallback["reason"]
    assert str(tmp_path) not in fallback["reason"]  # no temporary that is gone by now
    assert {n: e["state"] for n, e in report["extras"].items()} == {
        **dict.fromkeys(EXTRAS, "done"),
        "fallback": "failed",
    }  # the others went on
    assert report["files"]["fallback"] is None and not list(out.glob("*.mp4"))
    assert report["totals"]["complete_seconds"] is not None  # it ended; nothing is pending
    _listed_files_exist(out, report)
    _plays(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "out"]


@pytest.mark.parametrize(
    ("sig", "moment"),
    [(signal.SIGINT, "scoring"), (signal.SIGTERM, "scoring"), (signal.SIGINT, "placed")],
    ids=["SIGINT-while-scoring", "SIGTERM-while-scoring", "SIGINT-once-placed"],
)
def test_an_interrupt_after_playable_keeps_the_stream(tmp_path, clip, ladder, sig, moment):
    """Stopped during the extras (while VMAF runs, or as soon as the stream is in place):
    the stream stays and plays, its report says which extras were left out, exit 130, and
    nothing else is left beside it or running."""
    out = tmp_path / "out"
    run = Watched(_args(clip, out, ladder))
    try:
        if moment == "scoring":  # an ffmpeg scoring VMAF: the stream is placed by now
            run.wait_for(lambda children: _ffmpeg_with("libvmaf", children))
        else:
            run.wait_for(lambda _children: (out / "report.json").is_file())
        seen = _report(out)
        code, _, err = run.stop(sig)
    finally:
        run.kill()
    assert code == 130, err
    assert "interrupted after the stream was published" in err and "Traceback" not in err
    assert seen["state"] == "playable" and seen["extras"]["quality"]["state"] == "pending"
    report = _report(out)
    assert report["state"] == "incomplete" and report["totals"]["complete_seconds"] is None
    states = [report["extras"][n]["state"] for n in EXTRAS]
    cut = states.index("interrupted")  # the extras run in order: done ones, then the rest
    assert states == ["done"] * cut + ["interrupted"] * (len(EXTRAS) - cut), states
    assert cut >= 1  # the poster preview is part of the playable stream
    if moment == "scoring":
        assert cut == EXTRAS.index("quality")
    assert all(report["extras"][n]["reason"] == "interrupted" for n in EXTRAS[cut:])
    assert not any(r["vmaf"] for r in report["renditions"])
    _listed_files_exist(out, report)
    _plays(out)
    assert list(tmp_path.iterdir()) == [out]  # no temporaries, no work folder, no lock


def test_an_interrupt_before_playable_leaves_nothing(tmp_path, clip, ladder):
    """Stopped while encoding (the slow preset, so the encode outlasts the poll): nothing
    at the output, nothing beside it, nothing running."""
    out = tmp_path / "out"
    run = Watched(_args(clip, out, ladder, "--preset", "best"))
    try:
        run.wait_for(lambda children: _ffmpeg_with("libx264", children))
        assert not out.exists()
        code, _, err = run.stop(signal.SIGINT)
    finally:
        run.kill()
    assert code == 130, err
    assert "partial output removed" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


def test_a_versioned_stream_switches_when_the_version_is_playable(tmp_path, clip, ladder):
    """A version interrupted while its VMAF runs is already what the stream points at (the
    switch came when it was playable, not when complete); the next version, published to
    the end, takes over, and its pointer was written before any of its extras."""
    stream = tmp_path / "show"
    first = Watched([*_args(clip, stream, ladder), "--versioned"])
    try:
        first.wait_for(lambda children: _ffmpeg_with("libvmaf", children))
        code, _, err = first.stop(signal.SIGINT)
    finally:
        first.kill()
    assert code == 130, err
    pointed = json.loads((stream / "current.json").read_text())
    v1 = pointed["version"]
    report = _report(stream / v1)
    assert report["state"] == "incomplete" and report["extras"]["quality"]["state"] == "interrupted"
    _plays(stream)  # the pointers play the interrupted version
    assert [h["version"] for h in pointed["history"]] == [v1]

    second = Watched([*_args(clip, stream, ladder), "--versioned", "--json"])
    code, stdout, err = second.finish()
    assert code == 0, err
    v2 = json.loads(stdout)["version"]
    current = json.loads((stream / "current.json").read_text())
    assert v2 != v1 and current["version"] == v2
    assert [h["version"] for h in current["history"]] == [v1, v2]
    assert current["history"][0]["superseded_at"] == current["switched_at"]
    version = stream / v2
    report = _report(version)
    assert report["state"] == "complete"
    t = report["totals"]
    assert 0 < t["playable_seconds"] < t["complete_seconds"]
    # the order on disk: the version's stream, then the pointers, then every late extra
    switched = _mtime(stream / "current.json")
    assert _mtime(version / "master.m3u8") <= _mtime(stream / "master.m3u8") <= switched
    files = report["files"]
    extras = [*files["poster"].values(), files["fallback"], files["thumbnails_vtt"],
              files["rate_quality_plot"]]  # fmt: skip
    assert all(switched < _mtime(version / n) for n in extras), "an extra before the switch"
    assert switched < _mtime(version / "report.json")
    assert current["switched_at"] * 1e9 < _mtime(version / files["rate_quality_plot"])
    master = (stream / "master.m3u8").read_text()
    assert f'URI="{v2}/' in master and v1 not in master
    _plays(stream)
    assert sorted(p.name for p in stream.iterdir()) == sorted(
        ["current.json", "manifest.mpd", "master.m3u8", v1, v2]
    )
    assert [p.name for p in tmp_path.iterdir()] == ["show"]
