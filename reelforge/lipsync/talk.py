"""The talk step: a portrait or a video, and speech, in; a lip-synced fast-start MP4 out.

Contract: :func:`talk` makes the face in ``face`` (a still portrait) or in ``video`` (a
video being dubbed) speak ``audio``, with the backend named in :class:`TalkOptions`:

- local renderers, ``viseme`` (offline, the default) and ``wav2lip`` (a user-supplied
  checkpoint), change only a feathered region around the face; every other pixel is the
  source's own;
- hosted APIs (``syncso``, ``fal``, ``sonic``, ``did``) get the files through their own
  upload protocols, with the keys and URLs of the :class:`~reelforge.config.Services` given
  as ``services`` (never part of the options or the report); their result is brought to the
  delivery format with our audio.

The ``viseme`` renderer shapes the mouth from phone timings (``mouth="phones"``, the
default): the ``transcript`` (text, or a subtitle file's cues) force-aligned to the audio,
else phones recognised from it (see :mod:`reelforge.voice.phones`); a transcript that does
not fit is a note, never an error. ``mouth="energy"`` opens the mouth with the speech's
loudness alone (any language, no phone models). The report's ``phones`` says how the
timings were found.

The output is H.264 + AAC, fast start: at ``fps`` (25 by default) for a portrait, at the
source's size and frame rate for a video (a phone video's rotation applied). When audio and
video differ in length, ``sync_mode`` decides (see
:data:`~reelforge.lipsync.footage.SYNC_MODES`). The result is measured with the sync meter
and ``OUT.mp4.report.json`` is written beside it; both are renamed into place only at the
end. Bad input (no face anywhere, not an image, not a video, not audio, a wrong output type,
a backend that cannot take this kind of input) is an
:class:`~reelforge.errors.InputError` and nothing is written.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from reelforge.config import Services
from reelforge.errors import InputError
from reelforge.fsutil import scratch_dir
from reelforge.lipsync.backends import LOCAL as LOCAL_RENDERERS
from reelforge.lipsync.backends import NAMES, RenderJob, hosted, local_renderer
from reelforge.lipsync.backends.viseme import (
    openness_track,
)
from reelforge.lipsync.faces import MIN_FACE_PX, Face, FaceTracker
from reelforge.lipsync.footage import (
    SYNC_MODES,
    VideoFootage,
    frame_plan,
    load_portrait,
    paste_changes,
    smooth,
    to_rgb,
    track,
)
from reelforge.lipsync.speech import RATE, band_energy, speech_mask
from reelforge.lipsync.syncmeter import measure
from reelforge.media import ffmpeg
from reelforge.media.probe import check_readable_file
from reelforge.outputs import check_apart, output_files, target_path
from reelforge.progress import NullProgress, Progress
from reelforge.voice.post import decode

LOCAL = tuple(LOCAL_RENDERERS)
MOUTHS = ("phones", "energy")
BACKENDS = NAMES
ENCODE = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-pix_fmt", "yuv420p",
          "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-movflags", "+faststart"]  # fmt: skip


@dataclass
class TalkOptions:
    backend: str = "viseme"
    fps: int = 25  # for a portrait; a video keeps its own rate
    face_index: int = 0
    motion: bool = True  # a portrait's slight head motion
    seed: int = 0
    check_sync: bool = True
    sync_mode: str = "cut"
    model: str | None = None  # hosted backends: which model (e.g. lipsync-2-pro)
    checkpoint: Path | None = None  # wav2lip weights
    device: str = "cpu"  # wav2lip: cpu, cuda, mps
    poll_interval: float = 2.0  # hosted backends: seconds between status checks
    job_timeout: float = 900.0  # hosted backends: give up after this long
    transcript: Path | None = None  # viseme: what is said (text, .srt or .vtt)
    mouth: str = "phones"  # viseme: "phones" (visemes) or "energy" (loudness only)


@dataclass
class TalkReport:
    output: str
    backend: str
    input: str  # "image" or "video"
    width: int
    height: int
    fps: float
    frames: int
    duration: float
    render_fps: float
    faces_found: int  # in the portrait; for a video, frames with the face
    speech_seconds: float
    sync: dict | None
    sync_mode: str | None = None
    source_frames: int | None = None
    notes: list[str] = field(default_factory=list)
    job: dict | None = None  # what a hosted API said about the job
    phones: dict | None = None  # viseme: how phone timings were found, how many


@dataclass
class _Picture:
    """What the frames come from, reduced to what rendering needs."""

    kind: str
    width: int
    height: int
    fps: float
    plan: np.ndarray  # source frame per output frame
    faces: list[Face | None]  # per source frame
    frames: object  # () -> iterator of source frames in plan order
    faces_found: int
    source_frames: int


def _check(opts: TalkOptions, output: Path) -> None:
    if output.suffix.lower() != ".mp4":
        raise InputError("output must be an .mp4 file", path=output)
    if opts.backend not in BACKENDS:
        raise InputError(
            f"unknown lip-sync backend {opts.backend!r}; available: {', '.join(BACKENDS)}"
        )
    if not 1 <= opts.fps <= 60:
        raise InputError("--fps must be 1 to 60")
    if opts.sync_mode not in SYNC_MODES:
        raise InputError(
            f"unknown --sync-mode {opts.sync_mode!r}; choose one of {', '.join(SYNC_MODES)}"
        )
    if opts.mouth not in MOUTHS:
        raise InputError(f"unknown --mouth {opts.mouth!r}; choose one of {', '.join(MOUTHS)}")
    if opts.backend == "wav2lip" and opts.checkpoint is None:
        raise InputError("the wav2lip backend needs --checkpoint PATH (Wav2Lip weights)")


def _find_face(image: np.ndarray, face: Path, face_index: int) -> tuple[Face, list[Face]]:
    with FaceTracker(still=True, max_faces=8) as tracker:
        found = tracker.faces(image)
    if not found:
        raise InputError("no face found in the image", path=face)
    if face_index >= len(found):
        raise InputError(f"--face-index {face_index}: only {len(found)} face(s) found",
                         path=face)  # fmt: skip
    chosen = found[face_index]
    if not chosen.large_enough:
        raise InputError(_too_small(chosen), path=face)
    return chosen, found


def check_portrait(face: str | Path, face_index: int = 0) -> None:
    """Raise :class:`InputError` (naming ``face``) unless it is a portrait :func:`talk`
    can animate: readable within the image limits, with face ``face_index`` large enough."""
    _find_face(load_portrait(Path(face), []), Path(face), face_index)


def _portrait(face: Path, opts: TalkOptions, n_audio: int, notes: list[str]) -> _Picture:
    image = load_portrait(face, notes)
    chosen, found = _find_face(image, face, opts.face_index)
    if len(found) > 1:
        notes.append(f"{len(found)} faces found; animating face {opts.face_index} by size")
    h, w = image.shape[:2]
    plan = np.zeros(n_audio, int)
    return _Picture("image", w, h, float(opts.fps), plan, [chosen],
                    lambda: (image for _ in plan), len(found), 1)  # fmt: skip


def _portrait_file(picture: _Picture, work: Path) -> Path:
    """The portrait as it was read (upright, sRGB, downscaled, even sides) in a file for a
    hosted API, so the service animates the picture our report describes."""
    path = work / "portrait.jpg"
    Image.fromarray(next(iter(picture.frames()))).save(path, quality=95)
    return path


def _too_small(face: Face) -> str:
    return (f"the face is {face.width:.0f}x{face.height:.0f} px, too small to animate "
            f"(at least {MIN_FACE_PX} px each way)")  # fmt: skip


def _video(path: Path, opts: TalkOptions, duration: float, work: Path,
           progress: Progress, notes: list[str]) -> _Picture:  # fmt: skip
    footage = VideoFootage(path)
    if footage.rotation:
        notes.append(f"video rotated by {footage.rotation} degrees: output is upright")
    update = progress.stage("tracking the face", footage.count, "frames")
    spool = work / "frames.raw" if opts.sync_mode in ("loop", "pingpong") else None

    def counted():
        sink = spool.open("wb") if spool else None
        try:
            for i, frame in enumerate(footage.frames()):
                if sink:
                    sink.write(frame.tobytes())
                update(min(i + 1, footage.count))
                yield frame
        finally:
            if sink:
                sink.close()

    tracked = smooth(track((to_rgb(yuv) for yuv in counted()), opts.face_index))
    faces = [f if f is not None and f.large_enough else None for f in tracked]
    found = sum(f is not None for f in faces)
    if not found:
        seen = [f for f in tracked if f is not None]
        if seen:
            raise InputError(_too_small(max(seen, key=lambda f: f.area)), path=path)
        raise InputError("no face found in the video", path=path)
    if found < len(faces):
        notes.append(f"no face (or one too small to animate) on {len(faces) - found} of "
                     f"{len(faces)} frames: passed through")  # fmt: skip
    fps = float(footage.fps)
    plan = frame_plan(len(faces), max(1, round(duration * fps)), opts.sync_mode)
    w, h = footage.width, footage.height

    def frames() -> Iterator[np.ndarray]:
        if spool:  # any order: read back what the tracking pass spooled
            store = np.memmap(spool, np.uint8, "r", shape=(len(faces), h * 3 // 2, w))
            for j in plan:
                yield np.array(store[j])
            return
        source, last, at = footage.frames(), None, -1
        for j in plan:  # non-decreasing: decode once, repeat the last frame where held
            while at < j:
                last, at = next(source), at + 1
            yield last

    return _Picture("video", w, h, fps, plan, faces, frames, found, len(faces))


def read_transcript(path: Path) -> str:
    """The words of a transcript file: plain text, or the cue text of an .srt/.vtt file.
    An unreadable file is an :class:`InputError`; any text at all is accepted (what does
    not fit the audio is decided by the aligner, which falls back with a warning)."""
    check_readable_file(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read the transcript ({exc.strerror})", path=path) from None
    if path.suffix.lower() in (".srt", ".vtt"):
        keep = []
        for line in text.splitlines():
            line = line.strip()
            if "-->" in line or line.isdigit() or line.upper().startswith(("WEBVTT", "NOTE")):
                continue
            keep.append(re.sub(r"<[^>]+>", "", line))
        text = "\n".join(keep)
    return text


def _mouth_renderer(opts, picture, speech, transcript: str | None, notes: list[str]):
    """The viseme renderer shaped by phone timings, and the report's ``phones`` entry."""
    from reelforge.lipsync.backends.viseme import blink_track, head_motion
    from reelforge.lipsync.mouth import MouthRenderer
    from reelforge.lipsync.visemes import mouth_track
    from reelforge.voice.phones import timings

    n = len(picture.plan)
    timing = timings(speech, RATE, transcript)
    notes.extend(timing.warnings)
    track = mouth_track(timing.phones, n, picture.fps, band_energy(speech, n, picture.fps))
    spoken = sum(p.label != "SIL" for p in timing.phones)
    entry = {"method": timing.method, "count": spoken, "words": len(timing.words)}
    if picture.kind == "image":
        blinks = blink_track(n, picture.fps, opts.seed)
        sway = head_motion(n, picture.fps, 1.5 if opts.motion else 0.0, opts.seed)
        return MouthRenderer(track, blinks, sway, still=True), entry
    return MouthRenderer(track, still=False), entry


