"""WebVTT subtitles: one cue per turn, timed from the synthesised audio."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SubtitleCue:
    start: float
    end: float
    speaker: str
    text: str


def timestamp(t: float) -> str:
    ms = max(0, round(t * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def webvtt(cues: list[SubtitleCue]) -> str:
    out = ["WEBVTT", ""]
    for n, cue in enumerate(cues, 1):
        text = cue.text.replace("-->", "->").replace("&", "&amp;").replace("<", "&lt;")
        speaker = cue.speaker.replace(">", "").replace("&", "&amp;")
        out += [str(n), f"{timestamp(cue.start)} --> {timestamp(cue.end)}",
                f"<v {speaker}>{text}", ""]  # fmt: skip
    return "\n".join(out)
