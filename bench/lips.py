"""Benchmark: the offline mouth against real speakers, energy-driven and phone-driven, in one run.

For each talking-head clip (GRID x3, Obama x2), two tests, each with both ``--mouth`` modes:

- portrait: the clip's first frame is the portrait, the clip's own audio the speech;
- dub: the clip itself re-voiced with its own audio.

The output's mouth is measured with the same face mesh as the real speaker's (inner-lip
opening and mouth-corner width over the outer eye-corner distance), frame by frame on the
output's time line, and compared: opening correlation, width correlation, closure hits (of
the frames where the speaker's lips are in their lowest tenth, the share where ours is
closed: under 15% of its own range), motion ratio (total frame-to-frame opening change,
ours over the speaker's), mean opening error over a still face's (the first frame's
opening held), and the sync meter's offset on the output. Also frames per second at 512x512
(the astronaut portrait, the 9.7 s LJ Speech clip) for both modes, phone analysis apart.
Targets (mean over the clips): opening correlation >= 0.70, width correlation >= 0.40,
closures >= 0.80, opening error <= 0.6x a still face's, motion 0.7-1.4x, sync within 40 ms,
>= 25 fps at 512x512.

A contact sheet (mouth crops over time: the speaker, energy, phones) is written for each
clip's portrait test to the output folder (``--out``, default ``.bench/lips``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reelforge.lipsync.footage import VideoFootage, to_rgb  # noqa: E402
from reelforge.lipsync.talk import TalkOptions, talk  # noqa: E402
from reelforge.media.ffmpeg import ffmpeg_exe  # noqa: E402

MEDIA = Path(os.environ.get("REELFORGE_TEST_MEDIA", ROOT.parent / "shared" / "media"))
CLIPS = {  # clip: transcript (None: phones recognised from the audio)
    "grid_bbaf2n.mpg": "bin blue at f two now",
    "grid_brbk7n.mpg": "bin red by k seven now",
    "grid_lbax4n.mpg": "lay blue at x four now",
    "obama_weekly_families.mp4": None,  # starts mid-sentence: no full transcript
    "obama_weekly_answers.mp4": "But here's the thing: we have the answers to these problems.",
}
MODES = ("energy", "phones")
EYES, LIPS, CORNERS = (33, 263), (13, 14), (61, 291)


def ff(*args) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "fatal", "-y", *map(str, args)], check=True)


def mouth_series(path: Path) -> tuple[np.ndarray, np.ndarray, float, list]:
    """Per frame: opening and width over the eye distance (NaN without a face), the frame
    rate, and the frames' RGB (for the contact sheet)."""
    from reelforge.lipsync.faces import FaceTracker

    footage = VideoFootage(path)
    opening, width, frames = [], [], []
    with FaceTracker() as tracker:
        for yuv in footage.frames():
            rgb = to_rgb(yuv)
            face = tracker.track(rgb)
            frames.append((rgb, face))
            if face is None:
                opening.append(np.nan)
                width.append(np.nan)
                continue
            p = face.points
            eyes = np.linalg.norm(p[EYES[0]] - p[EYES[1]])
            opening.append(np.linalg.norm(p[LIPS[0]] - p[LIPS[1]]) / eyes)
            width.append(np.linalg.norm(p[CORNERS[0]] - p[CORNERS[1]]) / eyes)
    return np.array(opening), np.array(width), float(footage.fps), frames


def on_timeline(values: np.ndarray, fps: float, n: int, out_fps: float) -> np.ndarray:
    t = (np.arange(n) + 0.5) / out_fps
    src = (np.arange(values.size) + 0.5) / fps
    ok = ~np.isnan(values)
    return np.interp(t, src[ok], values[ok])


def corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def compare(ours_open, ours_width, real_open, real_width) -> dict:
    n = min(ours_open.size, real_open.size)
    o, w, ro, rw = ours_open[:n], ours_width[:n], real_open[:n], real_width[:n]
    closed_real = ro <= np.percentile(ro, 10)
    closed_ours = o <= o.min() + 0.15 * (o.max() - o.min())
    still = np.full(n, ro[0])
    motion_real = np.abs(np.diff(ro)).sum()
    return {
        "open_r": corr(o, ro),
        "width_r": corr(w, rw),
        "closures": float(closed_ours[closed_real].mean()),
        "motion": float(np.abs(np.diff(o)).sum() / max(motion_real, 1e-9)),
        "error": float(np.abs(o - ro).mean() / max(np.abs(still - ro).mean(), 1e-9)),
    }


def crop_box(face, shape) -> tuple[int, int, int, int]:
    p = face.points
    w = float(np.linalg.norm(p[CORNERS[0]] - p[CORNERS[1]]))
    cx, cy = (p[CORNERS[0]] + p[CORNERS[1]]) / 2 + np.array([0, 0.25 * w])
    half = 0.9 * w
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - 0.75 * half))
    x1, y1 = int(min(shape[1], cx + half)), int(min(shape[0], cy + 0.75 * half))
    return x0, y0, x1, y1


