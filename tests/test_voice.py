"""Voice: scripts to normalised speech, measured with real meters."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from conftest import assert_refused, media, run_cli
from scipy.signal import resample

from reelforge.errors import InputError
from reelforge.voice import post
from reelforge.voice.render import VoiceOptions, render
from reelforge.voice.script import parse

SCRIPT = """---
speakers:
  S1: {seed: 4}
---
[S1] Welcome back to the show. (laughs) It has been a long week, hasn't it?
[S2] It really has. I barely slept,
and the coffee machine broke on Tuesday.
[S1] Then let's keep this short.

[S2] (sighs) Fine. Here is the news.
"""


def measured(path: Path) -> tuple[np.ndarray, int, float, float]:
    """Audio, rate, integrated LUFS and true peak (4x FFT oversampling), measured here."""
    if path.suffix == ".wav":
        audio, rate = sf.read(path, dtype="float64")
    else:
        rate = 48_000
        audio = post.decode(path, rate).astype(np.float64)
    lufs = pyloudnorm.Meter(rate).integrated_loudness(audio)
    peak = np.max(np.abs(resample(audio, audio.size * 4)))
    return audio, rate, lufs, 20 * math.log10(peak)


def cues(vtt: Path) -> list[tuple[float, float, str]]:
    out = []
    for m in re.finditer(
        r"(\d+):(\d+):([\d.]+) --> (\d+):(\d+):([\d.]+)\n<v (S\d+)>", vtt.read_text()
    ):
        h1, m1, s1, h2, m2, s2, who = m.groups()
        out.append((int(h1) * 3600 + int(m1) * 60 + float(s1),
                    int(h2) * 3600 + int(m2) * 60 + float(s2), who))  # fmt: skip
    return out


def test_parse_turns_scenes_cues_and_front_matter():
    script = parse(SCRIPT, "show.txt")
    assert [t.speaker for t in script.turns] == ["S1", "S2", "S1", "S2"]
    assert [t.scene for t in script.turns] == [0, 0, 0, 1]
    assert "coffee machine broke" in script.turns[1].text  # continuation line joined
    assert [p.text for p in script.turns[0].pieces if p.kind == "cue"] == ["laughs"]
    assert "(laughs)" not in script.turns[0].spoken_text
    assert script.speakers["S1"].seed == 4 and script.warnings == []


def test_unknown_cue_is_a_warning_and_passes_through():
    script = parse("[S1] Hello (dances) there.")
    assert script.warnings == ["<script>:1:12: unknown nonverbal tag (dances) passed through"]
    assert [p.text for p in script.turns[0].pieces] == ["Hello", "dances", "there."]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("[S1] Hi.\n\nNo tag here.", "x.txt:3:1", "no speaker tag"),
        ("---\nspeakers:\n  S3: {seed: 1}\n---\n[S1] Hi.", "x.txt:2:1", "unknown speaker 'S3'"),
        ("---\nspeakers: [a\n---\n[S1] Hi.", "x.txt:", "not valid YAML"),
        ("---\nspeakers: {}\n", "x.txt:1:1", "never closed"),
        ("\n\n", "x.txt: nothing to speak", "no turns"),
        ("[S1] Hi.\n[S2]", "x.txt:2:1", "[S2] turn is empty"),
    ],
)
def test_parse_errors_name_line_and_column(text, where, message):
    with pytest.raises(InputError) as err:
        parse(text, "x.txt")
    assert str(err.value).startswith(where) and message in str(err.value)


@pytest.fixture(scope="module")
def espeak_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voice")
    script = folder / "show.txt"
    script.write_text(SCRIPT)
    cache = folder / "cache"
    report = render(script, folder / "show.wav", VoiceOptions(backend="espeak", cache_dir=cache))
    return folder, script, cache, report


def test_loudness_and_true_peak_measured_on_the_file(espeak_run):
    folder, _, _, report = espeak_run
    audio, rate, lufs, peak = measured(folder / "show.wav")
    assert rate == 48_000
    assert abs(lufs - (-16.0)) <= 0.5
    assert peak <= -1.0
    assert abs(audio.size / rate - report.duration) < 0.01


def test_subtitles_follow_the_turns_inside_the_audio(espeak_run):
    folder, _, _, _report = espeak_run
    found = cues(folder / "show.wav.vtt")
    assert [c[2] for c in found] == ["S1", "S2", "S1", "S2"]
    audio, rate, _, _ = measured(folder / "show.wav")
    total = audio.size / rate
    previous_end = 0.0
    for start, end, _ in found:
        assert 0 <= start < end <= total + 0.001
        assert start >= previous_end - 0.001
        previous_end = end
        # There is speech inside every cue.
        segment = audio[int(start * rate) : int(end * rate)]
        assert np.sqrt(np.mean(segment**2)) > 0.01
    text = (folder / "show.wav.vtt").read_text()
    assert "(laughs)" not in text and "laughs" not in text


def test_rerun_hits_the_cache_and_one_changed_line_resynthesises_one_chunk(espeak_run):
    folder, script, cache, first = espeak_run
    assert first.backend_calls == len(first.chunks) and first.cache_hits == 0
    # DNSMOS scores the rendered audio after synthesis: it plays no part in the chunk cache
    # (so it is left off here, where only the cache is checked)
    again = render(script, folder / "again.wav",
                   VoiceOptions(backend="espeak", cache_dir=cache, mos=False))  # fmt: skip
    assert again.backend_calls == 0 and again.cache_hits == len(first.chunks)
    assert np.array_equal(sf.read(folder / "again.wav")[0], sf.read(folder / "show.wav")[0])
    script.write_text(SCRIPT.replace("keep this short", "keep this very short"))
    changed = render(
        script, folder / "changed.wav", VoiceOptions(backend="espeak", cache_dir=cache, mos=False)
    )
    assert changed.backend_calls == 1
    assert [c.cached for c in changed.chunks].count(False) == 1
    script.write_text(SCRIPT)


def test_report_has_per_turn_measurements(espeak_run):
    folder, _, _, _report = espeak_run
    data = json.loads((folder / "show.wav.report.json").read_text())
    assert data["backend"] == "espeak" and len(data["turns"]) == 4
    for turn in data["turns"]:
        assert turn["duration"] > 0.5 and turn["true_peak_dbtp"] <= -1.0
        assert turn["loudness_lufs"] < -5
    assert data["dnsmos"] is None or 1.0 <= data["dnsmos"]["overall"] <= 5.0


def test_m4a_output_keeps_loudness_and_peak(tmp_path, espeak_run):
    _folder, script, cache, _ = espeak_run
    render(
        script, tmp_path / "show.m4a", VoiceOptions(backend="espeak", cache_dir=cache, mos=False)
    )
    _, _, lufs, peak = measured(tmp_path / "show.m4a")
    assert abs(lufs + 16) <= 0.5 and peak <= -1.0


def test_piper_voice_is_natural_enough(tmp_path):
    pytest.importorskip("piper")
    script = tmp_path / "s.txt"
    script.write_text("[S1] The quick brown fox jumps over the lazy dog. (sighs) Then it rests.")
    report = render(
        script, tmp_path / "p.wav", VoiceOptions(backend="piper", cache_dir=tmp_path / "c")
    )
    _, _, lufs, peak = measured(tmp_path / "p.wav")
    assert abs(lufs + 16) <= 0.5 and peak <= -1.0
    if report.dnsmos is not None:
        assert report.dnsmos["overall"] > 2.8


def test_bad_voice_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("REELFORGE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    out.mkdir()

    def voice(text: str, name: str = "out.wav", *extra: str):
        script = tmp_path / "script.txt"
        script.write_text(text)
        return run_cli("voice", script, "-o", out / name, "--backend", "espeak", "--no-mos", *extra)

    assert_refused(voice(""), "script is empty")
    assert_refused(voice("hello there"), "script.txt:1:1", "no speaker tag")
    assert_refused(voice("---\nspeakers:\n  S2: {seed: 1}\n---\n[S1] Hi."), "unknown speaker 'S2'")
    assert_refused(voice("[S1] Hi.", "out.mp3"), "unsupported output type '.mp3'")
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio at all")
    ref = f"---\nspeakers:\n  S1: {{reference: {not_audio}, transcript: Hello.}}\n---\n[S1] Hi."
    assert_refused(voice(ref), str(not_audio), "reference clip is not audio")
    assert list(out.iterdir()) == []


def test_missing_api_key_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("FAL_KEY", raising=False)
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    script = tmp_path / "s.txt"
    script.write_text("[S1] Hi.")
    for backend, var in (("fal", "FAL_KEY"), ("segmind", "SEGMIND_API_KEY")):
        result = run_cli("voice", script, "-o", tmp_path / "o.wav", "--backend", backend)
        assert_refused(result, var)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.txt"]


def test_reference_clip_from_real_speech_is_accepted(tmp_path):
    clip = media("speech/LJ001-0002.wav")
    script = tmp_path / "s.txt"
    script.write_text(
        f"---\nspeakers:\n  S1: {{reference: {clip}, transcript: in being comparatively modern.}}\n"
        "---\n[S1] A short line."
    )
    report = render(
        script,
        tmp_path / "o.wav",
        VoiceOptions(backend="espeak", cache_dir=tmp_path / "c", mos=False),
    )
    assert report.duration > 0.5
