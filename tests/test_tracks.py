"""Subtitles and alternate audio inside the stream: HLS groups, segmented WebVTT on the
media timeline, DASH text and audio sets, loudness, bad input, and a browser that shows it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import m3u8
import pytest
from browsers import chromium
from conftest import TEST_LADDER, Server, assert_refused, media, run_cli, run_ffmpeg
from mpegdash.parser import MPEGDASHParser
from streams import joined, read_media_playlist

from reelforge.errors import InputError
from reelforge.media import ffmpeg, mp4
from reelforge.video import languages, webvtt

EN = """WEBVTT - talk subtitles

STYLE
::cue { color: yellow; }

NOTE the first line is short

hello
00:00.500 --> 00:01.500
Hello

at-three
00:00:03.000 --> 00:00:03.900 line:80%
At three seconds

00:03.950 --> 00:06.500
This one spans
two segments
"""
FR = (
    "WEBVTT\n\n00:00:03.000 --> 00:00:04.000\nÀ trois secondes\n\n"
    "00:20.000 --> 00:21.000\nAprès la fin\n"
)


@pytest.fixture(scope="module")
def subs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("subs")
    (folder / "en.vtt").write_text(EN.replace("\n", "\r\n"), encoding="utf-8")  # CRLF is fine
    (folder / "fr.vtt").write_text(FR, encoding="utf-8")
    ladder = folder / "ladder.json"
    ladder.write_text(json.dumps({"rungs": TEST_LADDER[:2]}))
    long = folder / "long.m4a"  # 19 s of speech: longer than the video
    run_ffmpeg("-stream_loop", "1", "-i", media("speech/LJ001-0001.wav"), "-c:a", "aac", long)
    return {"en": folder / "en.vtt", "fr": folder / "fr.vtt", "ladder": ladder, "long": long}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, talk_source, subs) -> tuple[Path, dict]:
    """The talking head (11.6 s) with English and French subtitles, and French (shorter,
    mono 22 kHz WAV) and German (longer, AAC) alternate audio."""
    out = tmp_path_factory.mktemp("tracks") / "stream"
    r = run_cli("publish", talk_source, "-o", out, "--ladder", subs["ladder"], "--preset", "fast",
                "--no-quality", "--no-fallback", "--subtitles", f"en={subs['en']}",
                "--subtitles", f"fr={subs['fr']}", "--audio-language", "en",
                "--audio-track", f"fr={media('speech/LJ001-0001.wav')}",
                "--audio-track", f"de={subs['long']}",
                "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_master_has_subtitle_and_audio_groups(tracked):
    out, report = tracked
    master = m3u8.load(str(out / "master.m3u8"))
    subtitles = [m for m in master.media if m.type == "SUBTITLES"]
    assert [(m.language, m.name, m.group_id) for m in subtitles] == [
        ("en", "English", "subs"), ("fr", "French", "subs")]  # fmt: skip
    assert all(m.default == "NO" and m.autoselect == "YES" and m.uri for m in subtitles)
    audio = [m for m in master.media if m.type == "AUDIO"]
    assert [(m.language, m.name, m.default) for m in audio] == [
        ("en", "English", "YES"), ("fr", "French", "NO"), ("de", "German", "NO")]  # fmt: skip
    assert master.playlists and all(p.stream_info.subtitles == "subs" for p in master.playlists)
    assert all(p.stream_info.audio == "audio" for p in master.playlists)
    assert {r["language"] for r in report["renditions"] if r["kind"] == "audio"} == {
        "en", "fr", "de"}  # fmt: skip
    assert [s["language"] for s in report["subtitles"]] == ["en", "fr"]
    assert report["subtitles"][1]["dropped"] == 1  # the cue after the end
    assert any("de audio is" in n and "trimmed" in n for n in report["notes"])
    assert any("fr audio is" in n and "padded" in n for n in report["notes"])


def _cues(text: str) -> list[tuple[float, float, str]]:
    blocks = text.split("\n\n")
    out = []
    for b in blocks:
        lines = b.split("\n")
        for k, line in enumerate(lines):
            if "-->" in line:
                a, z = line.split(" --> ")
                out.append((webvtt._seconds(a), webvtt._seconds(z.split()[0]),
                            "\n".join(lines[k + 1:]).strip()))  # fmt: skip
    return out


def test_segmented_webvtt_is_on_the_video_timeline(tracked, tmp_path):
    out, _ = tracked
    master = m3u8.load(str(out / "master.m3u8"))
    video = read_media_playlist(out / master.playlists[0].uri)
    # where the video's first segment sits on the media timeline (tfdt)
    probe = tmp_path / "first.mp4"
    probe.write_bytes(video.init.read_bytes() + video.segments[0][0].read_bytes())
    fragmented = mp4.read_fragmented(probe)
    mpegts = round(fragmented.fragments[0].decode_time * 90000 / fragmented.track.timescale)
    en = next(m for m in master.media if m.type == "SUBTITLES" and m.language == "en")
    pl = m3u8.load(str(out / en.uri))
    folder = (out / en.uri).parent
    assert [round(s.duration, 3) for s in pl.segments] == [round(d, 3) for _, d in
                                                           video.segments]  # fmt: skip
    assert pl.target_duration == m3u8.load(str(out / master.playlists[0].uri)).target_duration
    start, covering = 0.0, {}
    for seg in pl.segments:
        text = (folder / seg.uri).read_text(encoding="utf-8")
        head = text.split("\n")
        assert head[0] == "WEBVTT"
        assert head[1] == f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000"
        assert "::cue { color: yellow; }" in text  # STYLE travels with every segment
        assert re.search(r"-([0-9a-f]{10})\.vtt$", seg.uri)
        for cue in _cues(text):
            covering.setdefault(cue[2], []).append((start, start + seg.duration, *cue[:2]))
            assert cue[0] < start + seg.duration and cue[1] > start  # shown in it
        start += seg.duration
    # the cue at 3.0 s sits in the segment covering 3.0 s, at 3.0 s of LOCAL time
    ((lo, hi, cue_start, cue_end),) = covering["At three seconds"]
    assert lo <= 3.0 < hi and (cue_start, cue_end) == (3.0, 3.9)
    # a cue across a boundary is repeated in both segments, with its own times
    spans = covering["This one spans\ntwo segments"]
    assert len(spans) == 2 and spans[0][1] == spans[1][0] and spans[0][0] < 3.95 < spans[0][1]
    assert {(a, b) for *_, a, b in spans} == {(3.95, 6.5)}


def test_dash_has_text_and_audio_sets(tracked):
    out, _ = tracked
    mpd = MPEGDASHParser.parse(str(out / "manifest.mpd"))
    sets = mpd.periods[0].adaptation_sets
    audio = [a for a in sets if a.content_type == "audio"]
    assert [a.lang for a in audio] == ["en", "fr", "de"]
    assert [a.roles[0].value for a in audio] == ["main", "dub", "dub"]
    text = [a for a in sets if a.content_type == "text"]
    assert [(a.lang, a.mime_type) for a in text] == [("en", "text/vtt"), ("fr", "text/vtt")]
    for a in text:
        (rep,) = a.representations
        sidecar = out / rep.base_urls[0].base_url_value
        cues = webvtt.read_vtt(sidecar).cues
        assert cues and all(c.start < 11.7 for c in cues)
    for a in audio:
        seg_list = a.representations[0].segment_lists[0]
        assert all((out / u.media).is_file() for u in seg_list.segment_urls)


def test_ffmpeg_reads_every_audio_track_and_they_are_normalised(tracked, tmp_path):
    out, report = tracked
    r = subprocess.run([ffmpeg.ffmpeg_exe(), "-hide_banner", "-v", "error", "-i",
                        str(out / "master.m3u8"), "-map", "0:a:1", "-map", "0:a:2", "-t", "2",
                        "-f", "null", "-"], capture_output=True, text=True,
                       check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    from reelforge.video.alternates import measure

    master = m3u8.load(str(out / "master.m3u8"))
    duration = report["source"]["duration"]
    for m in master.media:
        if m.type != "AUDIO" or m.default == "YES":
            continue
        track = joined(read_media_playlist(out / m.uri), tmp_path / f"{m.language}.mp4")
        loudness, peak = measure(track, tmp_path)
        assert abs(loudness - -16.0) < 1.0, (m.language, loudness)
        assert peak <= -0.9, (m.language, peak)
        import av

        with av.open(str(track)) as c:
            s = c.streams.audio[0]
            assert (s.codec_context.name, s.rate, s.channels) == ("aac", 48000, 2)
            samples = sum(f.samples for f in c.decode(audio=0))
        assert abs(samples / 48000 - duration) < 0.1, (m.language, samples / 48000)
        entry = next(x for x in report["renditions"] if x.get("language") == m.language)
        assert entry["loudness"]["lufs"] == pytest.approx(-16.0, abs=0.5)


def test_bad_tracks_are_refused_before_anything_is_written(tmp_path, subs, talk_source):
    broken = tmp_path / "broken.vtt"
    broken.write_text("WEBVTT\n\n00:01.000 -> 00:02.000\nno arrow\n")
    silent_film = media("video/tears_of_steel_360p_10s.mp4")  # no audio stream
    out = tmp_path / "out"
    cases = [
        (["--subtitles", f"english={subs['en']}"], "not a language tag"),
        (["--subtitles", f"en_US={subs['en']}"], "not a language tag"),
        (["--subtitles", str(subs["en"])], "must look like LANG=FILE"),
        (["--subtitles", f"en={tmp_path / 'nope.vtt'}"], "subtitle file not found"),
        (["--subtitles", f"en={broken}"], "line 3: bad cue timing"),
        (["--subtitles", f"en={subs['en']}", "--subtitles", f"EN={subs['fr']}"], "given twice"),
        (["--audio-track", f"fr={silent_film}"], "has no audio stream"),
        (["--audio-track", f"fr={tmp_path / 'nope.wav'}"], "audio file not found"),
        (["--audio-language", "xx-yyyyy"], "not a language tag"),
    ]
    for extra, needle in cases:
        r = run_cli("publish", talk_source, "-o", out, "--preset", "fast", *extra)
        assert_refused(r, needle)
        assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_webvtt_parser_names_the_line():
    ok = webvtt.parse_vtt("\ufeffWEBVTT\n\n1\n01:02.003 --> 1:01:02.500 align:start\nA\n\n", "x")
    assert ok.cues[0].start == pytest.approx(62.003) and ok.cues[0].end == pytest.approx(3662.5)
    assert ok.cues[0].identifier == "1" and ok.cues[0].settings == "align:start"
    for text, needle in [("WEBVT\n", "line 1: it must start with WEBVTT"),
                         ("WEBVTT\n\n00:02.000 --> 00:01.000\nx\n", "line 3: the cue ends"),
                         ("WEBVTT\n\nid\nnot a timing\n", "line 4: expected a cue timing"),
                         ("WEBVTT\n\n00:01.000 --> 00:02.000\na\n00:03.000 --> 00:04.000\n",
                          "line 5: '-->' in a cue's text"),
                         ("WEBVTT\n\nNOTE nothing\n", "has no subtitle cues")]:  # fmt: skip
        with pytest.raises(InputError, match=re.escape(needle)):
            webvtt.parse_vtt(text, "x.vtt")


def test_language_tags():
    assert languages.canonical("pt-br") == "pt-BR" and languages.canonical("zh-hant") == "zh-Hant"
    assert languages.canonical("eng") == "en" and languages.canonical("es-419") == "es-419"
    assert languages.display_name("pt-BR") == "Portuguese (Brazil)"
    assert languages.display_name("es-419") == "Spanish (Latin America)"
    for bad in ("english", "en_US", "e", "en-", "und", ""):
        with pytest.raises(ValueError):
            languages.canonical(bad)


def test_python_api_takes_lists_of_tracks(tmp_path, subs):
    from reelforge.video.ladder import Rung
    from reelforge.video.publish import PublishOptions, publish

    clip = media("video/bbb_720p_2s_h264.mp4")
    opts = PublishOptions(rungs=[Rung(**TEST_LADDER[0])], preset="fast", quality=False,
                          thumbnails=False, fallback=False, segment_duration=2.0,
                          subtitles=[("pt-br", subs["en"])])  # fmt: skip
    report = publish(clip, tmp_path / "out", opts)
    assert [(s.language, s.name) for s in report.subtitles] == [("pt-BR", "Portuguese (Brazil)")]
    master = (tmp_path / "out" / "master.m3u8").read_text()
    assert 'LANGUAGE="pt-BR"' in master and 'SUBTITLES="subs"' in master


# --- in a browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def test_the_player_lists_subtitles_and_audio_and_shows_a_cue(browser, tracked):
    out, _ = tracked
    server = Server(out)
    try:
        page = browser.new_page()
        page.goto(server.base + "/")
        page.wait_for_function("window.reelforgeHls && window.reelforgeHls.subtitleTracks.length"
                               " === 2 && window.reelforgeHls.audioTracks.length === 3",
                               timeout=30_000)  # fmt: skip
        names = page.evaluate("window.reelforgeHls.subtitleTracks.map(t => [t.lang, t.name])")
        assert names == [["en", "English"], ["fr", "French"]]
        audio = page.evaluate("window.reelforgeHls.audioTracks.map(t => [t.lang, t.default])")
        assert audio == [["en", True], ["fr", False], ["de", False]]
        # the page offers the choices once playback is under way
        page.wait_for_function("!document.getElementById('subs-choice').hidden", timeout=30_000)
        assert page.evaluate("document.getElementById('audio').options.length") == 3
        page.evaluate("window.reelforgeHls.subtitleDisplay = true;"
                      "window.reelforgeHls.subtitleTrack = 0")  # fmt: skip
        page.wait_for_function("""() => [...document.getElementById('video').textTracks]
            .some(t => t.cues && [...t.cues].some(c => c.text === 'At three seconds'))""",
                               timeout=30_000)  # fmt: skip
        cue = page.evaluate("""() => { for (const t of document.getElementById('video').textTracks)
            for (const c of (t.cues || [])) if (c.text === 'At three seconds')
              return [c.startTime, c.endTime, t.language]; }""")  # fmt: skip
        assert cue[0] == pytest.approx(3.0, abs=0.05) and cue[1] == pytest.approx(3.9, abs=0.05)
        assert cue[2] == "en"
        spans = page.evaluate("""() => { let n = 0; for (const t of document.getElementById('video')
            .textTracks) for (const c of (t.cues || [])) if (c.text.startsWith('This one spans'))
              n++; return n; }""")  # fmt: skip
        assert spans == 1  # repeated in two segments, shown once
        # and at 3.2 s it is the active cue
        page.evaluate("document.getElementById('video').currentTime = 3.2")
        page.wait_for_function("""() => [...document.getElementById('video').textTracks]
            .some(t => t.mode === 'showing' && t.activeCues &&
                  [...t.activeCues].some(c => c.text === 'At three seconds'))""",
                               timeout=30_000)  # fmt: skip
        # switching audio to French
        page.evaluate("window.reelforgeHls.audioTrack = 1")
        page.wait_for_function("window.reelforgeHls.audioTrack === 1", timeout=30_000)
        page.close()
    finally:
        server.stop()
