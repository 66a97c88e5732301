"""Write HLS playlists (RFC 8216) over packaged CMAF tracks.

Contract: the text written follows Apple's HLS Authoring Specification for VOD: version 7,
``EXT-X-INDEPENDENT-SEGMENTS``, ``EXT-X-PLAYLIST-TYPE:VOD``, ``EXT-X-MAP`` for init
segments, BANDWIDTH/AVERAGE-BANDWIDTH measured from the segments (video plus the audio
group's largest), CODECS from the bitstream, and I-frame playlists with byte ranges. Audio
renditions (the main one ``DEFAULT=YES``, alternate languages ``DEFAULT=NO``) share one
group; subtitle tracks (segmented WebVTT) form the ``subs`` group, which every variant
names, none of them on by default (``AUTOSELECT=YES`` lets a player follow the viewer's
language settings).
"""

from __future__ import annotations

import math
from pathlib import Path

from reelforge import layout
from reelforge.video.languages import display_name
from reelforge.video.package import Track, target_duration
from reelforge.video.webvtt import TextTrack

VERSION = 7
AUDIO_GROUP = "audio"
SUBTITLE_GROUP = "subs"


def media_playlist(track: Track | TextTrack) -> str:
    """A media playlist for one track, URIs relative to the track's directory."""
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{track.target_duration}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if isinstance(track, Track):
        lines.append(f'#EXT-X-MAP:URI="{track.init_name}"')
    for seg in track.segments:
        lines += [f"#EXTINF:{seg.duration:.5f},", seg.name]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def iframe_entries(track: Track) -> list[tuple[str, int, int, float]]:
    """(segment name, offset, length, duration) per I-frame, duration up to the next one."""
    entries: list[tuple[str, int, int, float, float]] = []
    for seg in track.segments:
        for fr in seg.iframes:
            entries.append((seg.name, fr.offset, fr.length, fr.start, 0.0))
    end = track.segments[-1].start + track.segments[-1].duration if track.segments else 0.0
    out: list[tuple[str, int, int, float]] = []
    for i, (name, offset, length, start, _) in enumerate(entries):
        nxt = entries[i + 1][3] if i + 1 < len(entries) else end
        out.append((name, offset, length, max(nxt - start, 0.001)))
    return out


def iframe_playlist(track: Track) -> str:
    """An I-frame-only playlist: one byte range (moof through the I-frame) per keyframe."""
    entries = iframe_entries(track)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration([e[3] for e in entries])}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-I-FRAMES-ONLY",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{track.init_name}"',
    ]
    for name, offset, length, duration in entries:
        lines += [f"#EXTINF:{duration:.5f},", f"#EXT-X-BYTERANGE:{length}@{offset}", name]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def iframe_bandwidth(track: Track) -> tuple[int, int]:
    """(peak, average) bits per second of the I-frame playlist."""
    entries = iframe_entries(track)
    if not entries:
        return 0, 0
    peak = max(length * 8 / d for _, _, length, d in entries)
    avg = sum(e[2] for e in entries) * 8 / sum(e[3] for e in entries)
    return math.ceil(peak), math.ceil(avg)


def multivariant_playlist(video: list[Track], audio: list[Track],
                          subtitles: list[TextTrack] = ()) -> str:  # fmt: skip
    """The multivariant (master) playlist; URIs relative to the output root. ``audio[0]``
    is the main (default) audio rendition."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    audio_peak = max((math.ceil(a.peak_bitrate) for a in audio), default=0)
    audio_avg = max((math.ceil(a.average_bitrate) for a in audio), default=0)
    audio_codecs = sorted({a.codec for a in audio})
    for i, a in enumerate(audio):
        attrs = [
            "TYPE=AUDIO",
            f'GROUP-ID="{AUDIO_GROUP}"',
            f'NAME="{_audio_name(a, audio)}"',
        ]
        if a.language:
            attrs.append(f'LANGUAGE="{a.language}"')
        attrs += [
            f"DEFAULT={'YES' if i == 0 else 'NO'}",
            "AUTOSELECT=YES",
            f'CHANNELS="{a.channels}"',
            f'URI="{a.uri(layout.MEDIA_PLAYLIST)}"',
        ]
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs))
    for t in subtitles:
        lines.append("#EXT-X-MEDIA:" + ",".join([
            "TYPE=SUBTITLES", f'GROUP-ID="{SUBTITLE_GROUP}"', f'NAME="{t.name}"',
            f'LANGUAGE="{t.language}"', "DEFAULT=NO", "AUTOSELECT=YES", "FORCED=NO",
            f'URI="{t.uri(layout.MEDIA_PLAYLIST)}"']))  # fmt: skip
    group = f',SUBTITLES="{SUBTITLE_GROUP}"' if subtitles else ""
    if not video:  # one variant: the main audio (with the group when it has alternates)
        main = audio[0]
        lines.append(f"#EXT-X-STREAM-INF:BANDWIDTH={audio_peak},AVERAGE-BANDWIDTH={audio_avg},"
                     f'CODECS="{main.codec}"' + (f',AUDIO="{AUDIO_GROUP}"' if len(audio) > 1
                                                 else "") + group)  # fmt: skip
        lines.append(main.uri(layout.MEDIA_PLAYLIST))
        return "\n".join(lines) + "\n"
    for v in sorted(video, key=lambda t: t.peak_bitrate):
        codecs = ",".join([v.codec, *audio_codecs])
        attrs = [
            f"BANDWIDTH={math.ceil(v.peak_bitrate) + audio_peak}",
            f"AVERAGE-BANDWIDTH={math.ceil(v.average_bitrate) + audio_avg}",
            f'CODECS="{codecs}"',
            f"RESOLUTION={v.width}x{v.height}",
            f"FRAME-RATE={v.frame_rate:.3f}",
        ]
        if audio:
            attrs.append(f'AUDIO="{AUDIO_GROUP}"')
        if subtitles:
            attrs.append(f'SUBTITLES="{SUBTITLE_GROUP}"')
        attrs.append("CLOSED-CAPTIONS=NONE")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(v.uri(layout.MEDIA_PLAYLIST))
    for v in sorted(video, key=lambda t: t.peak_bitrate):
        peak, avg = iframe_bandwidth(v)
        lines.append(
            f"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={avg},"
            f'CODECS="{v.codec}",RESOLUTION={v.width}x{v.height},URI="{v.uri(layout.IFRAME_PLAYLIST)}"'
        )
    return "\n".join(lines) + "\n"


def _audio_name(track: Track, group: list[Track]) -> str:
    """The rendition's NAME: its language's name, unique within the group."""
    name = display_name(track.language)
    same = [t for t in group if display_name(t.language) == name]
    return name if len(same) == 1 else f"{name} {same.index(track) + 1}"


def write_track_playlists(root: Path, track: Track | TextTrack) -> None:
    """Write ``playlist.m3u8`` (and ``iframes.m3u8`` for video) into the track's directory."""
    folder = root / track.directory
    (folder / layout.MEDIA_PLAYLIST).write_text(media_playlist(track), encoding="utf-8")
    if track.kind == "video":
        (folder / layout.IFRAME_PLAYLIST).write_text(iframe_playlist(track), encoding="utf-8")
