"""Talking portrait with the offline viseme animator, measured on its output."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import soundfile as sf
from conftest import assert_refused, media, run_cli
from PIL import Image

from reelforge.lipsync.faces import FaceTracker
from reelforge.lipsync.speech import RATE, band_energy
from reelforge.voice.post import decode


@pytest.fixture(scope="module")
def portrait_talk(tmp_path_factory):
    out = tmp_path_factory.mktemp("talk") / "astronaut.mp4"
    face = media("faces/astronaut_eileen_collins.png")
    audio = media("speech/LJ001-0001.wav")
    result = run_cli("talk", "--face", face, "--audio", audio, "-o", out, "--no-motion", "--json")
    assert result.returncode == 0, result.stderr
    return face, audio, out, json.loads(result.stdout)


def _frames(path):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        rate = float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(video=0)]
    return frames, rate


def test_duration_and_format(portrait_talk):
    _, audio, out, report = portrait_talk
    seconds = sf.info(str(audio)).duration
    frames, rate = _frames(out)
    assert rate == 25 and frames[0].shape == (512, 512, 3)
    assert abs(len(frames) / rate - seconds) <= 1 / 25
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264" and c.streams.audio
    data = out.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # fast start
    assert report["render_fps"] > 25


def test_mouth_follows_speech_and_rests_in_silence(portrait_talk):
    face, audio, out, _ = portrait_talk
    frames, rate = _frames(out)
    image = np.asarray(Image.open(face).convert("RGB"))
    with FaceTracker(still=True) as tracker:
        f = tracker.track(image)
    x0, y0 = f.points[[61, 291, 14, 152]].min(axis=0).astype(int)
    x1, y1 = f.points[[61, 291, 14, 152]].max(axis=0).astype(int)
    mouth = [np.abs(fr[y0:y1, x0:x1] - image[y0:y1, x0:x1]).mean() for fr in frames]
    energy = band_energy(decode(audio, RATE), len(frames), rate)
    loud = energy > np.percentile(energy, 70)
    quiet = energy < np.percentile(energy, 15)
    assert np.mean(np.array(mouth)[loud]) > 3 * np.mean(np.array(mouth)[quiet])
    assert np.mean(np.array(mouth)[quiet]) < 5  # compression noise on the teeth only


def test_pixels_away_from_the_face_are_untouched(portrait_talk):
    face, _, out, _ = portrait_talk
    frames, _ = _frames(out)
    image = np.asarray(Image.open(face).convert("RGB")).astype(np.int16)
    with FaceTracker(still=True) as tracker:
        x0, y0, x1, y1 = (int(v) for v in tracker.track(image.astype(np.uint8)).box)
    mask = np.ones(image.shape[:2], bool)
    mask[max(0, y0 - 40) : y1 + 40, max(0, x0 - 40) : x1 + 40] = False
    for fr in frames[::20]:
        assert np.abs(fr - image)[mask].mean() < 2.5  # only compression noise


def test_output_reads_in_sync(portrait_talk):
    _, _, out, report = portrait_talk
    assert report["sync"]["determined"] is True
    assert abs(report["sync"]["offset_ms"]) <= 40
    result = run_cli("sync-check", out, "--json")
    reading = json.loads(result.stdout)
    assert reading["determined"] and abs(reading["offset_ms"]) <= 40


def test_bad_talk_inputs(tmp_path):
    face = media("faces/astronaut_eileen_collins.png")
    audio = media("speech/LJ001-0002.wav")
    out = tmp_path / "out"
    out.mkdir()
    no_face = media("photos/skimage_coffee.png")
    assert_refused(run_cli("talk", "--face", no_face, "--audio", audio, "-o", out / "a.mp4"),
             str(no_face), "no face")  # fmt: skip
    text = tmp_path / "face.png"
    text.write_text("not an image")
    assert_refused(run_cli("talk", "--face", text, "--audio", audio, "-o", out / "a.mp4"),
             str(text), "not an image")  # fmt: skip
    assert_refused(run_cli("talk", "--face", face, "--audio", text, "-o", out / "a.mp4"),
             str(text), "not audio")  # fmt: skip
    assert_refused(
        run_cli("talk", "--face", face, "--audio", audio, "-o", out / "a.mov"), "must be an .mp4"
    )
    assert_refused(run_cli("talk", "--face", face, "--audio", audio, "-o", out / "a.mp4",
                     "--face-index", "3"), "only 1 face")  # fmt: skip
    assert list(out.iterdir()) == []


def test_huge_image_is_downscaled_with_a_note(tmp_path):
    face = Image.open(media("faces/kodim04.png")).convert("RGB")
    huge = tmp_path / "huge.jpg"
    face.resize((face.width * 5, face.height * 5)).save(huge, quality=90)
    out = tmp_path / "huge.mp4"
    result = run_cli("talk", "--face", huge, "--audio", media("speech/LJ001-0002.wav"),
                     "-o", out, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert max(report["width"], report["height"]) <= 1920
    assert any("downscaled" in n for n in report["notes"])


def test_several_faces_largest_by_default_and_face_index(tmp_path):
    """A real portrait beside a smaller copy of itself: the larger face moves by default,
    --face-index 1 moves the other one. (The face detector needs faces that fill a fair part
    of the picture, so two different shared portraits side by side are not both found.)"""
    big = Image.open(media("faces/kodim04.png")).convert("RGB")  # the larger face
    small = big.resize((big.width * 7 // 10, big.height * 7 // 10))
    canvas = Image.new("RGB", (big.width + small.width, max(big.height, small.height)), "gray")
    canvas.paste(big, (0, 0))
    canvas.paste(small, (big.width, 0))
    group = tmp_path / "two.png"
    canvas.save(group)
    still = np.asarray(canvas).astype(np.int16)
    with FaceTracker(still=True, max_faces=4) as tracker:
        boxes = [[int(v) for v in f.box] for f in tracker.faces(np.asarray(canvas))]
    changed = {}
    for index in (0, 1):
        out = tmp_path / f"face{index}.mp4"
        result = run_cli("talk", "--face", group, "--audio", media("speech/LJ001-0002.wav"),
                         "-o", out, "--no-motion", "--face-index", index, "--json")  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert any("2 faces found" in n for n in json.loads(result.stdout)["notes"])
        frames, _ = _frames(out)
        motion = np.mean([np.abs(f - still).mean(axis=2) for f in frames[10:40]], axis=0)
        changed[index] = [motion[y0:y1, x0:x1].mean() for x0, y0, x1, y1 in boxes]
    assert boxes[0][0] < big.width <= boxes[1][0]  # largest first: the left face
    # Each face changes more in the run that animates it than in the run that does not (the
    # same region in both runs carries the same compression noise).
    assert changed[0][0] > 1.5 * changed[1][0]  # by default the larger face spoke
    assert changed[1][1] > 1.5 * changed[0][1]  # --face-index 1: the other one


def test_transcript_aligns_phones_and_a_wrong_one_is_a_note(tmp_path):
    face = media("faces/astronaut_eileen_collins.png")
    audio = media("speech/LJ001-0002.wav")
    good, wrong = tmp_path / "good.srt", tmp_path / "wrong.txt"
    good.write_text("1\n00:00:00,000 --> 00:00:01,900\nIn being <i>comparatively</i> modern.\n")
    wrong.write_text("Lay blue at X four now, please.")
    reports = {}
    for name, transcript in (("good", good), ("wrong", wrong)):
        out = tmp_path / f"{name}.mp4"
        result = run_cli("talk", "--face", face, "--audio", audio, "-o", out, "--no-motion",
                         "--transcript", transcript, "--json")  # fmt: skip
        assert result.returncode == 0, result.stderr
        reports[name] = json.loads(result.stdout)
    assert reports["good"]["phones"]["method"] == "alignment"
    assert reports["good"]["phones"]["words"] == 4 and not reports["good"]["notes"]
    assert reports["wrong"]["phones"]["method"] == "recognition"
    assert any("does not" in n and "recognised" in n for n in reports["wrong"]["notes"])
    missing = tmp_path / "none.txt"
    assert_refused(run_cli("talk", "--face", face, "--audio", audio, "-o", tmp_path / "x.mp4",
                           "--transcript", missing), str(missing))  # fmt: skip
    assert_refused(run_cli("talk", "--face", face, "--audio", audio, "-o", tmp_path / "x.mp4",
                           "--mouth", "lips"), "--mouth")  # fmt: skip
    assert not (tmp_path / "x.mp4").exists()
