"""`reelforge make`: a two-speaker story with a footage scene, made end to end with the
offline voices and the viseme animator, then remade unchanged, edited, killed and broken."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import av
import m3u8
import pytest
from conftest import CLI, ROOT, assert_refused, media, run_cli
from streams import keyframe_times, read_media_playlist, single_segment

LINES = {  # about ten seconds each: the sync meter needs that much speech to be sure
    "S1": "The light on this rock has not failed once in forty years, and it will not fail "
    "tonight while I am still here to keep it burning. Go and check the lamp room for me.",
    "S2": "(laughs) Then tonight will not be the first time, old man. The storm is already "
    "turning north, the harbour lights are coming on one by one, and the boats are all in.",
    "S1b": "Go and tie the boat down properly, and bring the spare lamp up from the cellar "
    "before the rain reaches the island. We will sit up together and watch the sea come in.",
}
SHORT_LINES = {  # a second or two each: for checks that need the steps, not the meter
    "S1": "The light has not failed in forty years.",
    "S2": "(laughs) Then tonight is no different.",
    "S1b": "Go and tie the boat down.",
}
NARRATION = "Out there, the sea keeps its own time."


def write_story(folder: Path, s1_line: str = LINES["S1b"], lines: dict = LINES) -> Path:
    """The two-speaker story in ``folder``: a dialogue scene (``lines`` S1 and S2), the
    footage scene with narration, and S1 alone saying ``s1_line``."""
    (folder / "scenes").mkdir(parents=True, exist_ok=True)
    (folder / "scenes" / "01.txt").write_text(
        f"[S1] {lines['S1']}\n[S2] {lines['S2']}\n", encoding="utf-8")  # fmt: skip
    (folder / "scenes" / "02.txt").write_text(f"[S2] {NARRATION}\n", encoding="utf-8")
    (folder / "scenes" / "03.txt").write_text(f"[S1] {s1_line}\n", encoding="utf-8")
    story = folder / "story.yaml"
    story.write_text(f"""\
title: The Lighthouse
size: 640x360
cast:
  S1: {{name: Keeper, face: {media("faces/astronaut_eileen_collins.png")},
       voice: {{backend: piper}}, talk: {{motion: false}}}}
  S2: {{name: Sailor, face: {media("faces/kodim04.png")},
       voice: {{backend: espeak, voice: en-us+f3}}}}
scenes:
  - script: scenes/01.txt
  - video: {media("video/bbb_720p_2s_h264.mp4")}
    narration: scenes/02.txt
  - script: scenes/03.txt
publish:
  preset: fast
  quality: false
  thumbnails: false
  fallback: false
  rungs:
    - {{width: 416, height: 234, bitrate_kbps: 200}}
    - {{width: 640, height: 360, bitrate_kbps: 500}}