def contact_sheet(rows: dict[str, list], fps_of: dict[str, float], path: Path) -> None:
    """Ten mouth crops over the speech per row (same instants), rows labelled."""
    from PIL import Image, ImageDraw

    real = rows["speaker"]
    n_t = 10
    duration = len(real) / fps_of["speaker"]
    times = np.linspace(0.15 * duration, 0.85 * duration, n_t)
    tile_w, tile_h, label = 120, 90, 80
    sheet = Image.new("RGB", (label + n_t * tile_w, len(rows) * tile_h), "white")
    draw = ImageDraw.Draw(sheet)
    box = None
    for r, (name, frames) in enumerate(rows.items()):
        draw.text((4, r * tile_h + tile_h // 2 - 6), name, fill="black")
        for k, t in enumerate(times):
            i = min(len(frames) - 1, int(t * fps_of[name]))
            rgb, face = frames[i]
            if face is not None and (box is None or name == "speaker"):
                box = crop_box(face, rgb.shape)
            if box is None:
                continue
            tile = Image.fromarray(rgb).crop(box).resize((tile_w, tile_h))
            sheet.paste(tile, (label + k * tile_w, r * tile_h))
    for k, t in enumerate(times):
        draw.text((label + k * tile_w + 2, 2), f"{t:.2f}s", fill="yellow")
    sheet.save(path)


def run_clip(clip: str, transcript: str | None, work: Path, out: Path) -> dict:
    src = MEDIA / "video" / clip
    stem = Path(clip).stem
    audio, still, text = work / f"{stem}.wav", work / f"{stem}.png", work / f"{stem}.txt"
    ff("-i", src, "-vn", "-ac", "1", "-ar", "16000", audio)
    ff("-i", src, "-frames:v", "1", still)
    real_open, real_width, real_fps, real_frames = mouth_series(src)
    if transcript:
        text.write_text(transcript)
    results, sheet_rows, sheet_fps = {}, {"speaker": real_frames}, {"speaker": real_fps}
    for test in ("portrait", "dub"):
        for mode in MODES:
            opts = TalkOptions(motion=False, mouth=mode, transcript=text if transcript else None)
            video = work / f"{stem}-{test}-{mode}.mp4"
            if test == "portrait":
                report = talk(still, audio, video, opts)
            else:
                report = talk(None, audio, video, opts, video=src)
            o, w, fps, frames = mouth_series(video)
            ro = on_timeline(real_open, real_fps, o.size, fps)
            rw = on_timeline(real_width, real_fps, o.size, fps)
            o = np.where(np.isnan(o), np.nanmean(o), o)
            w = np.where(np.isnan(w), np.nanmean(w), w)
            m = compare(o, w, ro, rw)
            sync = report.sync or {}
            # an undetermined reading (too little speech, no clear peak) is no measurement
            m["sync_ms"] = (float(sync["offset_ms"]) if sync.get("determined")
                            else float("nan"))  # fmt: skip
            m["phones"] = (report.phones or {}).get("method", "-")
            results[(test, mode)] = m
            if test == "portrait":
                sheet_rows[mode] = frames
                sheet_fps[mode] = fps
    contact_sheet(sheet_rows, sheet_fps, out / f"{stem}.png")
    return results


def speed(work: Path) -> dict[str, tuple[float, float, float]]:
    """(render fps, phone analysis seconds, whole call fps) at 512x512, per mode."""
    face = MEDIA / "faces" / "astronaut_eileen_collins.png"
    audio = MEDIA / "speech" / "LJ001-0001.wav"
    out = {}
    for mode in MODES:
        t0 = time.monotonic()
        report = talk(face, audio, work / f"speed-{mode}.mp4",
                      TalkOptions(mouth=mode, check_sync=False))  # fmt: skip
        wall = time.monotonic() - t0
        analysis = (report.phones or {}).get("seconds", 0.0)
        out[mode] = (report.render_fps, analysis, report.frames / wall)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "lips")
    parser.add_argument("--clips", nargs="*", default=list(CLIPS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    keys = ("open_r", "width_r", "closures", "motion", "error", "sync_ms")
    table: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for clip in args.clips:
            t0 = time.monotonic()
            results = run_clip(clip, CLIPS[clip], work, args.out)
            print(f"{clip} ({time.monotonic() - t0:.0f} s)")
            for (test, mode), m in results.items():
                table.setdefault((test, mode), []).append(m)
                cells = "  ".join(f"{k} {m[k]:+.2f}" if k != "sync_ms" else (
                    f"sync {m[k]:+.0f} ms" if m[k] == m[k] else "sync undetermined")
                                  for k in keys)  # fmt: skip
                print(f"  {test:8s} {mode:6s} [{m['phones']:11s}] {cells}")
        print("mean over the clips (targets: open_r >= 0.70, width_r >= 0.40, closures >= "
              "0.80, error <= 0.60, motion 0.7-1.4, |sync| <= 40 ms)")  # fmt: skip
        for (test, mode), rows in table.items():
            mean = {k: float(np.nanmean([r[k] for r in rows])) for k in keys[:-1]}
            read = [abs(r["sync_ms"]) for r in rows if r["sync_ms"] == r["sync_ms"]]
            worst = f"{max(read):.0f} ms" if read else "n/a"
            cells = "  ".join(f"{k} {mean[k]:+.2f}" for k in keys[:-1])
            print(
                f"  {test:8s} {mode:6s} {cells}  |sync| max {worst} "
                f"({len(read)} of {len(rows)} clips determined)"
            )
        for mode, (render, analysis, whole) in speed(work).items():
            print(f"512x512 {mode:6s}: render {render:.1f} fps, phone analysis {analysis:.2f} s"
                  f" for 9.7 s of speech, whole call {whole:.1f} fps")  # fmt: skip
    print(f"contact sheets: {args.out}")


if __name__ == "__main__":
    main()