def _render_local(opts, picture, speech, audio, tmp, progress, renderer=None) -> None:
    n = len(picture.plan)
    renderer = renderer or local_renderer(opts.backend, RenderJob(
        kind=picture.kind, fps=picture.fps, frames=n, speech=speech, motion=opts.motion,
        seed=opts.seed, checkpoint=opts.checkpoint, device=opts.device))  # fmt: skip
    update = progress.stage("talk", n, "frames")

    video = picture.kind == "video"
    sources: deque = deque()  # a video's own YUV frames, waiting for their rendered faces

    def items():
        for i, (j, frame) in enumerate(zip(picture.plan, picture.frames(), strict=False)):
            if video:
                rgb = to_rgb(frame)
                sources.append((frame, rgb))
                frame = rgb
            yield i, frame, picture.faces[j]

    def raw():
        for i, frame in enumerate(renderer.run(items())):
            if video:  # only the pixels the renderer changed leave the source's YUV
                yuv, before = sources.popleft()
                frame = paste_changes(yuv, before, frame)
            yield np.ascontiguousarray(frame).tobytes()
            update(i + 1)

    pix_fmt = "yuv420p" if video else "rgb24"
    ffmpeg.run_with_frames(
        ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{picture.width}x{picture.height}",
         "-r", f"{picture.fps:.6g}", "-i", "pipe:0", "-i", str(audio),
         "-map", "0:v", "-map", "1:a:0", "-af", "apad", *ENCODE,
         "-t", f"{n / picture.fps:.3f}", str(tmp)],
        raw(),
        subject=audio,
    )  # fmt: skip


