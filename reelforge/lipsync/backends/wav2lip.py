"""``wav2lip``: the Wav2Lip generator (96x96 faces) around a checkpoint the user supplies.

Contract: :func:`load_model` builds the published architecture and loads a checkpoint
(``{"state_dict": ...}`` as the reference training code saves it, DataParallel ``module.``
prefixes allowed, or a bare state dict); a file that is not one is an
:class:`~reelforge.errors.InputError`. :func:`melspectrogram` is the model's audio front end
(16 kHz, pre-emphasis 0.97, 800-sample Hann STFT with hop 200, 80 Slaney mel bands from 55 to
7600 Hz, dB relative to 20 dB, scaled symmetrically to +-4); :func:`mel_chunks` gives each
video frame its 16 mel frames. :class:`Wav2LipRenderer` runs the model in batches and pastes
each generated face back through a feathered mask that covers the mouth and jaw and fades
to nothing at the crop's edge, so no rectangle shows; frames without a face pass through;
face boxes come from smoothed landmarks, so they do not jitter.

Needs the ``wav2lip`` extra (PyTorch). Weights are never downloaded: pass a local path.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from reelforge.errors import InputError

SIZE = 96
MEL_STEP = 16
RATE = 16_000
N_FFT, HOP, N_MELS, FMIN, FMAX = 800, 200, 80, 55.0, 7600.0


# --- audio front end -----------------------------------------------------------------------


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    mel = f / (200.0 / 3)
    log_part = f >= 1000.0
    mel = np.where(log_part, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27), mel)
    return mel


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27) * (m - 15.0)), m * 200.0 / 3)


def mel_filters(rate: int = RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:  # fmt: skip
    """Triangular mel filters with Slaney area normalisation, shape (n_mels, n_fft/2+1)."""
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def melspectrogram(audio: np.ndarray) -> np.ndarray:
    """(80, frames) normalised log-mel spectrogram of 16 kHz mono ``audio``."""
    x = np.asarray(audio, np.float64)
    x = np.append(x[:1], x[1:] - 0.97 * x[:-1])  # pre-emphasis
    pad = N_FFT // 2
    x = np.pad(x, pad, mode="reflect") if x.size > pad else np.pad(x, pad)
    n = 1 + (x.size - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    spec = np.abs(np.fft.rfft(x[idx] * window, axis=1)).T
    mel = mel_filters() @ spec
    db = 20 * np.log10(np.maximum(1e-5, mel)) - 20.0
    return np.clip(8.0 * ((db + 100.0) / 100.0) - 4.0, -4.0, 4.0).astype(np.float32)


def mel_chunks(mel: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """(n_frames, 80, 16): the 16 mel frames starting at each video frame's time."""
    if mel.shape[1] < MEL_STEP:
        mel = np.pad(mel, ((0, 0), (0, MEL_STEP - mel.shape[1])), constant_values=-4.0)
    starts = np.minimum((np.arange(n_frames) * (80.0 / fps)).astype(int),
                        mel.shape[1] - MEL_STEP)  # fmt: skip
    return np.stack([mel[:, s : s + MEL_STEP] for s in starts])


# --- model -------------------------------------------------------------------------------


