"""The video codecs a ladder can use, and how each encoder is driven.

Contract: :data:`CODECS` names every codec (``h264``, ``hevc``, ``vp9``, ``av1``);
:func:`parse_codecs` turns ``"h264,av1"`` into specs, refusing unknown names and codecs whose
encoder this ffmpeg build lacks (one-line :class:`~reelforge.errors.InputError`).
:meth:`CodecSpec.args` gives one rendition's encoder arguments: target bitrate with a VBV
cap (1.5x, 1.5 s) where the encoder supports one, a fixed GOP of the timeline's keyframe
interval with no scene-cut keyframes, closed GOPs and the timeline's keyframes forced, so
every codec's keyframes fall at the same times (the input is constant frame rate), and the
colour tags of the output. A rendition with a CRF (per-title H.264 rungs, every rung of a
chunked encode) is encoded with capped CRF instead: x264 and x265 ``-crf`` under the VBV
cap, libvpx-vp9 constrained quality (``-crf`` with the peak rate as ``-b:v``), SVT-AV1 CRF
with ``mbr`` at the peak rate.

Presets (``--preset``):

======== ============ ============ =================== ==============
preset   x264         x265         libvpx-vp9          SVT-AV1
======== ============ ============ =================== ==============
fast     veryfast     veryfast     good, cpu-used 4    preset 10
balanced medium       medium       good, cpu-used 3    preset 8
best     slow         slow         good, cpu-used 1    preset 5
======== ============ ============ =================== ==============

Bitrates: each codec covers the whole ladder (every resolution of the H.264 ladder) at the
H.264 rung's bitrate times ``bitrate_factor`` (HEVC 0.65 and AV1 0.55, as Apple's HEVC
ladder and published AV1 results suggest; VP9 0.70), never under 100 kb/s.
"""

from __future__ import annotations

import functools
import math
import subprocess
from dataclasses import dataclass

from reelforge.errors import InputError
from reelforge.media import ffmpeg
from reelforge.video.ladder import Rendition
from reelforge.video.timeline import Timeline

PRESETS = ("fast", "balanced", "best")


@dataclass(frozen=True)
class Colour:
    """Output colour tags: BT.709 SDR 8-bit, or the source's own for 10-bit outputs."""

    primaries: str = "bt709"
    transfer: str = "bt709"
    matrix: str = "bt709"
    ten_bit: bool = False

    @property
    def pix_fmt(self) -> str:
        return "yuv420p10le" if self.ten_bit else "yuv420p"


SDR = Colour()