def _render_hosted(opts, services: Services, picture, visual: Path, audio, tmp, work,
                   progress) -> dict:  # fmt: skip
    backend = hosted(opts.backend, services, opts.model, opts.poll_interval, opts.job_timeout)
    n = len(picture.plan)
    if picture.kind not in backend.accepts:
        if picture.kind == "video":
            raise InputError(f"the {opts.backend} backend animates a still portrait; "
                             "use --face IMAGE")  # fmt: skip
        # A video-only service gets the portrait as a still clip as long as the speech.
        still = work / "portrait.mp4"
        ffmpeg.run(["-loop", "1", "-framerate", f"{picture.fps:g}", "-i", str(visual),
                    "-t", f"{n / picture.fps:.3f}", "-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "14",
                    "-pix_fmt", "yuv420p", str(still)], subject=visual)  # fmt: skip
        visual = still
    update = progress.stage(f"talk ({opts.backend})", 1, "jobs")
    video, job = backend.render(visual, audio, opts.sync_mode)
    update(1)
    raw = work / "hosted.mp4"
    raw.write_bytes(video)
    # Our delivery format, our audio, our length; a short result holds its last frame.
    size = f"scale={picture.width}:{picture.height}:flags=lanczos,setsar=1"
    ffmpeg.run(["-i", str(raw), "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0",
                "-vf", f"{size},tpad=stop=-1:stop_mode=clone", "-af", "apad",
                "-r", f"{picture.fps:.6g}", *ENCODE, "-t", f"{n / picture.fps:.3f}", str(tmp)],
               subject=raw)  # fmt: skip
    return job


