"""Scripts with nothing to speak are refused before synthesis; bracket tags that are not
speaker tags are warned about (``file:line:column``) and never spoken or subtitled."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import assert_refused, run_cli
from fakes import FakeSegmind

from reelforge.voice.script import ScriptError, parse


def _voice(tmp_path: Path, text: str, *extra: str, env: dict | None = None):
    script = tmp_path / "script.txt"
    script.write_text(text)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if k != "FAL_KEY"}, **(env or {})}
    env["REELFORGE_CACHE_DIR"] = str(tmp_path / "cache")
    result = run_cli("voice", script, "-o", out / "speech.wav", "--no-mos", *extra, env=env)
    return script, out, result


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  \n\n\t\n",
        "# a comment\n# and another\n",
        "---\nspeakers:\n  S1: {seed: 1}\n---\n",
        "---\nspeakers: {}\n---\n# notes only\n",
        "[S1] (laughs)\n",
        "[S1] (laughs) (sighs)\n[S2] (coughs)\n\n[S1] (applause)\n",
        "[S1]\n",
        "[S1] [X] ...\n",
    ],
    ids=["empty", "blank", "comments", "front matter", "front matter and comments", "one cue",
         "cues", "bare tag", "tag and punctuation"],
)  # fmt: skip
@pytest.mark.parametrize("backend", ["espeak", "fal"])
def test_nothing_to_speak_is_refused_before_synthesis(tmp_path, text, backend):
    """``fal`` without FAL_KEY would fail the moment a backend is made: the refusal comes
    first, so nothing is synthesised (or set up for synthesis) and nothing is written."""
    script, out, result = _voice(tmp_path, text, "--backend", backend)
    assert_refused(result, f"{script}: nothing to speak")
    assert list(out.iterdir()) == []
    assert not (tmp_path / "cache").exists()


def test_bracket_tags_that_are_not_speakers_are_warnings():
    script = parse(
        "[S1] Hello [X] there.\n"
        "[Narrator] This line goes on with the turn.\n"
        "[S2] Fine [s2] then. [S12] Me too.\n",
        "show.txt",
    )
    assert [(t.speaker, t.spoken_text) for t in script.turns] == [
        ("S1", "Hello there. This line goes on with the turn."),
        ("S2", "Fine then."),
        ("S12", "Me too."),
    ]
    assert script.warnings == [
        "show.txt:1:12: [X] is not a speaker tag ([S1], [S2], ...): left out",
        "show.txt:2:1: [Narrator] is not a speaker tag ([S1], [S2], ...): left out",
        "show.txt:3:11: [s2] is not a speaker tag ([S1], [S2], ...): left out",
    ]


def test_warnings_name_line_and_column_for_cues_too():
    script = parse("[S1] Hi.\n\n[S2] Well (dances) and\n  (sighs) more (juggles).", "x.txt")
    assert script.warnings == [
        "x.txt:3:11: unknown nonverbal tag (dances) passed through",
        "x.txt:4:16: unknown nonverbal tag (juggles) passed through",
    ]


def test_a_script_that_opens_with_a_bracket_tag_has_no_speaker():
    with pytest.raises(ScriptError) as err:
        parse("\n[Narrator] Once upon a time.\n[S1] Hi.", "x.txt")
    assert str(err.value) == (
        "x.txt:2:1: [Narrator] is not a speaker tag; turns start with [S1], [S2], ..."
    )


def test_unknown_tags_are_neither_spoken_nor_subtitled(tmp_path):
    script, out, result = _voice(
        tmp_path,
        "[S1] Good morning [X] everyone.\n[Narrator] The room fell quiet.\n[S2] Hello.\n",
        "--backend", "espeak",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert warnings == [
        f"warning: {script}:1:19: [X] is not a speaker tag ([S1], [S2], ...): left out",
        f"warning: {script}:2:1: [Narrator] is not a speaker tag ([S1], [S2], ...): left out",
    ]
    vtt = (out / "speech.wav.vtt").read_text()
    assert "[X]" not in vtt and "Narrator" not in vtt
    assert "<v S1>Good morning everyone. The room fell quiet." in vtt
    assert "<v S2>Hello." in vtt


def test_a_backend_that_returns_silence_is_an_error(tmp_path):
    """Words were sent, nothing came back: one line and exit 1, not a file at -inf LUFS."""
    silent = io.BytesIO()
    sf.write(silent, np.zeros(24_000, np.float32), 24_000, format="WAV")
    fake = FakeSegmind(silent.getvalue())
    try:
        script, out, result = _voice(tmp_path, "[S1] Hello there.\n", "--backend", "segmind",
                                     env={"SEGMIND_API_KEY": "test-segmind-key",
                                          "SEGMIND_API_URL": fake.base})  # fmt: skip
    finally:
        fake.close()
    assert result.returncode == 1, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and "━" not in ln]
    assert lines == [f"error: {script}: segmind returned only silence for this script"]
    assert list(out.iterdir()) == []
