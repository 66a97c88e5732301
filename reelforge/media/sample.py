"""Sample media made from ffmpeg's own test sources (no third-party content).

Contract: :func:`make_sample` writes an H.264/AAC MP4 with a moving test pattern, a running
timecode and a tone, to a temporary sibling first and then renames it into place
(:func:`reelforge.outputs.output_files`: locked, checked writable before ffmpeg starts).
"""

from __future__ import annotations

from pathlib import Path

from reelforge.errors import InputError
from reelforge.media import ffmpeg
from reelforge.outputs import output_files


def make_sample(
    output: Path,
    *,
    duration: float = 12.0,
    width: int = 1280,
    height: int = 720,
    fps: int = 30,
    audio: bool = True,
) -> Path:
    if duration <= 0 or width < 16 or height < 16 or width % 2 or height % 2:
        raise InputError("sample needs a positive duration and even width and height >= 16")
    args = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={duration}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=330:beep_factor=4:duration={duration}"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "160k", "-ac", "2"]
    with output_files(output) as files:
        ffmpeg.run([*args, "-movflags", "+faststart", str(files.temp(output))],
                   subject=output)  # fmt: skip
    return output
