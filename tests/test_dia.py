"""Dia through transformers, end to end on a tiny randomly initialised model built here."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import media

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny_models import build_tiny_dia  # noqa: E402

from reelforge.errors import InputError  # noqa: E402
from reelforge.voice import post  # noqa: E402
from reelforge.voice.backends.base import Chunk, Line  # noqa: E402
from reelforge.voice.backends.dia import DiaBackend  # noqa: E402
from reelforge.voice.render import VoiceOptions, render  # noqa: E402
from reelforge.voice.script import Piece, VoiceSpec  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dia(tmp_path_factory):
    """Tiny Dia + DAC with random weights, saved the way real checkpoints are."""
    return build_tiny_dia(tmp_path_factory.mktemp("tiny-dia"))


def _line(speaker, text, turn=0):
    return Line(turn, speaker, (Piece("text", text),))


def test_generates_audio_from_a_local_checkpoint(tiny_dia):
    backend = DiaBackend(model=str(tiny_dia), max_new_tokens=30)
    synth = backend.synthesize(Chunk(0, (_line("S1", "Hello there."),)), {}, {})
    assert synth.sample_rate == 44100
    assert synth.audio.dtype == np.float32 and synth.audio.size > 0
    assert synth.extra["frames"] > 1
    assert backend.device.type in ("cpu", "cuda")


def test_cloning_keeps_only_the_new_audio(tiny_dia):
    clip = media("speech/LJ001-0002.wav")
    ref = post.decode(clip, 44100)
    backend = DiaBackend(model=str(tiny_dia), max_new_tokens=30)
    chunk = Chunk(0, (_line("S1", "A new sentence."),))
    plain = backend.synthesize(chunk, {}, {})
    cloned = backend.synthesize(chunk, {}, {"S1": (ref, 44100, "in being comparatively modern.")})
    # The prompt (1.9 s) is consumed as context; only the 30 new frames come back.
    assert cloned.extra["frames"] > plain.extra["frames"] + 100
    assert cloned.audio.size < ref.size / 4
    assert abs(cloned.audio.size - plain.audio.size) <= 32 * 16


def test_seed_makes_generation_repeatable(tiny_dia):
    backend = DiaBackend(model=str(tiny_dia), max_new_tokens=20)
    chunk = Chunk(0, (_line("S1", "Same words."),))
    voices = {"S1": VoiceSpec(seed=11)}
    a = backend.synthesize(chunk, voices, {})
    b = backend.synthesize(chunk, voices, {})
    assert np.array_equal(a.audio, b.audio)


def test_render_a_dialogue_with_dia(tiny_dia, tmp_path):
    script = tmp_path / "s.txt"
    clip = media("speech/LJ001-0002.wav")
    script.write_text(
        f"---\nspeakers:\n  S1: {{reference: {clip}, "
        "transcript: in being comparatively modern., seed: 3}\n"
        "  S2: {seed: 5}\n---\n[S1] Hello there. (laughs)\n[S2] Hi, good to see you."
    )
    opts = VoiceOptions(
        backend="dia",
        backend_options={"model": str(tiny_dia), "max_new_tokens": 60},
        cache_dir=tmp_path / "cache",
        mos=False,
    )
    report = render(script, tmp_path / "o.wav", opts)
    assert report.backend == "dia" and report.model.startswith("dia/")
    assert len(report.turns) == 2 and (tmp_path / "o.wav.vtt").is_file()
    again = render(script, tmp_path / "o2.wav", opts)
    assert again.backend_calls == 0


def test_dia_refuses_a_third_speaker_and_a_missing_model(tiny_dia):
    with pytest.raises(InputError, match="--model"):
        DiaBackend()
    backend = DiaBackend(model=str(tiny_dia), max_new_tokens=5)
    with pytest.raises(InputError, match=r"\[S1\] and \[S2\]"):
        backend.synthesize(Chunk(0, (_line("S3", "Hi."),)), {}, {})
