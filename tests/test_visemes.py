"""Visemes from phone timings and the inner mouth they drive, on real speech and portraits."""

from __future__ import annotations

import itertools

import av
import numpy as np
import pytest
from conftest import media
from PIL import Image

from reelforge.lipsync.backends.viseme import VisemeAnimator
from reelforge.lipsync.faces import FaceTracker
from reelforge.lipsync.mouth import LOWER_INNER, UPPER_INNER, MouthAnimator, MouthRenderer
from reelforge.lipsync.speech import RATE, band_energy
from reelforge.lipsync.visemes import PHONE_VISEMES, VISEMES, mouth_track
from reelforge.voice.phones import SILENCE, Phone, timings
from reelforge.voice.post import decode

FPS = 25.0
BILABIALS = {"B", "M", "P"}


def _first_frame(path) -> np.ndarray:
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    raise AssertionError("no frame")


def _face(image):
    with FaceTracker(still=True) as tracker:
        return tracker.track(image)


@pytest.fixture(scope="module")
def grid():
    """GRID bbaf2n: "bin blue at F two now", its phones aligned, and its mouth track."""
    path = media("video/grid_bbaf2n.mpg")
    audio = decode(path, RATE)
    n = round(audio.size / RATE * FPS)
    timing = timings(audio, RATE, "bin blue at f two now")
    assert timing.method == "alignment"
    track = mouth_track(timing.phones, n, FPS, band_energy(audio, n, FPS))
    return path, timing, track


def test_every_phone_has_a_documented_viseme():
    arpabet = {"AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY",
               "F", "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P",
               "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH"}  # fmt: skip
    assert arpabet <= set(PHONE_VISEMES)
    assert all(v in VISEMES for names in PHONE_VISEMES.values() for v in names)
    assert PHONE_VISEMES["M"] == ("PP",) and VISEMES["PP"].jaw == 0
    assert VISEMES["ou"].spread < 0 < VISEMES["ih"].spread and VISEMES["aa"].jaw == 1


def test_bilabials_close_within_a_frame_and_silence_rests(grid):
    _, timing, track = grid
    jaw = track.jaw
    span = jaw.max() - jaw.min()
    assert span > 0.3
    for p in timing.phones:
        if p.label in BILABIALS:
            a = max(0, int(p.start * FPS) - 1)
            b = min(len(jaw), int(np.ceil(p.end * FPS)) + 1)
            assert jaw[a:b].min() <= jaw.min() + 0.15 * span, (p, jaw[a:b])
    first = next(p for p in timing.phones if p.label != SILENCE)
    assert np.all(jaw[: int(first.start * FPS) - 2] == 0)  # the silence before "bin"


def test_rounding_spreading_and_coarticulation():
    # "we" then "see": W rounds, IY spreads; the rounding starts before the W (anticipation).
    phones = [Phone(SILENCE, 0, 0.4), Phone("W", 0.4, 0.48), Phone("IY", 0.48, 0.68),
              Phone("S", 0.68, 0.8), Phone("IY", 0.8, 1.0), Phone(SILENCE, 1.0, 1.5)]  # fmt: skip
    track = mouth_track(phones, 38, FPS)
    frame = lambda t: int(t * FPS)  # noqa: E731
    assert track.spread[frame(0.44)] < -0.3 and track.spread[frame(0.6)] > 0.3
    assert track.spread[frame(0.38)] < 0  # rounding ahead of the W
    assert track.jaw[frame(0.6)] > track.jaw[frame(0.74)]  # s closes the teeth
    # A 20 ms vowel between closures still shows: at least one frame opens.
    short = [Phone(SILENCE, 0, 0.3), Phone("M", 0.3, 0.38), Phone("AA", 0.38, 0.4),
             Phone("P", 0.4, 0.48), Phone(SILENCE, 0.48, 0.9)]  # fmt: skip
    jaw = mouth_track(short, 23, FPS).jaw
    assert jaw[int(0.3 * FPS) : int(0.5 * FPS)].max() > 0 or jaw.max() > 0


def test_energy_scales_how_wide_vowels_open():
    phones = [Phone("AA", 0.0, 0.4), Phone("AA", 0.4, 0.8)]
    energy = np.r_[np.full(10, 1.0), np.full(10, 4.0)]
    jaw = mouth_track(phones, 20, FPS, energy).jaw
    assert jaw[15] > 1.5 * jaw[4]


