"""Phones to mouth shapes, frame by frame: the visemes that drive the offline animator.

Contract: :func:`mouth_track` takes phone timings (:class:`~reelforge.voice.phones.Phone`),
the frame count and rate, and optionally per-frame speech band energy, and returns a
:class:`MouthTrack`: per frame, ``jaw`` (0 closed to 1 wide open), ``spread`` (-1 rounded
and narrow to +1 wide), ``press`` (1 where the lips are pressed shut), ``tuck`` (lower lip
to the upper teeth) and ``tongue`` (tongue tip shown), each driven separately.

The viseme set is Meta/Oculus Lipsync's fifteen (``sil PP FF TH DD kk CH SS nn RR aa E ih
oh ou``), in the spirit of Preston Blair's mouth chart: closed for m/b/p, lower lip to the
upper teeth for f/v, rounded and narrow for o/u/w, wide for i/e, open for a, tongue for
l/th. Diphthongs move between two visemes. Coarticulation is a dominance blend (after
Cohen and Massaro): each phone pulls every parameter towards its target with a weight that
is its dominance inside the phone and decays exponentially outside it, so lips round ahead
of a rounded vowel and tongue consonants take their lips from their neighbours. Then
bilabials are forced shut from about one frame before their phone to its end (at least one
frame each, however short), and every phone is at least a frame wide, so none goes unseen.
Energy scales how wide a vowel opens (loud vowels open wider); silence rests the mouth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelforge.voice.phones import SILENCE, Phone

PARAMS = ("jaw", "spread", "press", "tuck", "tongue")


@dataclass(frozen=True)
class Viseme:
    jaw: float
    spread: float
    press: float = 0.0
    tuck: float = 0.0
    tongue: float = 0.0
    dominance: float = 1.0  # pull on the neighbours (coarticulation)


VISEMES: dict[str, Viseme] = {
    "sil": Viseme(0.0, 0.0, dominance=0.6),
    "PP": Viseme(0.0, 0.0, press=1.0, dominance=3.0),  # m b p
    "FF": Viseme(0.08, 0.15, tuck=1.0, dominance=2.0),  # f v
    "TH": Viseme(0.22, 0.15, tongue=1.0, dominance=1.2),  # th dh
    "DD": Viseme(0.22, 0.15, dominance=0.5),  # t d
    "kk": Viseme(0.28, 0.1, dominance=0.4),  # k g ng
    "CH": Viseme(0.18, -0.5, dominance=1.4),  # ch jh sh zh: lips forward
    "SS": Viseme(0.10, 0.35, dominance=1.2),  # s z: teeth close, lips apart
    "nn": Viseme(0.2, 0.1, tongue=0.4, dominance=0.5),  # n l
    "RR": Viseme(0.22, -0.55, dominance=1.0),  # r er
    "aa": Viseme(1.0, 0.1),  # father, cat, cut
    "E": Viseme(0.6, 0.5),  # bed, bait
    "ih": Viseme(0.35, 0.75),  # bit, beet
    "oh": Viseme(0.6, -0.75),  # bought, boat
    "ou": Viseme(0.28, -1.0, dominance=1.3),  # book, boot, w
}

# ARPAbet (CMU dictionary) phones to visemes; a diphthong is two, half its length each.
PHONE_VISEMES: dict[str, tuple[str, ...]] = {
    "AA": ("aa",), "AE": ("aa",), "AH": ("aa",), "AO": ("oh",), "AW": ("aa", "ou"),
    "AY": ("aa", "ih"), "EH": ("E",), "ER": ("RR",), "EY": ("E", "ih"), "IH": ("ih",),
    "IY": ("ih",), "OW": ("oh", "ou"), "OY": ("oh", "ih"), "UH": ("ou",), "UW": ("ou",),
    "B": ("PP",), "P": ("PP",), "M": ("PP",), "F": ("FF",), "V": ("FF",), "TH": ("TH",),
    "DH": ("TH",), "T": ("DD",), "D": ("DD",), "N": ("nn",), "L": ("nn",), "K": ("kk",),
    "G": ("kk",), "NG": ("kk",), "HH": ("kk",), "CH": ("CH",), "JH": ("CH",),
    "SH": ("CH",), "ZH": ("CH",), "S": ("SS",), "Z": ("SS",), "R": ("RR",), "W": ("ou",),
    "Y": ("ih",), SILENCE: ("sil",),
}  # fmt: skip
# The mouth's own dominance where the phone leaves the lips free: HH takes its neighbours'.
WEAK = {"HH": 0.15}
TAU = 0.045  # seconds: how far a phone's pull reaches beyond it (1/e)
ANTICIPATE = 1.0  # frames: bilabial closures start this early


@dataclass
class MouthTrack:
    jaw: np.ndarray
    spread: np.ndarray
    press: np.ndarray
    tuck: np.ndarray
    tongue: np.ndarray

    def __len__(self) -> int:
        return int(self.jaw.size)

    @classmethod
    def closed(cls, n: int) -> MouthTrack:
        return cls(*(np.zeros(n) for _ in PARAMS))


def visemes_of(phones: list[Phone]) -> list[tuple[str, float, float, float]]:
    """``(viseme, start, end, dominance)`` per phone (diphthongs split in two halves);
    phones outside the table are silence."""
    out = []
    for p in phones:
        names = PHONE_VISEMES.get(p.label.upper().rstrip("012"), ("sil",))
        step = (p.end - p.start) / len(names)
        for k, name in enumerate(names):
            dom = WEAK.get(p.label, VISEMES[name].dominance)
            out.append((name, p.start + k * step, p.start + (k + 1) * step, dom))
    return out


def _loudness(energy: np.ndarray | None, n: int) -> np.ndarray:
    """Per-frame loudness in [0, 1] from log band energy (20th..97th percentile)."""
    if energy is None or energy.size != n or n == 0:
        return np.ones(n)
    lo, hi = np.percentile(energy, 20), np.percentile(energy, 97)
    if hi - lo < 0.5:
        return np.zeros(n)
    return np.clip((energy - lo) / (hi - lo), 0.0, 1.0)


def mouth_track(
    phones: list[Phone], n_frames: int, fps: float, energy: np.ndarray | None = None
) -> MouthTrack:
    """See the module docstring."""
    n = n_frames
    t = (np.arange(n) + 0.5) / fps
    num = np.zeros((len(PARAMS), n))
    den = np.full(n, 1e-3)
    rest = np.array([getattr(VISEMES["sil"], k) for k in PARAMS])
    num += rest[:, None] * 1e-3
    reach = 5 * TAU
    items = visemes_of(phones)
    for name, start, end, dom in items:
        v = VISEMES[name]
        centre = (start + end) / 2
        half = max((end - start) / 2, 0.5 / fps)  # at least a frame wide
        a = int(np.searchsorted(t, centre - half - reach))
        b = int(np.searchsorted(t, centre + half + reach))
        if b <= a:
            continue
        outside = np.maximum(np.abs(t[a:b] - centre) - half, 0.0)
        w = dom * np.exp(-outside / TAU)
        den[a:b] += w
        num[:, a:b] += w * np.array([getattr(v, k) for k in PARAMS])[:, None]
    values = num / den
    track = MouthTrack(*values)
    loud = _loudness(energy, n)
    # Loud vowels open wider; the quietest frames (pauses, breath) close like silence.
    gate = np.clip(loud / 0.2, 0.0, 1.0)
    track.jaw = track.jaw * (0.45 + 0.55 * loud) * gate * gate * (3 - 2 * gate)
    # Bilabials shut the lips: from about a frame before the phone to its end.
    for name, start, end, _ in items:
        if name != "PP":
            continue
        shut = (t >= start - ANTICIPATE / fps) & (t <= end)
        if not shut.any():
            shut[min(n - 1, max(0, int((start + end) / 2 * fps)))] = True
        track.jaw[shut] = 0.0
        track.press[shut] = 1.0
        track.tuck[shut] = 0.0
        track.tongue[shut] = 0.0
    # Silence rests the mouth: frames inside long silences close fully.
    for name, start, end, _ in items:
        if name == "sil" and end - start >= 0.15:
            calm = (t >= start + TAU) & (t <= end - TAU)
            track.jaw[calm] = 0.0
            track.spread[calm] *= 0.0
    return track
