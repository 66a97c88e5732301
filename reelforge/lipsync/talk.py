"""The talk step: a portrait and speech in, a fast-start talking-head MP4 out.

Contract: :func:`talk` animates the face in ``face`` (the largest, or ``face_index`` by size)
to ``audio`` with the offline ``viseme`` animator, writes H.264 + AAC at ``fps`` (25 by
default) as a fast-start MP4 through a temporary sibling, then measures the result with the
sync meter and writes ``OUT.report.json`` beside it. Bad input (no face, not an image, not
audio, a wrong output type) is an :class:`~reelforge.errors.InputError` and nothing is
written. Images larger than 1920 px are downscaled first, with a note in the report.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from reelforge.errors import InputError
from reelforge.lipsync.backends.viseme import (
    VisemeAnimator,
    blink_track,
    head_motion,
    openness_track,
)
from reelforge.lipsync.faces import FaceTracker
from reelforge.lipsync.speech import RATE, band_energy, speech_mask
from reelforge.lipsync.syncmeter import measure
from reelforge.media import ffmpeg
from reelforge.media.probe import check_readable_file
from reelforge.progress import NullProgress, Progress
from reelforge.voice.post import decode

MAX_SIDE = 1920
BACKENDS = ("viseme", "did")


@dataclass
class TalkOptions:
    backend: str = "viseme"
    fps: int = 25
    face_index: int = 0
    motion: bool = True
    seed: int = 0
    check_sync: bool = True
    poll_interval: float = 2.0  # hosted backends: seconds between status checks
    job_timeout: float = 900.0  # hosted backends: give up after this long


@dataclass
class TalkReport:
    output: str
    backend: str
    width: int
    height: int
    fps: int
    frames: int
    duration: float
    render_fps: float
    faces_found: int
    speech_seconds: float
    sync: dict | None
    notes: list[str] = field(default_factory=list)
    job: dict | None = None  # what a hosted API said about the job


def load_portrait(path: Path, notes: list[str]) -> np.ndarray:
    check_readable_file(path)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
    except (UnidentifiedImageError, OSError):
        raise InputError("not an image that can be read", path=path) from None
    if max(img.size) > MAX_SIDE:
        scale = MAX_SIDE / max(img.size)
        size = (round(img.width * scale), round(img.height * scale))
        notes.append(f"image downscaled from {img.width}x{img.height} to {size[0]}x{size[1]}")
        img = img.resize(size, Image.Resampling.LANCZOS)
    w, h = img.width - img.width % 2, img.height - img.height % 2
    return np.asarray(img)[:h, :w].copy()


def talk(
    face: str | Path,
    audio: str | Path,
    output: str | Path,
    options: TalkOptions | None = None,
    progress: Progress | None = None,
) -> TalkReport:
    opts = options or TalkOptions()
    progress = progress or NullProgress()
    face, audio, output = Path(face), Path(audio), Path(output)
    if output.suffix.lower() != ".mp4":
        raise InputError("output must be an .mp4 file", path=output)
    if opts.backend not in BACKENDS:
        raise InputError(
            f"unknown lip-sync backend {opts.backend!r}; available: {', '.join(BACKENDS)}"
        )
    if not 1 <= opts.fps <= 60:
        raise InputError("--fps must be 1 to 60")
    notes: list[str] = []
    image = load_portrait(face, notes)
    with FaceTracker(still=True, max_faces=8) as tracker:
        faces = tracker.faces(image)
    if not faces:
        raise InputError("no face found in the image", path=face)
    if opts.face_index >= len(faces):
        raise InputError(
            f"--face-index {opts.face_index}: only {len(faces)} face(s) found", path=face
        )
    if len(faces) > 1:
        notes.append(f"{len(faces)} faces found; animating face {opts.face_index} by size")
    check_readable_file(audio)
    try:
        speech = decode(audio, RATE)
    except ValueError:
        raise InputError("not audio that can be read", path=audio) from None
    if speech.size < RATE // 10:
        raise InputError("audio is shorter than 0.1 s", path=audio)
    duration = speech.size / RATE
    n = max(1, round(duration * opts.fps))
    energy = band_energy(speech, n, opts.fps)
    spoken = speech_mask(energy)
    openness = openness_track(energy)
    if not openness.any():
        notes.append("no speech found in the audio: the mouth stays closed")
    blinks = blink_track(n, opts.fps, opts.seed)
    sway = head_motion(n, opts.fps, 1.5 if opts.motion else 0.0, opts.seed)
    h, w = image.shape[:2]
    started = time.monotonic()
    output.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = output.with_name(f".{output.stem}.{tag}.partial.mp4")
    raw = output.with_name(f".{output.stem}.{tag}.hosted.mp4")
    report_path = output.with_suffix(".mp4.report.json")
    tmp_report = report_path.with_name(f".{report_path.name}.{tag}")
    job = None
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
              "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-movflags", "+faststart"]  # fmt: skip
    try:
        if opts.backend == "viseme":
            animator = VisemeAnimator(image, faces[opts.face_index])
            update = progress.stage("talk", n, "frames")

            def frames():
                for i in range(n):
                    pose = (float(openness[i]), float(blinks[i]), tuple(sway[i]))
                    yield animator.frame(*pose).tobytes()
                    update(i + 1)

            ffmpeg.run_with_frames(
                ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(opts.fps),
                 "-i", "pipe:0", "-i", str(audio), "-map", "0:v", "-map", "1:a:0", *encode,
                 "-t", f"{n / opts.fps:.3f}", str(tmp)],
                frames(),
                subject=audio,
            )  # fmt: skip
        else:
            from reelforge.lipsync.backends.did import DidBackend

            update = progress.stage("talk (D-ID)", 1, "jobs")
            hosted = DidBackend(poll_interval=opts.poll_interval, timeout=opts.job_timeout)
            video, job = hosted.render(face, audio)
            raw.write_bytes(video)
            update(1)
            # Bring the hosted result to our delivery format, with the original audio.
            ffmpeg.run(["-i", str(raw), "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0",
                        "-r", str(opts.fps), *encode, "-t", f"{duration:.3f}", str(tmp)],
                       subject=raw)  # fmt: skip
        render_fps = n / max(time.monotonic() - started, 1e-6)
        reading = measure(tmp).as_dict() if opts.check_sync else None
        report = TalkReport(
            output=str(output), backend=opts.backend, width=w, height=h, fps=opts.fps,
            frames=n, duration=round(n / opts.fps, 3), render_fps=round(render_fps, 1),
            faces_found=len(faces), speech_seconds=round(float(spoken.sum()) / opts.fps, 2),
            sync=reading, notes=notes, job=job,
        )  # fmt: skip
        tmp_report.write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
        tmp.replace(output)
        tmp_report.replace(report_path)
    finally:
        for leftover in (tmp, raw, tmp_report):
            leftover.unlink(missing_ok=True)
    return report
