"""Where segments and keyframes fall on a stream's timeline.

Contract: a :class:`Timeline` is an opening of short segments (``opening``, seconds each)
followed by the regular grid: boundaries at every multiple of ``segment_duration`` after the
opening's end. Keyframes sit on every boundary and every ``keyframe_interval`` between
boundaries. Every rendition of every codec is encoded with the keyframes
:meth:`Timeline.keyframe_expression` forces and cut at :meth:`Timeline.boundaries`, so
segments line up across the ladder. Short opening segments let a player start on a small
first download and then go on with the regular, more efficient, segment length.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from reelforge.errors import InputError

MIN_OPENING = 0.25  # seconds: shorter segments cost more in requests than they save
OPENING_SHORT = 1.0  # the default opening: 1 s segments ...
OPENING_SPAN = 2.0  # ... for the first 2 s, then keyframe intervals up to the grid


def keyframe_interval(segment_duration: float, preferred: float = 2.0) -> float:
    """The largest keyframe interval <= ``preferred`` that divides the segment duration."""
    parts = max(1, math.ceil(segment_duration / preferred - 1e-9))
    return segment_duration / parts


def default_opening(segment_duration: float) -> tuple[float, ...]:
    """1 s segments for the first 2 s, then keyframe intervals until the regular grid.

    For 4 s segments that is ``(1, 1, 2)``, for 6 s ``(1, 1, 2, 2)``, for 2 s ``(1, 1)``;
    segments of 1 s or less need no opening.
    """
    interval = keyframe_interval(segment_duration)
    if segment_duration <= OPENING_SHORT + 1e-9:
        return ()
    short = min(OPENING_SHORT, interval)
    opening = [short] * max(1, round(OPENING_SPAN / short))
    grid_end = segment_duration * math.ceil(sum(opening) / segment_duration - 1e-9)
    while sum(opening) < grid_end - 1e-9:
        opening.append(min(interval, grid_end - sum(opening)))
    return tuple(opening)


def parse_opening(text: str) -> tuple[float, ...]:
    """``"1,1,2"`` -> ``(1.0, 1.0, 2.0)``; ``"none"``, ``"0"`` or ``""`` -> no opening.

    Raises :class:`InputError` (one line) for a value that is not a number of seconds.
    """
    text = text.strip().lower()
    if text in ("", "none", "0"):
        return ()
    out = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InputError(f"--start-segments: {part.strip()!r} is not a number of seconds")
        out.append(value)
    return tuple(out)


def check_opening(opening: tuple[float, ...], segment_duration: float) -> None:
    """Refuse (one-line :class:`InputError`) opening segments shorter than
    :data:`MIN_OPENING` or longer than the keyframe interval of ``segment_duration``."""
    interval = keyframe_interval(segment_duration)
    for value in opening:
        if not MIN_OPENING <= value <= interval + 1e-6:
            raise InputError(f"--start-segments: each must be {MIN_OPENING:g} to {interval:g} s "
                             f"(the keyframe interval), not {value:g}")  # fmt: skip


@dataclass(frozen=True)
class Timeline:
    """Segment boundaries and keyframe times, shared by every rendition."""

    segment_duration: float
    opening: tuple[float, ...] = ()

    @property
    def keyframe_interval(self) -> float:
        return keyframe_interval(self.segment_duration)

    @property
    def opening_end(self) -> float:
        return sum(self.opening)

    @property
    def shortest(self) -> float:
        """The shortest segment the timeline asks for (audio fragments are this long)."""
        return min((*self.opening, self.keyframe_interval))

    def boundaries(self) -> Iterator[float]:
        """Segment start times, without end: the opening's, then the regular grid."""
        t = 0.0
        for d in self.opening:
            yield t
            t += d
        k = 0
        while True:
            yield t + k * self.segment_duration
            k += 1

    def keyframe_times(self, until: float) -> list[float]:
        """Every forced keyframe time below ``until``."""
        times = []
        t = 0.0
        for d in self.opening:
            times.append(t)
            t += d
        k = 0
        while t + k * self.keyframe_interval < until - 1e-9:
            times.append(t + k * self.keyframe_interval)
            k += 1
        return [round(x, 6) for x in times if x < until - 1e-9]

    def keyframe_expression(self) -> str:
        """An ffmpeg ``-force_key_frames`` expression for these keyframe times: the n-th
        forced keyframe is the first frame at or after the n-th time."""
        starts, t = [], 0.0
        for d in self.opening:
            starts.append(t)
            t += d
        regular = f"{t:.6f}+(n_forced-{len(starts)})*{self.keyframe_interval:.6f}"
        expr = regular
        for n in reversed(range(len(starts))):
            expr = f"if(eq(n_forced,{n}),{starts[n]:.6f},{expr})"
        return f"expr:gte(t,{expr})"

    def describe(self) -> str:
        head = ", ".join(f"{d:g}" for d in self.opening)
        return (f"{head} s, then " if head else "") + f"{self.segment_duration:g} s"
