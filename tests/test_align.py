"""Phone timings: forced alignment against hand-marked words, eSpeak's phoneme events against
alignment of the same speech, and bad transcripts falling back to recognition."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import media

from reelforge.voice.backends.base import Chunk, Line
from reelforge.voice.backends.espeak import EspeakBackend
from reelforge.voice.phones import SILENCE, from_ipa, normalise, timings
from reelforge.voice.post import decode
from reelforge.voice.script import Piece

# LJ001-0002 "in being comparatively modern.", marked by hand on its waveform and
# spectrogram: voicing onsets, the /b/ burst, the end of the /ng/ voicing (the /k/ closure
# starts), the /iy/-to-/m/ change.
LJ2_WORDS = [("in", 0.005), ("being", 0.165), ("comparatively", 0.400), ("modern", 1.270)]
LJ2_END = 1.80


def test_alignment_matches_hand_marked_words():
    audio = decode(media("speech/LJ001-0002.wav"), 16_000)
    timing = timings(audio, 16_000, "In being comparatively modern.")
    assert timing.method == "alignment" and not timing.warnings
    assert [w.text for w in timing.words] == [w for w, _ in LJ2_WORDS]
    for word, (_, marked) in zip(timing.words, LJ2_WORDS, strict=True):
        assert abs(word.start - marked) <= 0.05, (word, marked)
    assert abs(timing.words[-1].end - LJ2_END) <= 0.1
    # Phones tile the words: in order, no overlaps, and bilabials where the words have them.
    labels = [p.label for p in timing.phones if p.label != SILENCE]
    assert labels[:4] == ["IH", "N", "B", "IY"] and labels.count("M") == 2
    assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(timing.phones))


def _espeak(text: str):
    backend = EspeakBackend()
    chunk = Chunk(0, (Line(1, "S1", (Piece("text", text),)),))
    return backend.synthesize(chunk, {})


@pytest.mark.parametrize(
    "text",
    ["In being comparatively modern.", "But here's the thing: we have the answers."],
)
def test_espeak_phone_events_agree_with_alignment(text):
    synth = _espeak(text)
    events = synth.extra["phones"]
    ours = [p for p in events if p[0] != SILENCE]
    assert ours and all(a[2] <= b[1] + 1e-6 for a, b in itertools.pairwise(events))
    assert events[-1][2] <= synth.audio.size / synth.sample_rate + 1e-3
    aligned = timings(synth.audio, synth.sample_rate, text)
    assert aligned.method == "alignment", aligned.warnings
    theirs = [p for p in aligned.phones if p.label != SILENCE]
    # Same pronunciation source (eSpeak for both would be circular): compare where the
    # labels agree, which is nearly everywhere.
    assert len(theirs) == len(ours)
    same = [(a, b) for a, b in zip(ours, theirs, strict=True) if a[0] == b.label]
    assert len(same) >= 0.8 * len(ours)
    errors = np.array([abs(a[1] - b.start) for a, b in same])
    assert np.median(errors) <= 0.05 and np.mean(errors) <= 0.05, errors


@pytest.mark.parametrize(
    ("transcript", "why"),
    [
        ("", "the transcript is empty"),
        ("Съешь же ещё этих мягких французских булок", "no English words"),
        ("词典里没有这些字", "no English words"),
        ("lay blue at x four now", "does not"),  # another clip's words
        ("the quick brown fox jumps over the lazy dog near the river bank", "does not"),
    ],
)
def test_bad_transcripts_fall_back_to_recognition_with_a_warning(transcript, why):
    audio = decode(media("speech/LJ001-0002.wav"), 16_000)
    timing = timings(audio, 16_000, transcript)
    assert timing.method == "recognition"
    assert len(timing.warnings) == 1 and why in timing.warnings[0], timing.warnings
    spoken = [p for p in timing.phones if p.label != SILENCE]
    assert len(spoken) >= 10 and spoken[0].start < 0.2 and spoken[-1].end > 1.5


def test_recognition_alone_times_the_speech():
    audio = decode(media("video/grid_bbaf2n.mpg"), 16_000)
    timing = timings(audio, 16_000)
    assert timing.method == "recognition" and not timing.warnings
    spoken = [p for p in timing.phones if p.label != SILENCE]
    # GRID: a second of silence, then "bin blue at F two now" ending before 2.5 s.
    assert 0.7 <= spoken[0].start <= 1.1 and 2.0 <= spoken[-1].end <= 2.6
    assert {"B", "M"} & {p.label for p in spoken}


def test_numbers_letters_and_words_outside_the_dictionary():
    audio = decode(media("video/grid_bbaf2n.mpg"), 16_000)
    timing = timings(audio, 16_000, "Bin blue at F 2 now")
    assert timing.method == "alignment"
    assert [w.text for w in timing.words] == ["bin", "blue", "at", "f", "two", "now"]
    assert normalise("It's 1984!") == ["it's", "one", "thousand", "nine", "hundred", "eighty",
                                       "four"]  # fmt: skip
    synth = _espeak("Reelforge speaks now.")  # "reelforge": eSpeak's pronunciation
    timing = timings(synth.audio, synth.sample_rate, "Reelforge speaks now.")
    assert timing.method == "alignment", timing.warnings
    assert [w.text for w in timing.words] == ["reelforge", "speaks", "now"]
    assert from_ipa("ˈaɪ") == ["AY"] and from_ipa("ɔːɹ") == ["AO", "R"] and from_ipa("_") == []