output: out/lighthouse
""", encoding="utf-8")  # fmt: skip
    return story


def env_for(state: Path) -> dict:
    return {**os.environ, "REELFORGE_STATE": str(state),
            "REELFORGE_CACHE_DIR": str(state / "voice")}  # fmt: skip


def make_json(story: Path, state: Path, *extra: str) -> tuple[dict, float]:
    t0 = time.monotonic()
    result = run_cli("make", story, "--json", *extra, env=env_for(state), timeout=900)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return lines[-1], time.monotonic() - t0


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("story")
    story = write_story(folder)
    state = tmp_path_factory.mktemp("state")
    report, seconds = make_json(story, state)
    return story, state, report, seconds


def statuses(report: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for step in report["steps"]:
        out.setdefault(step["status"], []).append(step["step"])
    return out


def check_stream(stream: Path, tmp: Path) -> float:
    """The publish checks: parsers read it, every segment starts with a keyframe; returns
    the video duration of its first rung."""
    import mpegdash.parser

    master = m3u8.load(str(stream / "master.m3u8"))
    assert master.is_variant and len(master.playlists) == 2
    mpd = mpegdash.parser.MPEGDASHParser.parse(str(stream / "manifest.mpd"))
    assert mpd.periods[0].adaptation_sets
    durations = []
    for variant in master.playlists:
        pl = read_media_playlist(stream / variant.uri)
        for i in range(len(pl.segments)):
            seg = single_segment(pl, i, tmp / f"seg{i}.mp4")
            times = keyframe_times(seg)
            assert times, (variant.uri, i)
            with av.open(str(seg)) as c:
                first = next(c.demux(video=0))
                assert first.is_keyframe, (variant.uri, i)
        durations.append(pl.duration)
    assert max(durations) - min(durations) < 0.05
    return durations[0]


def test_story_is_made_into_a_stream(made, tmp_path):
    story, state, report, _ = made
    out = story.parent / "out" / "lighthouse"
    assert Path(report["output"]).resolve() == out.resolve()
    duration = check_stream(out, tmp_path)
    assert (out / "make.json").is_file()
    done = statuses(report)
    assert sorted(done) == ["done"]
    names = [s["step"] for s in report["steps"]]
    # 3 dialogue turns and 1 narration turn voiced; 3 talking shots; one program; one stream
    assert names.count("voice-turn") == 4 and names.count("talk-shot") == 3
    assert names.count("assemble") == 1 and names.count("publish-stream") == 1
    # the parts add up to the whole within a frame
    from reelforge.pipeline.cache import StepCache

    cache = StepCache(state / "steps")
    assembled = next(s for s in report["steps"] if s["step"] == "assemble")
    program = cache.lookup(assembled["key"]).report
    shots = [cache.lookup(s["key"]).report for s in report["steps"] if s["step"] == "talk-shot"]
    footage = program["pieces"][2][1] - program["pieces"][2][0]
    parts = sum(s["frames"] / s["fps"] for s in shots) + footage
    assert abs(parts - program["duration"]) <= 1 / 25 + 1e-6
    assert abs(duration - program["duration"]) <= 1 / 25 + 0.01
    # each talking shot is in sync, as the meter reads it
    for shot in shots:
        sync = shot["sync"]
        assert sync["determined"] and abs(sync["offset_ms"]) <= 40, sync


def test_subtitles_have_one_cue_per_turn(made):
    story, _, _, _ = made
    out = story.parent / "out" / "lighthouse"
    vtts = sorted(out.rglob("*.vtt"))
    assert vtts, list(out.iterdir())
    text = "\n".join(p.read_text() for p in vtts if "thumb" not in p.name)
    assert "<v Keeper>" in text and "<v Sailor>" in text
    assert "(laughs)" not in text
    cues = [line for line in text.splitlines() if "-->" in line]
    assert len(set(cues)) == 4  # three dialogue turns and the narration


def test_unchanged_rerun_is_all_cached(made):
    story, state, first, seconds = made
    again, took = make_json(story, state)
    assert sorted(statuses(again)) == ["cached"]
    assert [s["key"] for s in again["steps"]] == [s["key"] for s in first["steps"]]
    assert took < 0.5 * seconds  # the test's own bound; bench/make.py measures the ratio


def test_one_edited_line_redoes_only_its_steps(made, tmp_path):
    story, state, _, _ = made
    edited = tmp_path / "edited"
    shutil.copytree(story.parent, edited, ignore=shutil.ignore_patterns("out"))
    write_story(edited, SHORT_LINES["S1b"])  # the last scene's line, shorter
    report, _ = make_json(edited / "story.yaml", state)
    redone = [s["step"] for s in report["steps"] if s["status"] == "done"]
    assert sorted(redone) == ["assemble", "publish-stream", "talk-shot", "voice-turn"]
    check_stream(edited / "out" / "lighthouse", tmp_path)


def _job_step(state: Path, pid: int) -> str | None:
    """The step the make with this PID is running, as its job store (the real SQLite file)
    says."""
    from reelforge.pipeline.jobs import JobStore

    if not (state / "jobs.sqlite").is_file():
        return None
    store = JobStore(f"sqlite:///{state / 'jobs.sqlite'}")
    try:
        for job in store.list():
            if job.pid == pid and job.status == "running":
                return job.current_step
    finally:
        store.close()
    return None


def test_sigkill_at_three_points_then_rerun(tmp_path):
    # the story's shape with short lines: killing and resuming does not need ten-second turns
    story = write_story(tmp_path / "story", SHORT_LINES["S1b"], SHORT_LINES)
    state = tmp_path / "state"
    out = story.parent / "out" / "lighthouse"
    for step in ("voice-turn", "talk-shot", "publish-stream"):
        proc = subprocess.Popen([*CLI, "make", str(story)], env=env_for(state), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if _job_step(state, proc.pid) == step:
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"make ended before reaching {step}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not out.exists()  # nothing half-made is visible
    report, _ = make_json(story, state)
    check_stream(out, tmp_path)
    assert "cached" in statuses(report)
    listed = json.loads(run_cli("jobs", "list", "--json", env=env_for(state)).stdout)
    if isinstance(listed, dict):
        listed = listed.get("jobs", [])
    assert sorted(j["status"] for j in listed) == ["done", "interrupted", "interrupted",
                                                    "interrupted"]  # fmt: skip
    # a killed make retried under its own id: it ends done, every step from the cache
    killed = next(j["id"] for j in listed if j["status"] == "interrupted")
    retried = run_cli("jobs", "retry", killed, "--json", env=env_for(state), timeout=600)
    assert retried.returncode == 0, retried.stderr
    shown = json.loads(run_cli("jobs", "show", killed, "--json", env=env_for(state)).stdout)
    assert shown["status"] == "done" and shown["attempts"] == 2
    latest = [st for st in shown["steps"] if st["attempt"] == 2]
    assert latest and {st["status"] for st in latest} == {"cached"}


BAD = {
    "missing file": ("face: {face}", "face: faces/nobody.png", "nobody.png: no such file"),
    "unknown speaker": ("[S2] {s2}", "[S3] {s2}", "[S3] is not in the story's cast"),
    "no face in the face": ("face: {face}", "face: {photo}", "no face found"),
    "empty scene": ("  - script: scenes/01.txt", "  - mix: true", "needs a script"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_stories_are_file_line_column_errors(case, tmp_path):
    folder = tmp_path / "s"
    (folder / "scenes").mkdir(parents=True)
    face = media("faces/astronaut_eileen_collins.png")
    photo = media("photos/kodim01.png")
    script = "[S1] Hello there, it is a fine night.\n[S2] {s2}\n"
    story = ("title: T\ncast:\n  S1:\n    face: {face}\n  S2:\n    face: {face}\n"
             "scenes:\n  - script: scenes/01.txt\n")  # fmt: skip
    old, new, needle = BAD[case]
    if old.startswith("[S"):
        script = script.replace(old, new)
    else:
        story = story.replace(old, new, 1)
    (folder / "scenes" / "01.txt").write_text(script.format(s2="Is it?"), encoding="utf-8")
    path = folder / "story.yaml"
    path.write_text(story.format(face=face, photo=photo), encoding="utf-8")
    out = tmp_path / "out"
    result = run_cli("make", path, "-o", out, env=env_for(tmp_path / "state"))
    assert_refused(result, needle)
    line = result.stderr.strip().splitlines()[-1]
    where = "01.txt:2:1" if case == "unknown speaker" else "story.yaml:"
    assert where in line, line
    assert line.split(where)[1].split(":")[0].isdigit() or case == "unknown speaker"
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_two_languages_make_two_lip_synced_streams_with_both_subtitles(tmp_path):
    folder = tmp_path / "s"
    (folder / "scenes").mkdir(parents=True)
    (folder / "scenes" / "en.txt").write_text(
        "[S1] The light has not failed in forty years.\n[S2] Then tonight is no different.\n"
    )
    (folder / "scenes" / "fr.txt").write_text(
        "[S1] La lumière ne s'est pas éteinte depuis quarante ans.\n"
        "[S2] Alors ce soir ne sera pas différent.\n", encoding="utf-8")  # fmt: skip
    story = folder / "story.yaml"
    story.write_text(f"""\
