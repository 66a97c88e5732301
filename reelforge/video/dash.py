"""Write a DASH MPD over the same CMAF tracks the HLS playlists use.

Contract: a static MPD (ISO/IEC 23009-1, live and CMAF profiles) with one adaptation set
per kind (and per video codec), explicit ``SegmentList`` entries (file names carry content
hashes, so templates cannot name them) and a ``SegmentTimeline`` with exact durations in
each track's timescale. ``bandwidth`` is each representation's measured peak segment rate.
Every audio track (the main one first, then each alternate language) is an adaptation set
of its own with ``lang``, Role ``main`` or ``dub`` and a higher ``selectionPriority`` for
the main one; every subtitle track a text adaptation set (``text/vtt``, Role
``subtitle``) whose one representation names a whole WebVTT sidecar file by ``BaseURL``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from fractions import Fraction

from reelforge.video.languages import display_name
from reelforge.video.package import Track
from reelforge.video.webvtt import TextTrack

NS = "urn:mpeg:dash:schema:mpd:2011"
PROFILES = "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019"
CHANNEL_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
ROLE_SCHEME = "urn:mpeg:dash:role:2011"


def iso_duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


def _segment_list(rep: ET.Element, track: Track) -> None:
    seg_list = ET.SubElement(rep, "SegmentList", timescale=str(track.timescale))
    ET.SubElement(seg_list, "Initialization", sourceURL=track.uri(track.init_name))
    timeline = ET.SubElement(seg_list, "SegmentTimeline")
    expected = None
    for seg in track.segments:
        attrs = {"d": str(seg.duration_ticks)}
        if expected is None or seg.start_ticks != expected:
            attrs = {"t": str(seg.start_ticks), **attrs}
        ET.SubElement(timeline, "S", attrs)
        expected = seg.start_ticks + seg.duration_ticks
    for seg in track.segments:
        ET.SubElement(seg_list, "SegmentURL", media=track.uri(seg.name))


def build_mpd(video: list[Track], audio: list[Track], *, min_buffer: float,
              subtitles: list[TextTrack] = ()) -> str:  # fmt: skip
    """The MPD text for the given tracks (``audio[0]``: the main audio)."""
    duration = max((t.duration for t in [*video, *audio]), default=0.0)
    mpd = ET.Element(
        "MPD",
        {
            "xmlns": NS,
            "profiles": PROFILES,
            "type": "static",
            "mediaPresentationDuration": iso_duration(duration),
            "minBufferTime": iso_duration(min_buffer),
        },
    )
    period = ET.SubElement(mpd, "Period", id="0", start="PT0S")
    set_id = 0
    by_codec: dict[str, list[Track]] = {}
    for v in video:
        by_codec.setdefault(v.codec.split(".")[0], []).append(v)
    for tracks in by_codec.values():
        tracks = sorted(tracks, key=lambda t: t.peak_bitrate)
        top = tracks[-1]
        par = Fraction(top.width, top.height)
        aset = ET.SubElement(
            period,
            "AdaptationSet",
            {
                "id": str(set_id),
                "contentType": "video",
                "mimeType": "video/mp4",
                "segmentAlignment": "true",
                "startWithSAP": "1",
                "maxWidth": str(max(t.width for t in tracks)),
                "maxHeight": str(max(t.height for t in tracks)),
                "maxFrameRate": top.frame_rate_exact or f"{top.frame_rate:g}",
                "par": f"{par.numerator}:{par.denominator}",
            },
        )
        set_id += 1
        for t in tracks:
            rep = ET.SubElement(
                aset,
                "Representation",
                {
                    "id": t.id,
                    "bandwidth": str(math.ceil(t.peak_bitrate)),
                    "codecs": t.codec,
                    "width": str(t.width),
                    "height": str(t.height),
                    "frameRate": t.frame_rate_exact or f"{t.frame_rate:g}",
                    "sar": "1:1",
                },
            )
            _segment_list(rep, t)
    for n, a in enumerate(audio):
        attrs = {
            "id": str(set_id),
            "contentType": "audio",
            "mimeType": "audio/mp4",
            "segmentAlignment": "true",
            "startWithSAP": "1",
        }
        if a.language:
            attrs["lang"] = a.language
        if len(audio) > 1:  # players start with the highest priority (DASH-IF IOP)
            attrs["selectionPriority"] = "2" if n == 0 else "1"
        aset = ET.SubElement(period, "AdaptationSet", attrs)
        set_id += 1
        if a.language:  # RepresentationBase's Label comes before Role
            ET.SubElement(aset, "Label").text = display_name(a.language)
        ET.SubElement(aset, "Role", schemeIdUri=ROLE_SCHEME, value="main" if n == 0 else "dub")
        rep = ET.SubElement(
            aset,
            "Representation",
            {
                "id": a.id,
                "bandwidth": str(math.ceil(a.peak_bitrate)),
                "codecs": a.codec,
                "audioSamplingRate": str(a.sample_rate),
            },
        )
        ET.SubElement(rep, "AudioChannelConfiguration", schemeIdUri=CHANNEL_SCHEME,
                      value=str(a.channels))  # fmt: skip
        _segment_list(rep, a)
    for t in subtitles:
        aset = ET.SubElement(period, "AdaptationSet", {"id": str(set_id), "contentType": "text",
                             "mimeType": "text/vtt", "lang": t.language})  # fmt: skip
        set_id += 1
        ET.SubElement(aset, "Label").text = t.name  # RepresentationBase's, before Role
        ET.SubElement(aset, "Role", schemeIdUri=ROLE_SCHEME, value="subtitle")
        bits = sum(s.size for s in t.segments) * 8
        rep = ET.SubElement(aset, "Representation", {"id": f"subtitles-{t.id}", "bandwidth": str(
            max(1, math.ceil(bits / max(duration, 1e-3))))})  # fmt: skip
        ET.SubElement(rep, "BaseURL").text = t.uri(t.sidecar)
    ET.indent(mpd)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(mpd, encoding="unicode") + "\n"