def talk(
    face: str | Path | None,
    audio: str | Path,
    output: str | Path,
    options: TalkOptions | None = None,
    progress: Progress | None = None,
    *,
    video: str | Path | None = None,
    services: Services | None = None,
) -> TalkReport:
    """See the module docstring. Give exactly one of ``face`` and ``video``; a hosted
    backend needs ``services`` holding its key."""
    opts = options or TalkOptions()
    progress = progress or NullProgress()
    audio, output = Path(audio), Path(output)
    if (face is None) == (video is None):
        raise InputError("give either --face IMAGE or --video VIDEO")
    check_apart(output, [audio, face, video, opts.transcript], folder=False)
    _check(opts, output)
    notes: list[str] = []
    check_readable_file(audio)
    transcript = read_transcript(Path(opts.transcript)) if opts.transcript else None
    try:
        speech = decode(audio, RATE)
    except ValueError:
        raise InputError("not audio that can be read", path=audio) from None
    if speech.size < RATE // 10:
        raise InputError("audio is shorter than 0.1 s", path=audio)
    duration = speech.size / RATE
    report_path = output.with_suffix(".mp4.report.json")
    with (
        output_files(
            output, companions=[report_path], inputs=[audio, face, video, opts.checkpoint]
        ) as files,
        scratch_dir(target_path(output)) as work,
    ):
        if face is not None:
            picture = _portrait(Path(face), opts, max(1, round(duration * opts.fps)), notes)
        else:
            picture = _video(Path(video), opts, duration, work, progress, notes)
        n = len(picture.plan)
        energy = band_energy(speech, n, picture.fps)
        if not openness_track(energy).any():
            notes.append("no speech found in the audio: the mouth stays closed")
        tmp = work / "talk.mp4"
        job = phones = renderer = None
        if opts.backend == "viseme" and opts.mouth == "phones":
            analysed = time.monotonic()
            renderer, phones = _mouth_renderer(opts, picture, speech, transcript, notes)
            phones["seconds"] = round(time.monotonic() - analysed, 2)
        started = time.monotonic()
        if opts.backend in LOCAL:
            _render_local(opts, picture, speech, audio, tmp, progress, renderer)
        else:
            visual = Path(video) if video is not None else _portrait_file(picture, work)
            job = _render_hosted(opts, services or Services(), picture, visual, audio, tmp,
                                 work, progress)  # fmt: skip
        render_fps = n / max(time.monotonic() - started, 1e-6)
        reading = measure(tmp, face_index=0).as_dict() if opts.check_sync else None
        report = TalkReport(
            output=str(output), backend=opts.backend, input=picture.kind,
            width=picture.width, height=picture.height, fps=round(picture.fps, 3), frames=n,
            duration=round(n / picture.fps, 3), render_fps=round(render_fps, 1),
            faces_found=picture.faces_found,
            speech_seconds=round(float(speech_mask(energy).sum()) / picture.fps, 2),
            sync=reading, sync_mode=opts.sync_mode if picture.kind == "video" else None,
            source_frames=picture.source_frames if picture.kind == "video" else None,
            notes=notes, job=job, phones=phones,
        )  # fmt: skip
        report_tmp = work / "report.json"
        report_tmp.write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
        tmp.replace(files.temp(output))  # the claim renames both into place
        report_tmp.replace(files.temp(report_path))
    return report