@dataclass(frozen=True)
class CodecSpec:
    name: str
    encoder: str
    bitrate_factor: float
    presets: dict[str, str]
    keeps_ten_bit: bool  # a 10-bit or HDR source stays 10-bit in this codec

    def args(self, r: Rendition, timeline: Timeline, preset: str,
             colour: Colour = SDR, threads: int | None = None) -> list[str]:  # fmt: skip
        """The encoder arguments of rendition ``r``. ``r.crf`` set: capped CRF (the CRF
        sets the quality, the VBV cap the peaks) in every codec; else the bitrate target.
        ``threads``: the encoder's thread count (None: the encoder's own choice); 1 when
        several encodes share the cores (a chunk of a chunked encode among others)."""
        gop = max(1, round(timeline.keyframe_interval * r.fps))
        limit = ["-threads", str(threads)] if threads else []
        tags = ["-colorspace", colour.matrix, "-color_primaries", colour.primaries,
                "-color_trc", colour.transfer, "-color_range", "tv"]  # fmt: skip
        rate = ["-b:v", f"{r.bitrate_kbps}k"]
        vbv = ["-maxrate", f"{r.maxrate_kbps}k", "-bufsize", f"{r.bufsize_kbits}k"]
        forced = ["-force_key_frames", timeline.keyframe_expression()]
        p = self.presets[preset]
        if self.name == "h264":
            if r.crf is not None:  # capped CRF: quality from the analysis, VBV as the cap
                rate = ["-crf", f"{r.crf:g}"]
            return ["-c:v", "libx264", "-preset", p, "-profile:v", "high", *rate, *vbv,
                    "-g", str(gop + 1), "-keyint_min", str(gop), "-sc_threshold", "0",
                    "-forced-idr", "1", *forced, "-x264-params", "open-gop=0:scenecut=0",
                    *limit, *tags]  # fmt: skip
        if self.name == "hevc":
            # SAO off: it smooths fine texture; measured here it cost 1.5-3.7 points of
            # BD-rate (VMAF) against x264 and time as well (tears -19.5% -> -21.4%, talking
            # head -20.8% -> -24.5%).
            params = (f"keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:no-sao=1"
                      ":log-level=error")  # fmt: skip
            if colour.transfer in ("smpte2084", "arib-std-b67"):
                params += ":hdr10-opt=1:repeat-headers=0"
            if threads:
                params += f":pools={threads}:frame-threads={threads}"
            if r.crf is not None:  # capped CRF: the VBV (-maxrate, -bufsize) is the cap
                rate = ["-crf", f"{r.crf:g}"]
            return ["-c:v", "libx265", "-preset", p,
                    "-profile:v", "main10" if colour.ten_bit else "main", *rate, *vbv,
                    "-forced-idr", "1", *forced, "-x265-params", params, "-tag:v", "hvc1",
                    *tags]  # fmt: skip
        if self.name == "vp9":
            tiles = max(0, min(4, int(math.log2(max(1, r.width // 256)))))
            if r.crf is not None:  # constrained quality: the CRF, capped at the peak rate
                rate = ["-crf", str(round(r.crf)), "-b:v", f"{r.maxrate_kbps}k"]
            return ["-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", p,
                    "-row-mt", "1", "-tile-columns", str(tiles), "-frame-parallel", "0",
                    "-auto-alt-ref", "1", "-lag-in-frames", "25", *rate, *vbv,
                    "-g", str(gop), "-keyint_min", str(gop), *forced,
                    "-profile:v", "2" if colour.ten_bit else "0", *limit, *tags]  # fmt: skip
        if self.name == "av1":
            # SVT-AV1: VBR at the target; fixed GOP on the grid, closed (key frames); the
            # opening's extra keyframes forced (SVT-AV1 4.x honours forced key frames).
            # maxsection-pct=150: no GOP over 1.5x the target, or a low rung's short opening
            # segments (a key frame each) peaked at 2.3x its average (Apple asks <= 2x);
            # median BD-rate against H.264 on the shared clips unchanged (-20.2% both).
            params = f"keyint={gop}:scd=0:irefresh-type=2:rc=1:maxsection-pct=150"
            if r.crf is not None:  # capped CRF: CRF mode with a maximum bitrate
                rate = ["-crf", str(round(r.crf))]
                params = f"keyint={gop}:scd=0:irefresh-type=2:rc=0:mbr={r.maxrate_kbps}"
            if threads:
                params += f":lp={threads}"
            return ["-c:v", "libsvtav1", "-preset", p, *rate, "-g", str(gop), *forced,
                    "-svtav1-params", params, *tags]  # fmt: skip
        raise ValueError(self.name)


CODECS: dict[str, CodecSpec] = {
    "h264": CodecSpec("h264", "libx264", 1.0,
                      {"fast": "veryfast", "balanced": "medium", "best": "slow"}, False),
    "hevc": CodecSpec("hevc", "libx265", 0.65,
                      {"fast": "veryfast", "balanced": "medium", "best": "slow"}, True),
    "vp9": CodecSpec("vp9", "libvpx-vp9", 0.70,
                     {"fast": "4", "balanced": "3", "best": "1"}, True),
    "av1": CodecSpec("av1", "libsvtav1", 0.55,
                     {"fast": "10", "balanced": "8", "best": "5"}, True),
}  # fmt: skip


@functools.cache
def available_encoders() -> frozenset[str]:
    """Encoder names this ffmpeg build offers."""
    out = subprocess.run([ffmpeg.ffmpeg_exe(), "-hide_banner", "-encoders"],
                         capture_output=True, text=True, check=False).stdout  # fmt: skip
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def parse_codecs(text: str) -> list[CodecSpec]:
    """``"h264,av1"`` -> specs, in the order given, without repeats."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError("--codecs needs at least one of: " + ", ".join(CODECS))
    specs = []
    for name in dict.fromkeys(names):
        if name not in CODECS:
            raise InputError(f"unknown codec {name!r} in --codecs; choose from "
                             + ", ".join(CODECS))  # fmt: skip
        spec = CODECS[name]
        if spec.encoder not in available_encoders():
            raise InputError(f"codec {name}: this ffmpeg build has no {spec.encoder} encoder")
        specs.append(spec)
    return specs
