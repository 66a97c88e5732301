"""``viseme``: the offline talking-head animator for a still portrait (CPU, always there).

Contract: :class:`VisemeAnimator` is built once from a portrait and its face landmarks;
:meth:`frame` returns the portrait with the mouth opened by ``openness`` (0 closed, 1 wide),
the eyes closed by ``blink`` (0 open, 1 shut) and the face shifted by ``offset`` pixels.
Only a feathered region around the face changes; every other pixel is the portrait's own.

How: one inverse warp (OpenCV ``remap``) over the face's bounding box. The jaw and lower
lip are pulled down by a displacement that is full under the mouth and fades smoothly to
zero at the chin and beside the mouth corners; the gap that opens between the lips is
shaded towards a dark mouth interior through a feathered mask; for a blink, the rows under
each upper eyelid sample the lid; head motion is a sub-pixel shift weighted by a feathered
ellipse over the face. :func:`openness_track` turns speech energy into per-frame openness:
closed in silence, zero-phase smoothed so the mouth neither jitters nor lags the sound.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from reelforge.lipsync.faces import Face

UPPER_LIP, LOWER_LIP, CORNER_L, CORNER_R, CHIN = 13, 14, 61, 291, 152
EYES = ((159, 145, 33, 133), (386, 374, 362, 263))  # upper lid, lower lid, corners
MAX_DROP = 0.30  # jaw drop at full openness, as a share of the mouth width
MOUTH_DARK = np.array([40, 18, 22], np.float32)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def openness_track(energy: np.ndarray) -> np.ndarray:
    """Per-frame mouth openness in [0, 1] from log band energy (see module docstring)."""
    if energy.size == 0:
        return energy
    lo, hi = np.percentile(energy, 20), np.percentile(energy, 97)
    if hi - lo < 0.5:  # under 5 dB of dynamics: no speech to speak of
        return np.zeros_like(energy)
    x = np.clip((energy - lo) / (hi - lo), 0.0, 1.0)
    x = np.where(x < 0.25, 0.0, (x - 0.25) / 0.75)  # silence and breath stay closed
    kernel = np.array([0.25, 0.5, 0.25])
    return np.convolve(np.pad(x, 1, mode="edge"), kernel, mode="valid")


def blink_track(n_frames: int, fps: float, seed: int = 0) -> np.ndarray:
    """Natural blinks: every 2.5-5.5 s, about 150 ms each (closing fast, opening slower)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n_frames)
    t = rng.uniform(0.8, 2.5)
    shape = np.array([0.5, 1.0, 1.0, 0.6, 0.25])
    while t * fps < n_frames:
        start = int(t * fps)
        end = min(n_frames, start + shape.size)
        out[start:end] = np.maximum(out[start:end], shape[: end - start])
        t += rng.uniform(2.5, 5.5)
    return out


def head_motion(n_frames: int, fps: float, amplitude: float, seed: int = 0) -> np.ndarray:
    """A slow, smooth sway (sum of incommensurate sines), ``amplitude`` pixels at most."""
    rng = np.random.default_rng(seed + 1)
    t = np.arange(n_frames) / fps
    out = np.zeros((n_frames, 2))
    for axis in range(2):
        for f, a in ((0.11, 0.6), (0.23, 0.3), (0.41, 0.1)):
            out[:, axis] += a * np.sin(2 * math.pi * f * t + rng.uniform(0, 2 * math.pi))
    return out * amplitude