title: Le phare
languages: [en, fr]
size: 320x240
cast:
  S1: {{face: {media("faces/astronaut_eileen_collins.png")},
       voice: {{backend: espeak, voice: en-us}}, voices: {{fr: {{voice: fr}}}}}}
  S2: {{face: {media("faces/kodim04.png")},
       voice: {{backend: espeak, voice: en-us+f3}}, voices: {{fr: {{voice: fr+f3}}}}}}
scenes:
  - script: {{en: scenes/en.txt, fr: scenes/fr.txt}}
publish: {{preset: fast, quality: false, thumbnails: false, fallback: false,
          rungs: [{{width: 320, height: 240, bitrate_kbps: 300}}]}}
""", encoding="utf-8")  # fmt: skip
    out = tmp_path / "out"
    report, _ = make_json(story, tmp_path / "state", "-o", str(out))
    assert report["streams"] == {"en": "en", "fr": "fr"}
    durations = {}
    for lang in ("en", "fr"):
        stream = out / lang
        master = m3u8.load(str(stream / "master.m3u8"))
        pl = read_media_playlist(stream / master.playlists[0].uri)
        durations[lang] = pl.duration
        languages = {m.language for m in master.media if m.type == "SUBTITLES"}
        assert languages == {"en", "fr"}  # every language's subtitles inside each stream
        text = {p.name: p.read_text(encoding="utf-8") for p in stream.rglob("*.vtt")}
        joined = "\n".join(text.values())
        assert "forty years" in joined and "quarante ans" in joined, sorted(text)
    names = [s["step"] for s in report["steps"]]
    assert names.count("talk-shot") == 4 and names.count("publish-stream") == 2
    assert abs(durations["en"] - durations["fr"]) > 0.2  # each language has its own timing
