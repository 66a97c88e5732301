"""SSIMULACRA 2.1, the perceptual image metric of libjxl (April 2023 version), in numpy.

Contract: :func:`ssimulacra2` scores a distorted picture against its original (same size,
8-bit sRGB, RGB or RGBA) on the reference's scale: 100 for identical pictures, 90 very
high quality, 70 high, 50 medium, 30 low, negative for heavy distortion.
:class:`Ssimulacra2Reference` keeps what depends on the original only, so one original
scored against many candidates (a quality search) pays for it once.

The computation follows libjxl's ``tools/ssimulacra2.cc`` step by step, and is checked in
the tests against scores the reference binary gave on reproducible synthetic pairs:

- alpha blended over grey 0.5 in sRGB-encoded values; sRGB decoded to linear light;
- six scales (fewer for small pictures), 2x2 box downsampling *in linear RGB*, edges
  replicated; at each scale linear RGB goes to XYB (libjxl's opsin matrix and bias, cube
  root) rescaled to about 0..1 (X*14+0.42, Y+0.01, B-Y+0.55);
- blur: libjxl's recursive Gaussian (Charalampidis 2016, sigma 1.5, three truncated
  cosine terms, zero outside the picture), rows first, then columns; the recursion is a
  9-tap FIR in disguise, so its taps are taken from its impulse response and applied as a
  separable filter; the blur is what the
  ``ssimulacra2`` package on PyPI gets wrong (it scores the reference's own test pair
  21.16 where 17.40 is expected);
- per channel the SSIM' error map (no luminance denominator, C2 = 0.0009) and the two
  edge maps (ringing where the distorted has edges the original lacks, blur for the
  opposite), each pooled as a 1-norm and a 4-norm: 108 features, weighted, then the
  reference's polynomial and power law.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image
from scipy.signal import lfilter

SCALES = 6
C2 = 0.0009
SIGMA = 1.5
_OPSIN = np.array(
    [
        [0.30, 0.622, 0.078],
        [0.23, 0.692, 0.078],
        [0.24342268924547819, 0.20476744424496821, 0.55180986650955360],
    ]
)
_BIAS = 0.0037930732552754493
_CBRT_BIAS = _BIAS ** (1 / 3)
_OPSIN32 = _OPSIN.astype(np.float32)
_RESCALE = np.array([[7.0, -7.0, 0.0], [0.5, 0.5, 0.0], [-0.5, -0.5, 1.0]], np.float32)
_OFFSET = np.array([0.42, 0.01, 0.55], np.float32)
# Weights of the 108 features (channel X, Y, B-Y; scale 1:1..1:32; 1-norm, 4-norm; SSIM',
# ringing, blur), as tuned for SSIMULACRA 2.1.
_WEIGHTS = np.array([
    0.0, 0.0007376606707406586, 0.0, 0.0, 0.0007793481682867309, 0.0, 0.0,
    0.0004371155730107379, 0.0, 1.1041726426657346, 0.00066284834129271,
    0.00015231632783718752, 0.0, 0.0016406437456599754, 0.0, 1.8422455520539298,
    11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653, 0.0,
    1.8787594979546387, 10.94906990605142, 0.0, 0.0007289346991508072, 0.9677937080626833,
    0.0, 0.00014003424285435884, 0.9981766977854967, 0.00031949755934435053,
    0.0004550992113792063, 0.0, 0.0, 0.0013648766163243398, 0.0, 0.0, 0.0, 0.0, 0.0,
    7.466890328078848, 0.0, 17.445833984131262, 0.0006235601634041466, 0.0, 0.0,
    6.683678146179332, 0.00037724407979611296, 1.027889937768264, 225.20515300849274, 0.0,
    0.0, 19.213238186143016, 0.0011401524586618361, 0.001237755635509985,
    176.39317598450694, 0.0, 0.0, 24.43300999870476, 0.28520802612117757,
    0.0004485436923833408, 0.0, 0.0, 0.0, 34.77906344483772, 44.835625328877896, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0008680556573291698, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0005313191874358747, 0.0, 0.00016533814161379112, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0004179171803251336, 0.0017290828234722833, 0.0, 0.0020827005846636437, 0.0, 0.0,
    8.826982764996862, 23.19243343998926, 0.0, 95.1080498811086, 0.9863978034400682,
    0.9834382792465353, 0.0012286405048278493, 171.2667255897307, 0.9807858872435379, 0.0,
    0.0, 0.0, 0.0005130064588990679, 0.0, 0.00010854057858411537,
])  # fmt: skip


def _srgb_lut() -> np.ndarray:
    v = np.arange(256) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


_LINEAR = _srgb_lut().astype(np.float32)


def _recursive_gaussian(sigma: float) -> tuple[int, np.ndarray, np.ndarray]:
    """Radius N and the three resonators' (n2, d1) of the truncated-cosine Gaussian."""
    radius = round(3.2795 * sigma + 0.2546)
    omega = np.array([1.0, 3.0, 5.0]) * math.pi / (2.0 * radius)
    p = np.array([1, -1, 1]) / np.tan(0.5 * omega)
    r = np.array([1, -1, 1]) * p * p / np.sin(omega)
    rho = np.exp(-0.5 * sigma * sigma * omega * omega) / radius
    d_13 = p[0] * r[1] - r[0] * p[1]
    d_35 = p[1] * r[2] - r[1] * p[2]
    d_51 = p[2] * r[0] - r[2] * p[0]
    zeta_15, zeta_35 = d_35 / d_13, d_51 / d_13
    a = np.array([p, r, [zeta_15, zeta_35, 1.0]])
    gamma = np.array([1.0, radius * radius - sigma * sigma,
                      zeta_15 * rho[0] + zeta_35 * rho[1] + rho[2]])  # fmt: skip
    beta = np.linalg.solve(a, gamma)
    n2 = (-beta * np.cos(omega * (radius + 1.0))).astype(np.float32).astype(np.float64)
    d1 = (-2.0 * np.cos(omega)).astype(np.float32).astype(np.float64)
    return radius, n2, d1


