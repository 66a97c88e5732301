"""Dubbing a video: only the face changes, sync modes, rotation, wav2lip, bad input."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
from conftest import assert_refused, media, run_cli, run_ffmpeg
from tiny_models import build_random_wav2lip

from reelforge.lipsync.footage import VideoFootage, smooth, track
from reelforge.lipsync.syncmeter import extract
from reelforge.voice.post import decode

GRID = "video/grid_bbaf2n.mpg"
OTHER_SPEAKER = "speech/LJ001-0001.wav"  # 9.7 s, a different voice from the GRID speaker
SHORT = "speech/LJ001-0002.wav"  # 1.9 s


def _frames(path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as c:
        rate = float(c.streams.video[0].average_rate)
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(video=0)], rate


@pytest.fixture(scope="module")
def source():
    """The GRID clip's frames and, per frame, a generous box around the tracked face."""
    frames, rate = _frames(media(GRID))
    faces = smooth(track(VideoFootage(media(GRID)).rgb_frames()))
    boxes = []
    for f in faces:
        x0, y0, x1, y1 = f.box
        m = 0.25 * (x1 - x0)
        boxes.append((int(x0 - m), int(y0 - m), int(x1 + m), int(y1 + m)))
    return frames, rate, boxes


def _outside(box, shape) -> np.ndarray:
    mask = np.ones(shape[:2], bool)
    x0, y0, x1, y1 = box
    mask[max(0, y0) : y1, max(0, x0) : x1] = False
    return mask


def _dub(tmp_path, name, audio, *args):
    out = tmp_path / f"{name}.mp4"
    result = run_cli("talk", "--video", media(GRID), "--audio", media(audio), "-o", out,
                     "--json", *args)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout)


@pytest.fixture(scope="module")
def dubbed(tmp_path_factory):
    return _dub(tmp_path_factory.mktemp("dub"), "viseme", OTHER_SPEAKER)


def test_dub_keeps_size_rate_and_frames(dubbed, source):
    out, report = dubbed
    src, rate, _ = source
    frames, out_rate = _frames(out)
    assert (frames[0].shape, out_rate, len(frames)) == (src[0].shape, rate, len(src))
    assert report["input"] == "video" and report["source_frames"] == len(src)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert abs(c.streams.audio[0].duration * c.streams.audio[0].time_base - 3.0) < 0.05
    data = out.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")


def test_dub_changes_only_the_face(dubbed, source):
    out, _ = dubbed
    src, _, boxes = source
    frames, _ = _frames(out)
    for fr, orig, box in zip(frames, src, boxes, strict=True):
        # Outside the face the source's own YUV is kept: what differs is x264's loss.
        assert np.abs(fr - orig)[_outside(box, fr.shape)].mean() < 1.5


def test_dubbed_mouth_follows_the_new_speech(dubbed):
    out, _ = dubbed
    dubbed_features = extract(out)  # the output's mouth against the new audio it carries
    original = extract(media(GRID))  # the speaker's own mouth, for comparison
    new_energy = dubbed_features.energy

    def corr(mouth):
        return float(np.corrcoef(mouth, new_energy)[0, 1])

    assert corr(dubbed_features.mouth) > 0.6
    assert corr(dubbed_features.mouth) > corr(original.mouth[: new_energy.size]) + 0.3


@pytest.mark.parametrize(
    ("mode", "audio", "frames"),
    [("loop", OTHER_SPEAKER, 241), ("pingpong", OTHER_SPEAKER, 241), ("pad", SHORT, 75),
     ("cut", SHORT, 47)],
)  # fmt: skip
def test_sync_modes(tmp_path, source, mode, audio, frames):
    out, report = _dub(tmp_path, mode, audio, "--sync-mode", mode)
    src, rate, boxes = source
    got, _ = _frames(out)
    assert len(got) == frames and report["frames"] == frames
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        assert abs(float(a.duration * a.time_base) - frames / rate) < 0.05
    n = len(src)
    for k in (0, n - 1, n, n + 5, 2 * n, frames - 1):
        if k >= frames:
            continue
        if mode == "loop":
            j = k % n
        elif mode == "pingpong":
            j = k % (2 * n - 2)
            j = j if j < n else 2 * n - 2 - j
        else:
            j = min(k, n - 1)
        mask = _outside(boxes[j], got[k].shape)
        assert np.abs(got[k] - src[j])[mask].mean() < 1.5, (mode, k, j)


