"""A content-addressed cache of synthesised chunks.

Contract: the key is a SHA-256 over everything that changes a chunk's audio: backend name,
model, the voices of the speakers in the chunk (a reference clip by its bytes' hash), the
chunk's text, generation parameters and any audio prompt. Entries are written through a
temporary file and renamed, so a crash never leaves a torn entry. The folder is the one
given (the CLI passes the settings' :attr:`~reelforge.config.Config.voice_cache_dir`), else
:func:`default_dir`.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from reelforge.config import user_cache_dir
from reelforge.fsutil import write_bytes_atomic
from reelforge.voice.backends.base import Synthesis


def default_dir() -> Path:
    """``voice/`` in the user cache folder (``~/.cache/reelforge/voice`` on Linux)."""
    return user_cache_dir() / "voice"


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_key(parts: dict) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


class ChunkCache:
    def __init__(self, folder: Path | None = None, enabled: bool = True) -> None:
        self.folder = folder or default_dir()
        self.enabled = enabled

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npz"

    def get(self, key: str) -> Synthesis | None:
        if not self.enabled:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                bounds = meta.get("line_bounds")
                return Synthesis(
                    audio=data["audio"].astype(np.float32),
                    sample_rate=int(meta["sample_rate"]),
                    line_bounds=[tuple(b) for b in bounds] if bounds else None,
                    model=meta.get("model", ""),
                    cost=meta.get("cost"),
                )
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key: str, synth: Synthesis) -> None:
        if not self.enabled:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "sample_rate": synth.sample_rate,
            "line_bounds": synth.line_bounds,
            "model": synth.model,
            "cost": synth.cost,
        }
        buf = io.BytesIO()
        np.savez(buf, audio=synth.audio.astype(np.float32), meta=np.array(json.dumps(meta)))
        write_bytes_atomic(path, buf.getvalue())