class VisemeAnimator:
    """See the module docstring. ``dub=True`` is for a video frame whose mouth already
    moves: the opening is then set to the target (closing the mouth where the new audio is
    silent) instead of added to the portrait's own, and the eyes are left alone."""

    def __init__(self, image: np.ndarray, face: Face, dub: bool = False) -> None:
        self.image = image
        self.dub = dub
        h, w = image.shape[:2]
        p = face.points
        x0, y0, x1, y1 = face.box
        pad_x, pad_y = 0.12 * (x1 - x0), 0.15 * (y1 - y0)
        self.x0, self.y0 = max(0, int(x0 - pad_x)), max(0, int(y0 - pad_y))
        self.x1, self.y1 = min(w, int(x1 + pad_x) + 1), min(h, int(y1 + pad_y) + 1)
        roi_h, roi_w = self.y1 - self.y0, self.x1 - self.x0
        gy, gx = np.mgrid[0:roi_h, 0:roi_w].astype(np.float32)
        self.gx, self.gy = gx, gy
        ox, oy = self.x0, self.y0
        origin = np.array([ox, oy], np.float32)
        left, right = p[CORNER_L] - origin, p[CORNER_R] - origin
        # Work in the face's own axes so a tilted head opens its mouth along its own chin line.
        centre = (left + right) / 2
        axis = (right - left) / max(1e-6, float(np.linalg.norm(right - left)))
        down = np.array([-axis[1], axis[0]], np.float32)
        if np.dot(p[CHIN] - origin - centre, down) < 0:
            down = -down
        self.down, self.axis, self.centre = down, axis, centre
        u = (gx - centre[0]) * axis[0] + (gy - centre[1]) * axis[1]
        v = (gx - centre[0]) * down[0] + (gy - centre[1]) * down[1]
        lip_v = float(np.dot(p[LOWER_LIP] - origin - centre, down))  # the jaw turns here
        upper_v = float(np.dot(p[UPPER_LIP] - origin - centre, down))
        self.gap = max(0.0, lip_v - upper_v)  # the mouth's own opening, in pixels
        if dub:
            lip_v = upper_v  # move everything under the upper lip, to open or to close
        chin_v = float(np.dot(p[CHIN] - origin - centre, down))
        width = float(np.linalg.norm(right - left))
        self.drop = MAX_DROP * width
        half = width / 2
        # The opening is widest in the middle and closes at the corners (an ellipse).
        un = np.clip(u / (half * 0.95), -1.0, 1.0)
        ellipse = np.sqrt(np.clip(1.0 - un * un, 0.0, 1.0))
        # Beyond the corners the jaw still moves a little, fading over half a mouth width.
        side = 1.0 - _smoothstep((np.abs(u) - half) / (half * 0.6))
        wx = np.maximum(ellipse, 0.35 * side)
        ramp = max(2.0, 0.05 * width)
        below = _smoothstep((v - (lip_v - ramp)) / (2 * ramp))
        fade = 1.0 - _smoothstep((v - chin_v) / (0.45 * width))
        self.w_jaw = (wx * below * fade).astype(np.float32)
        self.ellipse = ellipse.astype(np.float32)
        self.v, self.lip_v, self.ramp = v.astype(np.float32), lip_v, ramp
        # Eyes: an elliptical patch in each eye's own axes, upper lid to below the lower lid.
        self.eyes = []
        for upper, lower, ca, cb in () if dub else EYES:
            a, b = p[ca] - origin, p[cb] - origin
            ecentre = (a + b) / 2
            eaxis = (b - a) / max(1e-6, float(np.linalg.norm(b - a)))
            edown = np.array([-eaxis[1], eaxis[0]], np.float32)
            if np.dot(down, edown) < 0:
                edown = -edown
            eu = (gx - ecentre[0]) * eaxis[0] + (gy - ecentre[1]) * eaxis[1]
            ev = (gx - ecentre[0]) * edown[0] + (gy - ecentre[1]) * edown[1]
            top = float(np.dot(p[upper] - origin - ecentre, edown))
            bottom = float(np.dot(p[lower] - origin - ecentre, edown))
            span = max(2.0, bottom - top)
            rx, ry = float(np.linalg.norm(b - a)) / 2 * 1.2, span * 1.1
            r = np.sqrt((eu / rx) ** 2 + ((ev - (top + bottom) / 2) / ry) ** 2)
            weight = (1.0 - _smoothstep((r - 0.6) / 0.4)).astype(np.float32)
            lid = top - 0.2 * span
            # How far to move along the eye's "down" so the rows show the skin above the lid.
            shift = (lid - 0.5 * span + 0.25 * (ev - lid)) - ev
            self.eyes.append((edown, (weight * shift).astype(np.float32)))
        # Head motion moves the face inside a feathered ellipse; the border stays put.
        fcx, fcy = roi_w / 2, roi_h / 2
        r = np.sqrt(((gx - fcx) / (roi_w / 2)) ** 2 + ((gy - fcy) / (roi_h / 2)) ** 2)
        self.w_head = (1.0 - _smoothstep((r - 0.7) / 0.3)).astype(np.float32)
        self.roi = image[self.y0 : self.y1, self.x0 : self.x1].astype(np.float32)

    def frame(
        self, openness: float, blink: float = 0.0, offset: tuple[float, float] = (0.0, 0.0)
    ) -> np.ndarray:
        map_x = self.gx - offset[0] * self.w_head
        map_y = self.gy - offset[1] * self.w_head
        target = openness * self.drop
        d = target - self.gap if self.dub else target
        if abs(d) > 0.05:
            map_x = map_x - d * self.w_jaw * self.down[0]
            map_y = map_y - d * self.w_jaw * self.down[1]
        if blink > 0:
            for edown, shift in self.eyes:
                # As the eye closes, the skin just above the upper lid is drawn down over it.
                map_x = map_x + blink * shift * edown[0]
                map_y = map_y + blink * shift * edown[1]
        out = cv2.remap(self.roi, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if target > 0.5 and d > 0:
            # Shade the opened gap (between the lower lip's old and new place) like a mouth.
            height = target * self.ellipse
            v = self.v
            inner = _smoothstep((v - (self.lip_v - self.ramp)) / (2 * self.ramp)) * (
                1.0 - _smoothstep((v - (self.lip_v + height - self.ramp)) / (2 * self.ramp))
            )
            shade = (0.7 * inner * np.clip(height / 3.0, 0.0, 1.0))[..., None]
            out = out * (1 - shade) + MOUTH_DARK * shade
        frame = self.image.copy()
        frame[self.y0 : self.y1, self.x0 : self.x1] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
        return frame


class VisemeRenderer:
    """The ``viseme`` backend as a frame renderer: ``run`` takes (output index, frame, face)
    in order and yields each frame with the mouth set for that index. A still portrait
    (``still=True``) also blinks and sways; a dubbed video keeps its own eyes and motion, and
    frames without a face pass through untouched."""

    name = "viseme"

    def __init__(
        self,
        openness: np.ndarray,
        blinks: np.ndarray | None = None,
        sway: np.ndarray | None = None,
        still: bool = True,
    ) -> None:
        self.openness = openness
        self.blinks = blinks
        self.sway = sway
        self.still = still

    def run(self, items):
        animator, seen = None, None
        for i, frame, face in items:
            if face is None:
                yield frame
                continue
            if not self.still:
                yield VisemeAnimator(frame, face, dub=True).frame(float(self.openness[i]))
                continue
            if face is not seen:
                animator, seen = VisemeAnimator(frame, face), face
            blink = float(self.blinks[i]) if self.blinks is not None else 0.0
            offset = tuple(self.sway[i]) if self.sway is not None else (0.0, 0.0)
            yield animator.frame(float(self.openness[i]), blink, offset)
