"""Responsive image sets: every width and format a page needs, each just good enough.

Contract: :func:`build_image` turns one source file into a set inside ``out_dir`` and
returns its manifest entry; :func:`build_sets` does that for many sources (``jobs``
processes, a progress stage counted in images) inside a temporary sibling of the output
folder that replaces it only when every image succeeded
(:func:`reelforge.outputs.output_folder`: never an output holding a source, with ``force``
only a previous images output), and writes ``manifest.json`` (every entry) and, per image,
``<name>/picture.html`` (see :mod:`.snippet`). Every source is read whole (limits first,
from the header) before anything is encoded, so one bad file refuses the batch at once.

For each source (read by :func:`reelforge.images.source.load`: refused before decoding
when too large, upright, sRGB, metadata stripped):

- widths: the ladder's widths below the source's, topped by the largest width the ladder
  allows (never above the source), resized in linear light;
- formats: AVIF, WebP and JPEG by default; pictures with alpha get PNG instead of JPEG;
- per width and format, the encoder quality is searched so the SSIMULACRA2 score just
  reaches ``target`` (each variant's measured score is in the manifest);
- file names carry a content hash (``name-640-1a2b3c4d5e.avif``): cache them forever;
- a ThumbHash and the dominant colour as placeholders;
- animations (GIF, animated WebP/PNG): an animated WebP and a muted MP4 loop (H.264,
  fast start), plus the still set made from the first frame for the poster.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from reelforge.errors import InputError
from reelforge.fsutil import write_text_atomic
from reelforge.images import placeholder
from reelforge.images.encoders import DEFAULT_FORMATS, FORMATS
from reelforge.images.resize import height_for, resize
from reelforge.images.search import search_quality
from reelforge.images.snippet import picture_html
from reelforge.images.source import MAX_BYTES, MAX_PIXELS, SourceImage, check, load
from reelforge.images.ssimulacra2 import Ssimulacra2Reference
from reelforge.media import ffmpeg
from reelforge.outputs import IMAGES, check_apart, check_target, output_folder
from reelforge.progress import NullProgress, Progress

WIDTHS = (320, 640, 960, 1280, 1920, 2560)
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".avif", ".gif", ".tif", ".tiff", ".bmp"}
MAX_ANIMATION_PIXELS = 1_000_000_000  # frames x width x height decoded for one animation
FALLBACK_WIDTH = 960  # the <img src> for browsers without srcset
SEARCH_LARGEST_FIRST = False


@dataclass(frozen=True)
class ImageOptions:
    widths: tuple[int, ...] = WIDTHS
    formats: tuple[str, ...] = DEFAULT_FORMATS
    target: float = 70.0  # SSIMULACRA2: 70 is "high quality", the web's usual choice
    sizes: str = "100vw"
    above_fold: frozenset[str] = field(default_factory=frozenset)  # names or file names
    keep_metadata: bool = False
    max_pixels: int = MAX_PIXELS
    max_bytes: int = MAX_BYTES
    base_url: str = ""  # prefix for URLs in the snippets (default: relative to the output)


def plan_widths(source_width: int, ladder: Sequence[int]) -> list[int]:
    """The ladder's widths below the source, topped by the largest allowed (<= source)."""
    top = min(source_width, max(ladder))
    return sorted({w for w in ladder if w < top} | {top})


