"""The inner mouth: a portrait's lips parted between its upper and lower teeth.

Contract: :class:`MouthAnimator` is built once from a portrait (or a video frame, with
``dub=True``) and its face landmarks; :meth:`MouthAnimator.frame` returns the picture with
the mouth shaped by one frame of a :class:`~reelforge.lipsync.visemes.MouthTrack` (jaw,
spread, press, tuck, tongue), the eyes closed by ``blink`` and the face shifted by
``offset`` pixels. Only a feathered region around the face changes.

How, in the face's own axes (``u`` along the mouth corners, ``v`` down the chin):

- The mouth splits along a curve through the middle of the inner lips (for a smile that
  shows teeth, where the upper and lower teeth meet; for a dubbed video, along the upper
  inner lip, so the new opening replaces the old one). Everything above it stays: the upper
  lip and the upper teeth do not move. Everything below it (lower teeth, lower lip, jaw)
  moves down by the jaw's drop, widest mid-mouth, fading out towards the chin and beyond the
  corners. The warp is one continuous inverse map (OpenCV ``remap``): no copy of anything is
  left behind.
- The gap between the two edges is painted as an oral cavity from the face's own colours
  (the lips' colour, darkened, deeper in the middle), with upper teeth under the upper lip
  and lower teeth above the lower lip when the portrait shows none of its own (their colour
  from its own teeth when it does), and the tongue for ``tongue`` and open vowels; every
  edge is feathered over about a pixel.
- ``spread`` moves the lip corners outwards (wide vowels) or inwards (rounding), with a
  weight that fades smoothly to nothing around the mouth.
"""

from __future__ import annotations

import cv2
import numpy as np

from reelforge.lipsync.backends.viseme import VisemeAnimator, _smoothstep
from reelforge.lipsync.faces import Face
from reelforge.lipsync.visemes import MouthTrack

UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_OUTER_MID, LOWER_OUTER_MID, NOSE_BOTTOM, CHIN = 0, 17, 2, 152
MAX_DROP = 0.30  # jaw drop at full opening, as a share of the mouth width
SPREAD_WIDEN, SPREAD_ROUND = 0.07, 0.13  # corner travel at spread +1 / -1, share of width
TEETH_UPPER, TEETH_LOWER = 0.085, 0.06  # visible tooth height, share of the mouth width
DEFAULT_TEETH = np.array([226, 220, 206], np.float32)


def _patch(image: np.ndarray, point: np.ndarray, r: int = 2) -> np.ndarray:
    h, w = image.shape[:2]
    x, y = round(float(point[0])), round(float(point[1]))
    x0, x1 = max(0, x - r), min(w, x + r + 1)
    y0, y1 = max(0, y - r), min(h, y + r + 1)
    if x1 <= x0 or y1 <= y0:
        return np.array([128, 90, 90], np.float32)
    return image[y0:y1, x0:x1].reshape(-1, 3).astype(np.float32).mean(axis=0)