def _mouth_diff(frames, still, box):
    x0, y0, x1, y1 = box
    return np.array([np.abs(f[y0:y1, x0:x1].astype(float) - still[y0:y1, x0:x1]).mean()
                     for f in frames])  # fmt: skip


def test_rendered_mouth_closes_on_bilabials(grid):
    path, timing, track = grid
    image = _first_frame(path)  # the speaker, mouth closed
    face = _face(image)
    renderer = MouthRenderer(track, still=True)
    frames = list(renderer.run((i, image, face) for i in range(len(track))))
    x0, y0 = face.points[[61, 291, 14]].min(axis=0).astype(int) - 4
    x1, y1 = face.points[[61, 291, 152]].max(axis=0).astype(int) + 4
    diff = _mouth_diff(frames, image, (x0, y0, x1, y1))
    span = diff.max() - diff.min()
    assert span > 5
    for p in timing.phones:
        if p.label in BILABIALS:
            a = max(0, int(p.start * FPS) - 1)
            b = min(len(diff), int(np.ceil(p.end * FPS)) + 1)
            assert diff[a:b].min() <= diff.min() + 0.15 * span, (p, diff[a:b])


def test_smiling_portrait_keeps_its_upper_teeth_and_shows_no_ghost_copy():
    image = np.asarray(Image.open(media("faces/astronaut_eileen_collins.png")).convert("RGB"))
    face = _face(image)
    animator = MouthAnimator(image, face)
    assert animator.own_teeth  # she smiles with her teeth showing
    opened = animator.frame_shape(1.0).astype(int)
    p = face.points
    # Above the line where her teeth meet, nothing moves: upper lip, upper teeth, nose.
    x0, x1 = int(p[61][0]), int(p[291][0])
    cols = np.arange(x0, x1)
    upper = p[list(UPPER_INNER)]
    lower = p[list(LOWER_INNER)]
    meet = (np.interp(cols, *upper[np.argsort(upper[:, 0])].T)
            + np.interp(cols, *lower[np.argsort(lower[:, 0])].T)) / 2  # fmt: skip
    rows = np.arange(image.shape[0])[:, None]
    above = (rows >= p[2][1]) & (rows < meet[None, :] - 2)
    change = np.abs(opened[:, x0:x1] - image[:, x0:x1]).max(axis=2)
    assert above.sum() > 300 and change[above].max() <= 1, change[above].max()
    top = int(meet[(x1 - x0) // 2])
    # The gap between the teeth is dark, with no dimmed copy of the teeth in it.
    mid = int((x0 + x1) / 2)
    gap = opened[top + 4 : top + int(0.5 * animator.drop), mid - 8 : mid + 8]
    teeth = image[int(p[13][1]) + 1 : top, mid - 8 : mid + 8]
    assert gap.mean() < 0.45 * teeth.mean()
    assert gap.std(axis=(0, 1)).mean() < 25  # no tooth edges in it
    # Today's energy animator, for contrast, leaves a copy of the teeth in its gap.
    old = VisemeAnimator(image, face).frame(1.0).astype(int)
    assert old[top + 4 : top + int(0.5 * animator.drop), mid - 8 : mid + 8].mean() > gap.mean()


def test_only_the_mouth_changes_from_frame_to_frame(grid):
    path, _, track = grid
    image = _first_frame(path)
    face = _face(image)
    frames = [MouthRenderer(track, still=True).run([(i, image, face)]).__next__()
              for i in range(len(track))]  # fmt: skip
    p = face.points
    half = (p[291][0] - p[61][0]) / 2
    mask = np.ones(image.shape[:2], bool)
    x0, x1 = int(p[61][0] - 1.8 * half), int(p[291][0] + 1.8 * half)
    y0, y1 = int(p[2][1]), int(p[152][1] + 1.0 * half)
    mask[max(0, y0) : y1, max(0, x0) : x1] = False
    steps = [np.abs(a.astype(int) - b)[mask].max() for a, b in itertools.pairwise(frames)]
    assert max(steps) == 0  # outside the mouth, no pixel moves (no blink, no sway here)
    inside = [np.abs(a.astype(int) - b)[~mask].mean() for a, b in itertools.pairwise(frames)]
    assert max(inside) < 12  # the mouth moves smoothly: no jumps from frame to frame