def slug(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.") or "image"
    return name.lower()


def _write(folder: Path, stem: str, width: int, ext: str, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()[:10]
    name = f"{stem}-{width}-{digest}.{ext}"
    (folder / name).write_bytes(data)
    return name


def _still_set(src: SourceImage, name: str, folder: Path, opts: ImageOptions) -> dict:
    img = src.image
    formats = [f for f in opts.formats if not (src.has_alpha and not FORMATS[f].alpha)]
    fallback_fmt = "png" if src.has_alpha else "jpeg"
    if fallback_fmt not in formats:
        formats.append(fallback_fmt)
    variants: list[dict] = []
    learned: dict[str, tuple[int, float | None]] = {}  # format: (quality, slope) so far
    for width in sorted(plan_widths(img.width, opts.widths), reverse=SEARCH_LARGEST_FIRST):
        size = (width, height_for(img.size, width))
        scaled = resize(img, size)
        reference = Ssimulacra2Reference(scaled)
        for fmt_name in formats:
            fmt = FORMATS[fmt_name]
            start, slope = learned.get(fmt_name, (None, None))
            enc = search_quality(scaled, fmt, reference, opts.target, start, slope)
            learned[fmt_name] = (enc.quality, enc.slope or slope)
            variants.append({
                "format": fmt_name, "mime": fmt.mime, "width": size[0], "height": size[1],
                "file": f"{name}/{_write(folder, name, width, fmt.ext, enc.data)}",
                "bytes": len(enc.data), "quality": enc.quality,
                "ssimulacra2": round(enc.score, 2), "target_met": enc.met,
                "encodes": enc.probes,
            })  # fmt: skip
    order = {f: i for i, f in enumerate(formats)}
    variants.sort(key=lambda v: (order[v["format"]], v["width"]))
    fallbacks = [v for v in variants if v["format"] == fallback_fmt]
    fallback = min(fallbacks, key=lambda v: (abs(v["width"] - FALLBACK_WIDTH), -v["width"]))
    return {"variants": variants, "fallback": {"format": fallback_fmt, "file": fallback["file"]}}


def _frames(path: Path, max_pixels: int) -> tuple[list[Image.Image], list[int]]:
    """Composited RGBA frames and their durations (ms) of an animation."""
    with Image.open(path) as img:
        n = getattr(img, "n_frames", 1)
        if n * img.width * img.height > max_pixels:
            raise InputError(f"animation of {n} frames at {img.width}x{img.height} is over "
                             f"the {max_pixels / 1e9:.0f} gigapixel limit", path=path)  # fmt: skip
        frames, durations = [], []
        try:
            for frame in ImageSequence.Iterator(img):
                frames.append(frame.convert("RGBA"))
                ms = frame.info.get("duration", img.info.get("duration", 100))
                durations.append(max(20, int(ms or 100)))
        except (OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"animation frames are broken ({exc})", path=path) from None
    return frames, durations


def _animation(path: Path, name: str, folder: Path, width: int) -> dict:
    frames, durations = _frames(path, MAX_ANIMATION_PIXELS)
    size = (width, height_for(frames[0].size, width))
    if size != frames[0].size:
        frames = [resize(f, size) for f in frames]
    tmp = folder / f".{name}.anim.webp"
    frames[0].save(tmp, "WEBP", save_all=True, append_images=frames[1:], duration=durations,
                   loop=0, quality=75, method=4)  # fmt: skip
    webp = _write(folder, name, size[0], "webp", tmp.read_bytes())
    tmp.unlink()
    # MP4: frames on a constant 50 fps grid (GIF delays are in 10 ms units), each repeated
    # for its duration; H.264 wants even sizes, so the last row/column is padded.
    fps = 50
    even = (size[0] + size[0] % 2, size[1] + size[1] % 2)

    def raw():
        clock = 0.0
        emitted = 0
        for frame, ms in zip(frames, durations, strict=True):
            clock += ms / 1000.0
            flat = Image.new("RGB", frame.size, (255, 255, 255))
            flat.paste(frame, mask=frame.getchannel("A"))
            data = np.asarray(flat).tobytes()
            while emitted < round(clock * fps):
                emitted += 1
                yield data

    mp4_tmp = folder / f".{name}.anim.mp4"
    ffmpeg.run_with_frames(
        ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}", "-r", fps,
         "-i", "pipe:0", "-vf", f"pad={even[0]}:{even[1]},format=yuv420p", "-c:v", "libx264",
         "-preset", "medium", "-crf", "23", "-movflags", "+faststart", "-an", str(mp4_tmp)],
        raw(), subject=path)  # fmt: skip
    mp4 = _write(folder, name, size[0], "mp4", mp4_tmp.read_bytes())
    mp4_tmp.unlink()
    return {"frames": len(frames), "duration_ms": sum(durations),
            "webp": f"{name}/{webp}", "mp4": f"{name}/{mp4}"}  # fmt: skip