_RADIUS, _N2, _D1 = _recursive_gaussian(SIGMA)


def _impulse_response() -> np.ndarray:
    """The recursion's taps: run once on an impulse (it is a 2N-1 tap FIR in disguise)."""
    n = _RADIUS
    length = 4 * n + 1
    x = np.zeros(length)
    x[2 * n] = 1.0
    # Output index m (from -N+1) takes x[m-N-1] + x[m+N-1] (zero outside), then three
    # resonators y[m] = n2 * s[m] - d1 * y[m-1] - y[m-2], summed.
    xp = np.pad(x, (2 * n, n))
    count = length + n - 1
    s = xp[:count] + xp[2 * n : 2 * n + count]
    out = sum(lfilter([b], [1.0, a, 1.0], s) for b, a in zip(_N2, _D1, strict=True))
    response = out[n - 1 :]
    return response[n + 1 : 3 * n]  # offsets -(N-1)..N-1; beyond them it is below 1e-6


_TAPS = _impulse_response()


_KERNEL = _TAPS[::-1].astype(np.float32).copy()  # OpenCV correlates; the taps convolve


def _blur(x: np.ndarray) -> np.ndarray:
    """Blur the planes of a (C, H, W) float32 array, zero outside the picture (OpenCV's
    separable filter: four times as fast as scipy.ndimage here, same result to 2e-7)."""
    out = np.empty_like(x)
    for plane, dst in zip(x, out, strict=True):
        cv2.sepFilter2D(plane, -1, _KERNEL, _KERNEL, dst=dst, borderType=cv2.BORDER_CONSTANT)
    return out