def build_model():
    """The Wav2Lip generator, randomly initialised (load weights with :func:`load_model`)."""
    import torch
    from torch import nn

    class Conv(nn.Module):
        def __init__(self, cin, cout, k, s, p, residual=False):
            super().__init__()
            self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, k, s, p), nn.BatchNorm2d(cout))
            self.act = nn.ReLU()
            self.residual = residual

        def forward(self, x):
            out = self.conv_block(x)
            return self.act(out + x if self.residual else out)

    class ConvT(nn.Module):
        def __init__(self, cin, cout, k, s, p, output_padding=0):
            super().__init__()
            self.conv_block = nn.Sequential(
                nn.ConvTranspose2d(cin, cout, k, s, p, output_padding), nn.BatchNorm2d(cout)
            )
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.conv_block(x))

    def res(c, n):
        return [Conv(c, c, 3, 1, 1, residual=True) for _ in range(n)]

    class Wav2Lip(nn.Module):
        def __init__(self):
            super().__init__()
            S = nn.Sequential  # noqa: N806 - a short name keeps the layer table readable
            self.face_encoder_blocks = nn.ModuleList([
                S(Conv(6, 16, 7, 1, 3)),  # 96
                S(Conv(16, 32, 3, 2, 1), *res(32, 2)),  # 48
                S(Conv(32, 64, 3, 2, 1), *res(64, 3)),  # 24
                S(Conv(64, 128, 3, 2, 1), *res(128, 2)),  # 12
                S(Conv(128, 256, 3, 2, 1), *res(256, 2)),  # 6
                S(Conv(256, 512, 3, 2, 1), *res(512, 1)),  # 3
                S(Conv(512, 512, 3, 1, 0), Conv(512, 512, 1, 1, 0)),  # 1
            ])  # fmt: skip
            self.audio_encoder = S(
                Conv(1, 32, 3, 1, 1), *res(32, 2),
                Conv(32, 64, 3, (3, 1), 1), *res(64, 2),
                Conv(64, 128, 3, 3, 1), *res(128, 2),
                Conv(128, 256, 3, (3, 2), 1), *res(256, 1),
                Conv(256, 512, 3, 1, 0), Conv(512, 512, 1, 1, 0),
            )  # fmt: skip
            self.face_decoder_blocks = nn.ModuleList([
                S(Conv(512, 512, 1, 1, 0)),
                S(ConvT(1024, 512, 3, 1, 0), *res(512, 1)),  # 3
                S(ConvT(1024, 512, 3, 2, 1, 1), *res(512, 2)),  # 6
                S(ConvT(768, 384, 3, 2, 1, 1), *res(384, 2)),  # 12
                S(ConvT(512, 256, 3, 2, 1, 1), *res(256, 2)),  # 24
                S(ConvT(320, 128, 3, 2, 1, 1), *res(128, 2)),  # 48
                S(ConvT(160, 64, 3, 2, 1, 1), *res(64, 2)),  # 96
            ])  # fmt: skip
            self.output_block = S(Conv(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

        def forward(self, mel, faces):
            """mel (B, 1, 80, 16), faces (B, 6, 96, 96) in [0, 1] -> (B, 3, 96, 96)."""
            features = []
            x = faces
            for block in self.face_encoder_blocks:
                x = block(x)
                features.append(x)
            x = self.audio_encoder(mel)
            for block in self.face_decoder_blocks:
                x = torch.cat((block(x), features.pop()), dim=1)
            return self.output_block(x)

    return Wav2Lip()


def load_model(path: Path, device: str = "cpu"):
    try:
        import torch
    except ImportError:
        raise InputError(
            "the wav2lip backend needs PyTorch: pip install 'reelforge[wav2lip]'"
        ) from None
    if not path.is_file():
        raise InputError("no such checkpoint file", path=path)
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the user's input error
        raise InputError(f"not a PyTorch checkpoint ({type(exc).__name__})", path=path) from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise InputError("the checkpoint holds no state dict", path=path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = build_model()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1:2] or [str(exc)[:120]]
        raise InputError(f"not a Wav2Lip checkpoint: {first[0].strip()}", path=path) from None
    return model.to(device).eval()


# --- rendering ---------------------------------------------------------------------------


def crop_box(face, width: int, height: int) -> tuple[int, int, int, int]:
    """The face crop the model sees: the landmark box, a little taller below the chin (as the
    reference inference pads its detector boxes), clipped to the frame."""
    x0, y0, x1, y1 = face.box
    pad = 0.06 * (y1 - y0)
    return (max(0, int(x0)), max(0, int(y0)), min(width, int(np.ceil(x1))),
            min(height, int(np.ceil(y1 + pad))))  # fmt: skip


def paste_mask(w: int, h: int) -> np.ndarray:
    """1 over the lower face (mouth and jaw), fading smoothly to 0 well inside the crop."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2, 0.68 * (h - 1)
    r = np.sqrt(((xs - cx) / (0.42 * w)) ** 2 + ((ys - cy) / (0.34 * h)) ** 2)
    t = np.clip((r - 0.55) / 0.45, 0.0, 1.0)
    return (1.0 - t * t * (3 - 2 * t))[..., None]


class Wav2LipRenderer:
    name = "wav2lip"

    def __init__(self, model, mels: np.ndarray, device: str = "cpu", batch: int = 16) -> None:
        self.model = model
        self.mels = mels  # (n_frames, 80, 16)
        self.device = device
        self.batch = batch

    def _infer(self, crops: list[np.ndarray], indices: list[int]) -> np.ndarray:
        import torch

        faces = np.stack(crops).astype(np.float32) / 255.0  # (B, 96, 96, 3) BGR
        masked = faces.copy()
        masked[:, SIZE // 2 :] = 0.0  # the model fills in the lower half
        x = np.concatenate([masked, faces], axis=3).transpose(0, 3, 1, 2)
        mel = self.mels[indices][:, None]
        with torch.inference_mode():
            out = self.model(torch.from_numpy(mel).to(self.device),
                             torch.from_numpy(np.ascontiguousarray(x)).to(self.device))  # fmt: skip
        return (out.float().cpu().numpy().transpose(0, 2, 3, 1) * 255.0).clip(0, 255)

    def _flush(self, pending):
        work = [(k, p) for k, p in enumerate(pending) if p[2] is not None]
        if work:
            crops, indices, boxes = [], [], []
            for _, (i, frame, face) in work:
                box = crop_box(face, frame.shape[1], frame.shape[0])
                x0, y0, x1, y1 = box
                crop = cv2.resize(frame[y0:y1, x0:x1], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
                crops.append(crop[..., ::-1])  # the model was trained on BGR
                indices.append(i)
                boxes.append(box)
            generated = self._infer(crops, indices)
            for (k, (_, frame, _)), gen, box in zip(work, generated, boxes, strict=True):
                x0, y0, x1, y1 = box
                w, h = x1 - x0, y1 - y0
                patch = cv2.resize(gen[..., ::-1], (w, h), interpolation=cv2.INTER_CUBIC)
                mask = paste_mask(w, h)
                out = frame.copy()
                region = out[y0:y1, x0:x1].astype(np.float32)
                out[y0:y1, x0:x1] = (mask * patch + (1 - mask) * region + 0.5).clip(0, 255)
                pending[k] = (pending[k][0], out, None)
        return [frame for _, frame, _ in pending]

    def run(self, items):
        pending = []
        for item in items:
            pending.append(item)
            if len(pending) >= self.batch:
                yield from self._flush(pending)
                pending = []
        if pending:
            yield from self._flush(pending)
