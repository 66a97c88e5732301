"""``heygen``: HeyGen's avatar video API with the portrait as a talking photo and our
speech as the voice.

Protocol (docs.heygen.com): the portrait goes to ``POST {upload}/v1/talking_photo`` (the raw
JPEG or PNG bytes, ``Content-Type`` naming the type), answering ``data.talking_photo_id``;
the speech, as MP3 (the asset upload takes ``audio/mpeg``), to ``POST {upload}/v1/asset``,
answering ``data.id``. ``POST {api}/v2/video/generate`` with one video input, a
``talking_photo`` character and an ``audio`` voice (``audio_asset_id``), and a
``dimension`` of the portrait's aspect (longer side at most 1280), answers
``data.video_id``; ``GET {api}/v1/video_status.get?video_id=...`` answers ``data.status``
(``pending``, ``waiting``, ``processing``, then ``completed`` or ``failed``) with
``data.video_url`` or ``data.error`` (code, message, detail). The key is the
:class:`~reelforge.config.Services`' ``HEYGEN_API_KEY``, sent as ``X-Api-Key``;
``HEYGEN_API_URL`` and ``HEYGEN_UPLOAD_URL`` point elsewhere. HeyGen's reference marks the
talking-photo upload as superseded by its Photo Avatars API; it is driven as documented.
"""

from __future__ import annotations

import mimetypes
import tempfile
from pathlib import Path

from PIL import Image

from reelforge.config import Services
from reelforge.errors import BackendError
from reelforge.http.client import ApiClient
from reelforge.lipsync.backends.prep import mp3, reason

API_URL = "https://api.heygen.com"
UPLOAD_URL = "https://upload.heygen.com"
MAX_SIDE = 1280


def dimension(portrait: Path) -> dict:
    """The portrait's aspect at a size HeyGen renders: longer side at most 1280, even."""
    with Image.open(portrait) as im:
        w, h = im.size
    scale = min(1.0, MAX_SIDE / max(w, h))
    return {"width": max(2, int(w * scale) // 2 * 2), "height": max(2, int(h * scale) // 2 * 2)}


class HeyGenBackend:
    name = "heygen"
    accepts = ("image",)

    def __init__(
        self,
        services: Services,
        model: str | None = None,
        poll_interval: float = 5.0,
        timeout: float = 900.0,
    ) -> None:
        self.client = ApiClient(
            "HeyGen", services, key_env="HEYGEN_API_KEY", auth_header="X-Api-Key"
        )
        self.base = services.url("HEYGEN_API_URL", API_URL)
        self.upload = services.url("HEYGEN_UPLOAD_URL", UPLOAD_URL)
        self.poll_interval, self.timeout = poll_interval, timeout

    def _post_file(self, path: str, file: Path, mime: str) -> dict:
        answer = self.client.request(
            "POST",
            f"{self.upload}{path}",
            content=file.read_bytes(),
            headers={"Content-Type": mime},
        ).json()
        data = answer.get("data") or {}
        if answer.get("code") not in (None, 100) or not data:
            why = reason(answer, ("message", "msg", "error"), self.client.scrub)
            raise BackendError(
                f"HeyGen: uploading {file.name} failed" + (f": {why}" if why else "")
            )
        return data

    def render(self, face: Path, audio: Path, sync_mode: str = "cut") -> tuple[bytes, dict]:
        """The talking video's bytes and what HeyGen said (the video lasts as long as the
        audio, so ``sync_mode`` has nothing to choose)."""
        mime = mimetypes.guess_type(face.name)[0] or "image/jpeg"
        photo = self._post_file("/v1/talking_photo", face, mime).get("talking_photo_id")
        if not photo:
            raise BackendError("HeyGen: the talking photo upload returned no talking_photo_id")
        with tempfile.TemporaryDirectory(prefix="reelforge-heygen-") as tmp:
            asset = self._post_file("/v1/asset", mp3(audio, Path(tmp)), "audio/mpeg").get("id")
        if not asset:
            raise BackendError("HeyGen: the audio asset upload returned no id")
        created = self.client.request(
            "POST",
            f"{self.base}/v2/video/generate",
            json={
                "video_inputs": [
                    {
                        "character": {"type": "talking_photo", "talking_photo_id": photo},
                        "voice": {"type": "audio", "audio_asset_id": asset},
                    }
                ],
                "dimension": dimension(face),
            },
        ).json()
        video_id = (created.get("data") or {}).get("video_id")
        if not video_id:
            why = reason(created, ("error", "message"), self.client.scrub)
            raise BackendError(
                "HeyGen: creating the video returned no video_id" + (f": {why}" if why else "")
            )
        answer = self.client.poll(
            f"{self.base}/v1/video_status.get?video_id={video_id}",
            done=lambda d: (d.get("data") or {}).get("status") in ("completed", "failed"),
            interval=self.poll_interval,
            timeout=self.timeout,
        )
        status = answer.get("data") or {}
        if status.get("status") != "completed":
            why = reason(status, ("error",), self.client.scrub)
            raise BackendError(
                f"HeyGen: video {video_id} ended as {status.get('status')}"
                + (f": {why}" if why else "")
            )
        if not status.get("video_url"):
            raise BackendError(f"HeyGen: video {video_id} is completed but has no video_url")
        video = self.client.request("GET", status["video_url"], auth=False).content
        return video, {
            "video_id": video_id,
            "talking_photo_id": photo,
            "duration": status.get("duration"),
        }