def _downsample(lin: np.ndarray) -> np.ndarray:
    """2x2 box average of (C, H, W), the last row/column replicated when the size is odd."""
    _, h, w = lin.shape
    if h % 2:
        lin = np.concatenate([lin, lin[:, -1:]], axis=1)
    if w % 2:
        lin = np.concatenate([lin, lin[:, :, -1:]], axis=2)
    out = lin[:, 0::2, 0::2] + lin[:, 1::2, 0::2]
    out += lin[:, 0::2, 1::2]
    out += lin[:, 1::2, 1::2]
    out *= np.float32(0.25)
    return out


def _mix(m: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[i] = sum_j m[i, j] * x[j]`` on (3, H, W) planes, without BLAS (whose threads
    only contend in a busy worker pool)."""
    for i in range(3):
        np.multiply(x[0], m[i, 0], out=out[i])
        for j in (1, 2):
            if m[i, j]:
                out[i] += x[j] * m[i, j]
    return out


def _xyb(lin: np.ndarray) -> np.ndarray:
    """Linear sRGB (3, H, W) to XYB rescaled to about 0..1, as (3, H, W)."""
    lms = _mix(_OPSIN32, lin, np.empty_like(lin))
    lms += np.float32(_BIAS)
    np.maximum(lms, 0.0, out=lms)
    flat = lms.reshape(3, -1)
    cv2.pow(flat, 1.0 / 3.0, dst=flat)  # cube root (non-negative here): 10x np.cbrt
    lms -= np.float32(_CBRT_BIAS)
    out = _mix(_RESCALE, lms, np.empty_like(lms))  # X = (l-m)/2, Y = (l+m)/2, B-Y = s - Y
    out += _OFFSET[:, None, None]
    return out


def _linear(img: Image.Image | np.ndarray) -> np.ndarray:
    """8-bit sRGB (RGB or RGBA over grey 0.5) to linear-light float32 planes (3, H, W)."""
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[..., 3:4] / 255.0
        encoded = a[..., :3] / 255.0 * alpha + 0.5 * (1.0 - alpha)
        lin = np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)
        return np.ascontiguousarray(lin.astype(np.float32).transpose(2, 0, 1))
    return _LINEAR[np.ascontiguousarray(a[..., :3].transpose(2, 0, 1))]


def _norms(err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per plane 1-norm and 4-norm of a (3, H, W) error map (overwritten)."""
    flat = err.reshape(len(err), -1)
    one = flat.mean(axis=1)
    np.square(flat, out=flat)
    np.square(flat, out=flat)
    return one, np.sqrt(np.sqrt(flat.mean(axis=1)))


def _used(scales: int) -> np.ndarray:
    """Which features carry weight for a picture with ``scales`` scales, as (scale,
    channel, map, norm) booleans (map 0 SSIM', 1 ringing, 2 blur). The weights are taken
    in order for the features there are, so with fewer scales they shift; about half are
    zero, and the maps and norms behind those are skipped."""
    w = _WEIGHTS[: scales * 18].reshape(3, scales, 2, 3)
    return w.transpose(1, 0, 3, 2) != 0


def _norm1(x: np.ndarray) -> float:
    return float(x.mean(dtype=np.float64))


def _norm4(x: np.ndarray) -> float:
    sq = np.square(x).reshape(-1)
    return math.sqrt(math.sqrt(float(np.dot(sq, sq)) / sq.size))


class Ssimulacra2Reference:
    """An original prepared once, to be scored against any number of candidates.

    Only the features with a non-zero weight are computed (the others are left at zero),
    so a score costs about half of the full 108 features while staying the same number.
    """

    def __init__(self, original: Image.Image | np.ndarray) -> None:
        lin = _linear(original)
        self.size = lin.shape[2], lin.shape[1]
        self._scales: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        xyb = _xyb(lin)
        for scale in range(SCALES):
            if xyb.shape[1] < 8 or xyb.shape[2] < 8:
                break
            if scale:
                lin = _downsample(lin)
                xyb = _xyb(lin)
            blurred = _blur(np.concatenate([xyb, xyb * xyb]))
            mu = blurred[0:3]
            sharp = np.abs(xyb - mu) + np.float32(1.0)  # 1 + |original - its blur|
            self._scales.append((xyb, mu, blurred[3:6] - mu * mu, sharp))
        self._used = _used(len(self._scales))

    def features(self, distorted: Image.Image | np.ndarray) -> np.ndarray:
        """The (scales, 3 channels, 6) features: SSIM' 1/4-norm, ringing 1/4, blur 1/4
        (those with zero weight left at 0)."""
        lin = _linear(distorted)
        if (lin.shape[2], lin.shape[1]) != self.size:
            raise ValueError(f"sizes differ: {self.size} and {(lin.shape[2], lin.shape[1])}")
        out = np.zeros((len(self._scales), 3, 6))
        for scale, (xyb1, mu1, var1, sharp1) in enumerate(self._scales):
            if scale:
                lin = _downsample(lin)
            used = self._used[scale]
            if not used.any():
                continue
            xyb2 = _xyb(lin)
            ssim = [c for c in range(3) if used[c, 0].any()]
            edge = [c for c in range(3) if used[c, 1:].any()]
            blurred_here = [c for c in range(3) if c in ssim or c in edge]
            planes = [xyb2[c] for c in blurred_here]
            planes += [xyb2[c] * xyb2[c] for c in ssim] + [xyb1[c] * xyb2[c] for c in ssim]
            blurred = _blur(np.stack(planes))
            mus = {c: blurred[i] for i, c in enumerate(blurred_here)}
            k = len(mus)
            for i, c in enumerate(ssim):
                mu2, var2, cov = mus[c], blurred[k + i], blurred[k + len(ssim) + i]
                var2 -= mu2 * mu2
                cov -= mu1[c] * mu2
                err = mu1[c] - mu2
                np.square(err, out=err)
                np.subtract(1.0, err, out=err)  # 1 - (mu1 - mu2)^2
                cov *= 2.0
                cov += C2
                err *= cov
                var2 += var1[c]
                var2 += C2
                err /= var2
                np.subtract(1.0, err, out=err)  # 1 - SSIM'
                np.maximum(err, 0.0, out=err)
                if used[c, 0, 0]:
                    out[scale, c, 0] = _norm1(err)
                if used[c, 0, 1]:
                    out[scale, c, 1] = _norm4(err)
            for c in edge:
                d = xyb2[c] - mus[c]
                np.abs(d, out=d)
                d += 1.0
                d /= sharp1[c]
                d -= 1.0  # > 0: ringing (edges the original lacks); < 0: blur
                for m, sign in ((1, 1.0), (2, -1.0)):
                    if used[c, m].any():
                        e = np.maximum(d * np.float32(sign), 0.0)
                        if used[c, m, 0]:
                            out[scale, c, 2 * m] = _norm1(e)
                        if used[c, m, 1]:
                            out[scale, c, 2 * m + 1] = _norm4(e)
        return out

    def score(self, distorted: Image.Image | np.ndarray) -> float:
        return score_features(self.features(distorted))


def score_features(features: np.ndarray) -> float:
    """The reference's pooling: weights in (channel, scale, norm, map) order, then curves."""
    order = features.reshape(len(features), 3, 3, 2)  # scale, channel, map, norm
    flat = np.abs(order.transpose(1, 0, 3, 2)).reshape(-1)  # channel, scale, norm, map
    total = float(flat @ _WEIGHTS[: flat.size]) * 0.9562382616834844
    total = 2.326765642916932 * total - 0.020884521182843837 * total**2 \
        + 6.248496625763138e-05 * total**3  # fmt: skip
    return 100.0 - 10.0 * total**0.6276336467831387 if total > 0 else 100.0


def ssimulacra2(original: Image.Image | np.ndarray, distorted: Image.Image | np.ndarray) -> float:
    """See the module docstring."""
    return Ssimulacra2Reference(original).score(distorted)