def build_image(path: Path, name: str, out_dir: Path, opts: ImageOptions) -> dict:
    """See the module docstring: one source's set under ``out_dir/name``."""
    src = load(path, max_pixels=opts.max_pixels, max_bytes=opts.max_bytes)
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    entry: dict = {
        "name": name, "source": str(path), "source_format": src.format,
        "width": src.size[0], "height": src.size[1], "has_alpha": src.has_alpha,
        "alt": name.replace("-", " ").replace("_", " "),
        "placeholder": {"thumbhash": placeholder.thumbhash(src.image),
                        "colour": placeholder.dominant_colour(src.image)},
        "target": {"metric": "ssimulacra2", "score": opts.target},
    }  # fmt: skip
    if opts.keep_metadata and src.copyright:
        entry["copyright"] = src.copyright
    entry.update(_still_set(src, name, folder, opts))
    if src.frames > 1:
        entry["animation"] = _animation(path, name, folder, min(src.size[0], max(opts.widths)))
    above = name in opts.above_fold or path.name in opts.above_fold
    entry["above_fold"] = above
    entry["html"] = picture_html(entry, base=opts.base_url, sizes=opts.sizes, above_fold=above)
    (folder / "picture.html").write_text(entry["html"] + "\n", encoding="utf-8")
    return entry


def collect_sources(paths: Sequence[Path]) -> list[Path]:
    """Files as given, folders searched (recursively) for image files; all must exist."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        elif p.exists():
            found.append(p)
        else:
            raise InputError("does not exist", path=p)
    if not found:
        raise InputError("no images found in " + ", ".join(str(p) for p in paths))
    return found


def _build_numbered(job: tuple[int, Path, str, Path, ImageOptions]) -> tuple[int, dict]:
    """:func:`build_image` in a pool worker, with the image's place in the batch."""
    i, *args = job
    return i, build_image(*args)


def _names(sources: list[Path]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for s in sources:
        base = slug(s)
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


def build_sets(sources: Sequence[Path], output: Path, opts: ImageOptions, *, jobs: int = 1,
               force: bool = False, progress: Progress | None = None) -> dict:  # fmt: skip
    """See the module docstring. Returns the manifest."""
    check_apart(output, sources, folder=True)
    check_target(output, IMAGES, force=force)
    files = collect_sources(sources)
    check_apart(output, files, folder=True)
    limits = {"max_pixels": opts.max_pixels, "max_bytes": opts.max_bytes}
    for f in files:  # refuse bad sources before any work starts: the limits, from headers,
        check(f, **limits)
    for f in files:  # then every picture read whole (a truncated file fails only here)
        load(f, **limits)
    names = _names(files)
    update = (progress or NullProgress()).stage("images", len(files), "images")
    entries: list[dict | None] = [None] * len(files)
    with output_folder(output, IMAGES, force=force, inputs=[*sources, *files]) as tmp:
        if jobs <= 1:
            for i, (f, n) in enumerate(zip(files, names, strict=True)):
                entries[i] = build_image(f, n, tmp, opts)
                update(i + 1)
        else:
            # A Pool, not a ProcessPoolExecutor: leaving the block (Ctrl-C, SIGTERM, an image
            # that failed) terminates the workers at once instead of waiting, for as long as
            # an image takes, for those still encoding.
            work = [(i, f, n, tmp, opts) for i, (f, n) in enumerate(zip(files, names, strict=True))]
            with multiprocessing.Pool(jobs, initializer=ffmpeg.install_worker_stop) as pool:
                for done, (i, entry) in enumerate(pool.imap_unordered(_build_numbered, work), 1):
                    entries[i] = entry
                    update(done)
        manifest = {
            "images": entries,
            "totals": {fmt: sum(v["bytes"] for e in entries if e for v in e["variants"]
                                if v["format"] == fmt)
                       for fmt in FORMATS},
        }  # fmt: skip
        write_text_atomic(tmp / "manifest.json", json.dumps(manifest, indent=2))
    return manifest