def test_rotated_phone_video_comes_out_upright(tmp_path):
    sideways = tmp_path / "sideways.mp4"
    phone = tmp_path / "phone.mp4"
    run_ffmpeg("-i", media(GRID), "-t", "2", "-vf", "transpose=2", "-c:v", "libx264",
               "-preset", "ultrafast", "-c:a", "aac", sideways)  # fmt: skip
    run_ffmpeg("-display_rotation", "-90", "-i", sideways, "-c", "copy", phone)
    out = tmp_path / "upright.mp4"
    result = run_cli("talk", "--video", phone, "--audio", media(SHORT), "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["width"], report["height"]) == (360, 288)
    assert report["faces_found"] == report["source_frames"]
    assert any("rotated" in note for note in report["notes"])


def test_silent_audio_keeps_the_mouth_still(tmp_path):
    silence = tmp_path / "silence.wav"
    run_ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "2", silence)
    out = tmp_path / "quiet.mp4"
    face = media("faces/astronaut_eileen_collins.png")
    result = run_cli("talk", "--face", face, "--audio", silence, "-o", out, "--no-motion",
                     "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert any("no speech" in note for note in report["notes"])
    frames, _ = _frames(out)
    assert max(np.abs(f - frames[0]).mean() for f in frames) < 1.0  # blinks only, tiny


def test_wav2lip_on_the_random_model(tmp_path, source):
    checkpoint = build_random_wav2lip(tmp_path / "wav2lip.pth")
    out, report = _dub(tmp_path, "w2l", SHORT, "--backend", "wav2lip", "--checkpoint",
                       checkpoint)  # fmt: skip
    src, rate, boxes = source
    frames, out_rate = _frames(out)
    assert report["backend"] == "wav2lip" and len(frames) == 47 and out_rate == rate
    for fr, orig, box in zip(frames, src, boxes, strict=False):
        diff = np.abs(fr - orig)
        assert diff[_outside(box, fr.shape)].mean() < 1.5
        x0, y0, x1, y1 = box
        lower = diff[(y0 + y1) // 2 : y1, x0:x1]
        assert lower.mean() > 5  # the (untrained) generator painted the mouth
        # Feathered: the change fades out towards the edge of the face crop.
        assert diff[y0 : y0 + 4, x0:x1].mean() < lower.mean() / 3


def test_wav2lip_mel_front_end_matches_librosa():
    librosa = pytest.importorskip("librosa")
    from scipy.signal import lfilter

    from reelforge.lipsync.backends.wav2lip import melspectrogram

    wav = decode(media(SHORT), 16000)
    spec = np.abs(librosa.stft(lfilter([1, -0.97], [1], wav), n_fft=800, hop_length=200,
                               win_length=800, pad_mode="reflect"))  # fmt: skip
    basis = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    db = 20 * np.log10(np.maximum(1e-5, basis @ spec)) - 20
    expected = np.clip(8 * ((db + 100) / 100) - 4, -4, 4)
    ours = melspectrogram(wav)
    assert ours.shape == expected.shape == (80, 1 + wav.size // 200)
    assert np.abs(ours - expected).max() < 1e-3


def test_bad_dub_inputs(tmp_path):
    audio = media(SHORT)
    out = tmp_path / "out"
    out.mkdir()
    target = out / "a.mp4"
    assert_refused(run_cli("talk", "--video", audio, "--audio", audio, "-o", target),
                   str(audio), "no video stream")  # fmt: skip
    bunny = media("video/bbb_720p_2s_h264.mp4")
    assert_refused(run_cli("talk", "--video", bunny, "--audio", audio, "-o", target),
                   str(bunny), "no face found in the video")  # fmt: skip
    grid = media(GRID)
    assert_refused(run_cli("talk", "--video", grid, "--face", media("faces/kodim04.png"),
                           "--audio", audio, "-o", target), "either --face")  # fmt: skip
    assert_refused(run_cli("talk", "--video", grid, "--audio", audio, "-o", target,
                           "--sync-mode", "stretch"), "unknown --sync-mode")  # fmt: skip
    assert_refused(run_cli("talk", "--video", grid, "--audio", audio, "-o", target,
                           "--backend", "wav2lip"), "--checkpoint")  # fmt: skip
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    assert_refused(run_cli("talk", "--video", grid, "--audio", audio, "-o", target,
                           "--backend", "wav2lip", "--checkpoint", junk),
                   str(junk), "not a PyTorch checkpoint")  # fmt: skip
    assert list(out.iterdir()) == []
