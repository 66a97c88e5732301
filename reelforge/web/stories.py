"""A story sent to the service: its files laid out safely, checked before any work.

Contract: :func:`place` puts a story's files under its video's source folder
(names are relative paths; anything absolute, with ``..``, a dot-name, a drive or a
control character is refused), :func:`check_story` loads the story with the pipeline's own
parser and then refuses anything that reaches outside that folder (a path in the story that
resolves elsewhere, through ``..`` or a symlink: refused before it is read) or names
server files through publish options. Errors are
:class:`~reelforge.errors.InputError` naming ``story.yaml:line:column`` relative to the
story, never the server's folders.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from reelforge.errors import InputError

STORY_NAME = "story.yaml"
MAX_FILES = 500
# publish options a story may give over the service (none of them names a file)
SAFE_PUBLISH = {
    "codecs", "preset", "segment_duration", "start_segments", "audio_bitrate_kbps",
    "quality", "poster", "thumbnails", "thumbnail_interval", "fallback", "rungs",
    "per_title", "target_vmaf", "audio_language",
}  # fmt: skip


def safe_name(name: str) -> PurePosixPath:
    """``name`` as a relative path inside a story's folder, or an :class:`InputError`."""
    text = name.replace("\\", "/")
    path = PurePosixPath(text)
    if (not text or path.is_absolute() or ":" in path.parts[0] or len(text) > 512
            or any(p in ("", ".", "..") or p.startswith(".") for p in text.split("/"))
            or not text.isprintable()):  # fmt: skip
        raise InputError(f"{name!r} is not a file name inside the story's folder",
                         code="bad-file-name", option="files")  # fmt: skip
    return path


def place(folder: Path, name: str) -> Path:
    """Where the story file ``name`` goes (its folders made), refusing a name taken."""
    rel = safe_name(name)
    target = folder.joinpath(*rel.parts)
    if target.exists() or target.is_symlink():
        raise InputError(f"{name!r} is given twice", code="bad-file-name", option="files")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def check_story(folder: Path):
    """Load ``folder/story.yaml`` with the pipeline's parser and check it stays inside
    ``folder``; returns the story."""
    from reelforge.pipeline.story import load

    path = folder / STORY_NAME
    try:
        story = load(path, confined=True)
    except InputError as exc:
        raise InputError(_relative(str(exc), folder), code=exc.code, option="story") from None
    extra = sorted(set(story.publish) - SAFE_PUBLISH)
    if extra:
        raise InputError(f"{STORY_NAME}: publish: {', '.join(extra)} cannot be set "
                         "through the service", code="input", option="story")  # fmt: skip
    return story


def planned_steps(story) -> int:
    """About how many steps making ``story`` takes (for progress)."""
    from reelforge.voice.script import load as load_script

    langs = story.all_languages
    steps = len(story.cast)
    for scene in story.scenes:
        for field in ("script", "narration"):
            value = getattr(scene, field)
            if value is None:
                continue
            first = value[langs[0]] if isinstance(value, dict) else value
            try:
                turns = len(load_script(first).turns)
            except Exception:  # the pipeline reports a bad script itself
                turns = 1
            steps += turns * len(langs) * (2 if field == "script" else 1)
    return steps + 2 * len(langs)


def _relative(message: str, folder: Path) -> str:
    return message.replace(str(folder.absolute()) + os.sep, "").replace(str(folder), ".")