class MouthAnimator(VisemeAnimator):
    """See the module docstring. The eyes and head motion are the viseme animator's."""

    def __init__(self, image: np.ndarray, face: Face, dub: bool = False) -> None:
        super().__init__(image, face, dub=dub)
        p = face.points
        origin = np.array([self.x0, self.y0], np.float32)
        axis, down, centre = self.axis, self.down, self.centre

        def uv(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            d = points - origin - centre
            return d @ axis, d @ down

        left, right = uv(p[[61, 291]])[0]
        self.half = half = max(2.0, float(right - left) / 2)
        width = 2 * half
        uu, vu = uv(p[list(UPPER_INNER)])
        ul, vl = uv(p[list(LOWER_INNER)])
        grid = np.linspace(-half, half, 33)
        upper = np.interp(grid, *_sorted(uu, vu))
        lower = np.maximum(np.interp(grid, *_sorted(ul, vl)), upper)
        own_gap = lower - upper
        # Teeth of its own: the inner-lip gap is open and brighter than the lips.
        lip = (_patch(image, (p[UPPER_OUTER_MID] + p[13]) / 2)
               + _patch(image, (p[LOWER_OUTER_MID] + p[14]) / 2)) / 2  # fmt: skip
        inner = _patch(image, (p[13] + p[14]) / 2, r=1)
        gap_mid = float(own_gap[16])
        self.own_teeth = (not dub) and gap_mid > 0.04 * width and inner.mean() > lip.mean() + 25
        self.teeth = inner if self.own_teeth else 0.8 * DEFAULT_TEETH + 0.2 * lip
        self.split_grid = grid
        self.split = (upper + 0.5 * own_gap if not dub else upper + 0.5).astype(np.float32)
        self.own_gap = (own_gap if dub else np.zeros_like(own_gap)).astype(np.float32)
        self.lip = lip.astype(np.float32)
        self.cavity = (0.32 * lip + 6).astype(np.float32)
        self.tongue_rgb = (0.75 * lip + 0.1 * np.array([255, 160, 160])).astype(np.float32)
        self.drop = MAX_DROP * width
        self.width = width
        # The mouth's working box (ROI coordinates): corners +- 70%, nose bottom to chin+.
        _, v_nose = uv(p[[NOSE_BOTTOM]])
        _, v_chin = uv(p[[CHIN]])
        self.chin_v = float(v_chin[0])
        corners = p[[61, 291, NOSE_BOTTOM, CHIN]] - origin
        bx0, by0 = corners.min(axis=0) - np.array([0.7 * half * 2, 0.1 * half])
        bx1, by1 = corners.max(axis=0) + np.array([0.7 * half * 2, 0.9 * half + 2])
        roi_h, roi_w = self.roi.shape[:2]
        self.bx0, self.by0 = max(0, int(bx0)), max(0, int(by0))
        self.bx1, self.by1 = min(roi_w, int(bx1) + 1), min(roi_h, int(by1) + 1)
        gx = self.gx[self.by0 : self.by1, self.bx0 : self.bx1]
        gy = self.gy[self.by0 : self.by1, self.bx0 : self.bx1]
        self.bgx, self.bgy = gx, gy
        self.bu = ((gx - centre[0]) * axis[0] + (gy - centre[1]) * axis[1]).astype(np.float32)
        self.bv = ((gx - centre[0]) * down[0] + (gy - centre[1]) * down[1]).astype(np.float32)
        self.bhead = self.w_head[self.by0 : self.by1, self.bx0 : self.bx1]
        self.top_v = float(v_nose[0])
        # The jaw's pull fades out between the chin and the box's (and the ROI's) bottom.
        bottom_v = float(np.max(self.bv)) if self.bv.size else self.chin_v + 1
        self.fade_len = max(2.0, min(0.45 * width, 0.9 * (bottom_v - self.chin_v)))
        self.split_mid = float(self.split[16])

    def frame_shape(
        self,
        jaw: float,
        spread: float = 0.0,
        tongue: float = 0.0,
        blink: float = 0.0,
        offset: tuple[float, float] = (0.0, 0.0),
    ) -> np.ndarray:
        """The picture with the mouth at ``jaw`` (0-1) and ``spread`` (-1..1), ``tongue``
        shown (0-1), the eyes at ``blink`` and the face shifted by ``offset``."""
        map_x = self.gx - offset[0] * self.w_head
        map_y = self.gy - offset[1] * self.w_head
        if blink > 0:
            for edown, shift in self.eyes:
                map_x = map_x + blink * shift * edown[0]
                map_y = map_y + blink * shift * edown[1]
        ax, dn, c = self.axis, self.down, self.centre
        # Face coordinates of each output pixel in the mouth box (head motion undone).
        ox, oy = offset[0] * self.bhead, offset[1] * self.bhead
        u = self.bu - (ox * ax[0] + oy * ax[1])
        v = self.bv - (ox * dn[0] + oy * dn[1])
        half = self.half
        un = np.clip(u / (half * 0.95), -1.0, 1.0)
        ellipse = np.sqrt(np.clip(1.0 - un * un, 0.0, 1.0))
        split = np.interp(u, self.split_grid, self.split).astype(np.float32)
        own_gap = np.interp(u, self.split_grid, self.own_gap).astype(np.float32)
        # How far the lower part moves: the opening asked for, less the frame's own.
        side = 1.0 - _smoothstep((np.abs(u) - half) / (half * 0.6))
        wx = np.maximum(ellipse, 0.35 * side)
        opening = jaw * self.drop * ellipse  # the gap wanted, in pixels, per column
        disp = jaw * self.drop * wx - own_gap * np.maximum(ellipse, side * 0.35)
        fade = 1.0 - _smoothstep((v - self.chin_v) / self.fade_len)
        disp = disp * fade
        below = v - split
        shift = np.where(below > 0, np.minimum(disp, np.maximum(below, 0.0)), 0.0)
        if self.dub:  # closing pulls the lower lip up over the frame's own opening
            closing = np.where(below > 0, disp, 0.0) * _smoothstep(below + 0.5)
            shift = np.where(disp > 0, shift, closing)
        v_src = v - shift
        # Lip corners: widen or round, strongest at the mouth, nothing far from it.
        k = SPREAD_WIDEN if spread > 0 else SPREAD_ROUND
        scale = 1.0 + k * spread * 2
        r = np.sqrt(
            (u / (half * 1.2)) ** 2 + ((v - split) / (0.9 * half + 0.5 * jaw * self.drop)) ** 2
        )
        top = _smoothstep((v - self.top_v) / max(1.0, self.split_mid - self.top_v))
        w_mouth = (1.0 - _smoothstep((r - 0.8) / 0.9)) * top
        u_src = u - (1.0 - 1.0 / scale) * u * w_mouth
        bx = c[0] + u_src * ax[0] + v_src * dn[0]
        by = c[1] + u_src * ax[1] + v_src * dn[1]
        box = (slice(self.by0, self.by1), slice(self.bx0, self.bx1))
        map_x[box] = bx
        map_y[box] = by
        out = cv2.remap(self.roi, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if jaw * self.drop > 0.6:
            self._paint_cavity(out[box], u, below * 1.0, opening * fade, un, jaw, tongue, scale)
        frame = self.image.copy()
        frame[self.y0 : self.y1, self.x0 : self.x1] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
        return frame

    def _paint_cavity(self, out, u, below, opening, un, jaw, tongue, scale) -> None:
        """Paint the gap ``0 < below < opening`` (face coordinates) in place."""
        if self.dub:
            opening = np.maximum(opening - 0.0, 0.0)
        un = np.clip(un * scale, -1.0, 1.0) if scale < 1 else un
        inside = _smoothstep(below + 0.5) * _smoothstep(opening - below + 0.5)
        taper = _smoothstep((1.0 - np.abs(un)) / 0.25)
        alpha = inside * taper * np.clip(opening / 2.0, 0.0, 1.0)
        if not alpha.any():
            return
        depth = np.clip(below / np.maximum(opening, 1e-3), 0.0, 1.0)
        # The cavity: the lips' colour, darkened, deepest in the middle and at the back.
        shade = 0.75 + 0.25 * np.abs(un) + 0.15 * np.abs(depth - 0.5)
        colour = self.cavity[None, None, :] * shade[..., None]
        width = self.width
        layers = []
        if not self.own_teeth:
            top = np.minimum(0.4 * opening, TEETH_UPPER * width)
            a_up = _smoothstep(top - below + 0.5) * _smoothstep((1 - np.abs(un)) / 0.45)
            lit = (
                0.62 + 0.2 * (1 - np.abs(un)) + 0.1 * np.clip(below / max(1.0, width * 0.03), 0, 1)
            )
            layers.append((a_up, self.teeth * lit[..., None]))
            low = np.minimum(0.22 * opening, TEETH_LOWER * width) * np.clip(jaw * 2 - 0.4, 0, 1)
            a_lo = _smoothstep(below - (opening - low) + 0.5) * _smoothstep((1 - np.abs(un)) / 0.5)
            layers.append((0.8 * a_lo, self.teeth * 0.6))
        tongue_a = max(tongue, 0.5 * max(0.0, jaw - 0.4))
        if tongue_a > 0:
            # Behind the lower teeth for open vowels; up at the teeth for th and l.
            lift = 0.3 + 0.4 * tongue
            cy = opening * (1.0 - 0.5 * lift)
            ry = np.maximum(opening * 0.35, 1.0)
            r = np.sqrt((un / 0.55) ** 2 + ((below - cy) / ry) ** 2)
            a_t = tongue_a * (1.0 - _smoothstep((r - 0.7) / 0.3))
            layers.append((0.9 * a_t, None))
        for a, rgb in layers:
            if rgb is None:
                colour = colour * (1 - a[..., None]) + self.tongue_rgb * a[..., None]
            else:
                colour = colour * (1 - a[..., None]) + np.asarray(rgb) * a[..., None]
        a3 = alpha[..., None]
        out[...] = out * (1 - a3) + colour * a3

    def frame(self, openness, blink=0.0, offset=(0.0, 0.0)):  # the energy animator's call
        return self.frame_shape(float(openness), 0.0, 0.0, blink, offset)


def _sorted(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(u)
    return u[order], v[order]


class MouthRenderer:
    """The ``viseme`` backend driven by a :class:`MouthTrack`: ``run`` takes (output index,
    frame, face) in order and yields each frame with the mouth set for that index. A still
    portrait also blinks and sways; a dubbed video keeps its own eyes and motion; frames
    without a face pass through untouched."""

    name = "viseme"

    def __init__(
        self,
        track: MouthTrack,
        blinks: np.ndarray | None = None,
        sway: np.ndarray | None = None,
        still: bool = True,
    ) -> None:
        self.track = track
        self.blinks = blinks
        self.sway = sway
        self.still = still

    def run(self, items):
        animator, seen = None, None
        t = self.track
        for i, frame, face in items:
            if face is None:
                yield frame
                continue
            shape = float(t.jaw[i]), float(t.spread[i]), float(t.tongue[i])
            if not self.still:
                yield MouthAnimator(frame, face, dub=True).frame_shape(*shape)
                continue
            if face is not seen:
                animator, seen = MouthAnimator(frame, face), face
            blink = float(self.blinks[i]) if self.blinks is not None else 0.0
            offset = tuple(self.sway[i]) if self.sway is not None else (0.0, 0.0)
            yield animator.frame_shape(*shape, blink=blink, offset=offset)
