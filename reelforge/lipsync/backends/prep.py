"""Input preparation shared by hosted lip-sync backends.

Contract: :func:`mp3` writes ``audio`` as a 44.1 kHz mono 192 kb/s MP3 into ``folder``
(services such as HeyGen's asset upload and Synthesia's script audio take MP3 only) and
returns its path; :func:`video_as` and :func:`audio_as` hand a file on as it is when the
service takes its container, else a converted copy in ``folder``; inputs are never
modified. :func:`reason` picks the service's own words
for why a job failed out of a status document (the first non-empty of ``fields``, looked up
by dotted path), scrubbed of the key and cut to one line of at most 200 characters.
"""

from __future__ import annotations

from pathlib import Path

from reelforge.media import ffmpeg


def mp3(audio: Path, folder: Path) -> Path:
    out = folder / f"{audio.stem}.mp3"
    ffmpeg.run(
        [
            "-i",
            str(audio),
            "-vn",
            "-ac",
            "1",
            "-ar",
            "44100",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "192k",
            str(out),
        ],
        subject=audio,
    )
    return out


def reason(status: dict, fields: tuple[str, ...], scrub=lambda s: s) -> str:
    for name in fields:
        value: object = status
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, dict):
            value = value.get("message") or value.get("detail") or value.get("description")
        if value:
            return " ".join(scrub(str(value)).split())[:200]
    return ""


def video_as(video: Path, suffixes: tuple[str, ...], folder: Path) -> Path:
    """``video`` itself when its container is one of ``suffixes``, else its picture
    re-encoded into ``folder`` as H.264 MP4 (near-lossless, CRF 16; the sound is dropped:
    the service gets our speech separately)."""
    if video.suffix.lower() in suffixes:
        return video
    out = folder / f"{video.stem}.mp4"
    ffmpeg.run(
        [
            "-i",
            str(video),
            "-map",
            "0:v:0",
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "16",
            "-pix_fmt",
            "yuv420p",
            str(out),
        ],
        subject=video,
    )
    return out


def audio_as(audio: Path, suffixes: tuple[str, ...], folder: Path) -> Path:
    """``audio`` itself when its container is one of ``suffixes``, else :func:`mp3`."""
    return audio if audio.suffix.lower() in suffixes else mp3(audio, folder)
