"""``synthesia``: one of Synthesia's avatars (stock or custom) speaking our audio.

Synthesia animates its own avatars, not a picture we send: ``--model AVATAR[@LANGUAGE]``
names the avatar (a stock one such as ``anna_costume1_cameraA``, or a custom avatar's id)
and the language the audio is in (default ``en-US``). The portrait given to ``talk`` only
sets the output's size: the 16:9 result is cropped about its centre to the portrait's
aspect (then scaled to its size by the talk pipeline).

Protocol (docs.synthesia.io): the speech, as MP3, goes to the Upload API's
``POST {upload}/v2/scriptAudio`` (raw ``audio/mpeg`` body), answering an ``id``;
``POST {api}/v2/videos`` with one input (``avatar``, ``background``, ``scriptAudio`` and
``scriptLanguage``) answers the video's ``id``; ``GET {api}/v2/videos/{id}`` answers
``status`` (``in_progress``, then ``complete``, ``error`` or ``rejected``) and, when
complete, a time-limited ``download`` URL and the ``duration``. The key is the
:class:`~reelforge.config.Services`' ``SYNTHESIA_API_KEY``, sent as the ``Authorization``
header; ``SYNTHESIA_API_URL`` and ``SYNTHESIA_UPLOAD_URL`` point elsewhere.

Synthesia's Dubbing API (``POST /v2/dubbing`` on an uploaded video asset) translates and
re-voices a video's own speech into target languages; it takes no audio of ours, so it
cannot lip-sync a video to our speech and is not a ``talk`` backend.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from reelforge.config import Services
from reelforge.errors import BackendError, InputError
from reelforge.http.client import ApiClient
from reelforge.lipsync.backends.prep import mp3, reason
from reelforge.media import ffmpeg

API_URL = "https://api.synthesia.io"
UPLOAD_URL = "https://upload.api.synthesia.io"
FINAL = ("complete", "error", "rejected")


def parse_model(model: str | None) -> tuple[str, str]:
    """``AVATAR[@LANGUAGE]`` -> (avatar, language); no model is an :class:`InputError`."""
    if not model or not model.split("@")[0].strip():
        raise InputError(
            "synthesia renders one of its own avatars, not your picture: give "
            "--model AVATAR[@LANGUAGE], e.g. anna_costume1_cameraA@en-US (a "
            "stock avatar) or your custom avatar's id"
        )
    avatar, _, language = model.partition("@")
    return avatar.strip(), language.strip() or "en-US"


class SynthesiaBackend:
    name = "synthesia"
    accepts = ("image",)

    def __init__(
        self,
        services: Services,
        model: str | None = None,
        poll_interval: float = 5.0,
        timeout: float = 1800.0,
    ) -> None:
        self.avatar, self.language = parse_model(model)
        self.client = ApiClient(
            "Synthesia", services, key_env="SYNTHESIA_API_KEY", auth_header="Authorization"
        )
        self.base = services.url("SYNTHESIA_API_URL", API_URL)
        self.upload = services.url("SYNTHESIA_UPLOAD_URL", UPLOAD_URL)
        self.poll_interval, self.timeout = poll_interval, timeout

    def render(self, face: Path, audio: Path, sync_mode: str = "cut") -> tuple[bytes, dict]:
        """The avatar video's bytes (cropped to ``face``'s aspect) and what Synthesia said."""
        with tempfile.TemporaryDirectory(prefix="reelforge-synthesia-") as tmp:
            work = Path(tmp)
            sound = mp3(audio, work)
            uploaded = self.client.request(
                "POST",
                f"{self.upload}/v2/scriptAudio",
                content=sound.read_bytes(),
                headers={"Content-Type": "audio/mpeg"},
            ).json()
            if not uploaded.get("id"):
                raise BackendError("Synthesia: the script audio upload returned no id")
            created = self.client.request(
                "POST",
                f"{self.base}/v2/videos",
                json={
                    "test": False,
                    "visibility": "private",
                    "title": f"reelforge {audio.stem}",
                    "input": [
                        {
                            "avatar": self.avatar,
                            "background": "off_white",
                            "scriptAudio": uploaded["id"],
                            "scriptLanguage": self.language,
                        }
                    ],
                },
            ).json()
            video_id = created.get("id")
            if not video_id:
                raise BackendError("Synthesia: creating the video returned no id")
            status = self.client.poll(
                f"{self.base}/v2/videos/{video_id}",
                done=lambda d: d.get("status") in FINAL,
                interval=self.poll_interval,
                timeout=self.timeout,
            )
            if status.get("status") != "complete":
                why = reason(status, ("error", "message", "reason"), self.client.scrub)
                raise BackendError(
                    f"Synthesia: video {video_id} ended as {status.get('status')}"
                    + (f": {why}" if why else "")
                )
            if not status.get("download"):
                raise BackendError(f"Synthesia: video {video_id} is complete but has no download")
            raw = work / "synthesia.mp4"
            raw.write_bytes(self.client.request("GET", status["download"], auth=False).content)
            cropped = work / "cropped.mp4"
            with Image.open(face) as im:
                aspect = im.width / im.height
            ffmpeg.run(
                [
                    "-i",
                    str(raw),
                    "-map",
                    "0:v:0",
                    "-vf",
                    f"crop='trunc(min(iw,ih*{aspect:.6f})/2)*2':'trunc(min(ih,iw/{aspect:.6f})/2)*2'",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-crf",
                    "16",
                    "-an",
                    str(cropped),
                ],
                subject=raw,
            )
            video = cropped.read_bytes()
        return video, {
            "video_id": video_id,
            "avatar": self.avatar,
            "language": self.language,
            "duration": status.get("duration"),
        }
