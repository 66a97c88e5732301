"""Face and lip landmarks from MediaPipe's face mesh (the model ships inside the wheel).

Contract: :class:`FaceTracker` takes RGB frames in order and returns, per frame, the
landmarks of the largest face (or of face ``index`` by size) in pixels, or ``None`` when no
face is found. :func:`mouth_opening` is the inner-lip gap divided by the distance between
the outer eye corners, so it does not depend on the face's size in the picture. A face whose
landmarks span under :data:`MIN_FACE_PX` on either side is too small to animate.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 33, 263
MOUTH_CORNERS = (61, 291)
MIN_FACE_PX = 40  # smaller faces have a mouth of a dozen pixels: nothing to animate


@dataclass(frozen=True)
class Face:
    points: np.ndarray  # (468, 2) pixel coordinates
    box: tuple[float, float, float, float]  # x0, y0, x1, y1

    @property
    def width(self) -> float:
        return max(0.0, self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return max(0.0, self.box[3] - self.box[1])

    @property
    def large_enough(self) -> bool:
        """Whether the face is large enough to animate (:data:`MIN_FACE_PX` each way)."""
        return min(self.width, self.height) >= MIN_FACE_PX

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def mouth_opening(face: Face) -> float:
    p = face.points
    gap = np.linalg.norm(p[UPPER_INNER_LIP] - p[LOWER_INNER_LIP])
    eyes = np.linalg.norm(p[LEFT_EYE_OUTER] - p[RIGHT_EYE_OUTER])
    return float(gap / eyes) if eyes > 0 else float("nan")


class _NativeStderrSilenced:
    """While active, what native code writes to file descriptor 2 (TensorFlow Lite's and
    absl's INFO lines, from any thread, at any time) goes nowhere, while Python's own
    ``sys.stderr`` (error lines, progress bars) keeps writing to the real stream."""

    def __init__(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._python_stderr = sys.stderr
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(
            os.dup(self._saved), "w", buffering=1, encoding="utf-8", errors="replace"
        )

    def restore(self) -> None:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = self._python_stderr
        os.dup2(self._saved, 2)
        os.close(self._saved)


class FaceTracker:
    """Landmarks frame after frame (tracking mode: faster and steadier than per image)."""

    def __init__(self, max_faces: int = 4, index: int = 0, still: bool = False) -> None:
        # Not a ReelForge setting: quiets MediaPipe's C++ logging, which reads these itself.
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        self._quiet = _NativeStderrSilenced()
        try:
            import mediapipe as mp

            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=still,
                max_num_faces=max_faces,
                refine_landmarks=False,
                min_detection_confidence=0.5,
                min_tracking_confidence=0.5,
            )
        except BaseException:
            self._quiet.restore()
            raise
        self.index = index

    def close(self) -> None:
        try:
            self._mesh.close()
        finally:
            self._quiet.restore()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def faces(self, rgb: np.ndarray) -> list[Face]:
        """Every face found, largest first."""
        h, w = rgb.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(rgb))
        faces = []
        for landmarks in result.multi_face_landmarks or []:
            pts = np.array([(lm.x * w, lm.y * h) for lm in landmarks.landmark], dtype=np.float32)
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            faces.append(Face(pts, (float(x0), float(y0), float(x1), float(y1))))
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def track(self, rgb: np.ndarray) -> Face | None:
        found = self.faces(rgb)
        return found[self.index] if len(found) > self.index else None
