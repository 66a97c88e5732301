"""Deliver a publish where it is served from: a local folder or S3, plain or versioned.

Contract: :func:`publish_to` publishes ``source`` to ``location`` and returns a
:class:`Delivery` (the report, and for a versioned stream the version added and the new
``current.json``):

- a local folder, plain: the publish itself (:func:`reelforge.video.publish.publish`);
- a local folder, ``versioned``: ``location`` is a stream folder, held for the whole run
  (:func:`reelforge.outputs.stream_folder`, one version added at a time); the publish goes
  into a new version folder inside it and the pointers switch to it
  (:func:`reelforge.delivery.versions.switch`) as soon as it is playable;
- ``s3://BUCKET/PREFIX``: the same, built in a local scratch folder (for a versioned
  stream, its ``current.json`` fetched first, so the history carries on) and uploaded by
  :func:`deliver`, pointer files last; objects already there are replaced. The playable
  stream is uploaded as soon as it is there (segments, manifests, pointers), the extras
  and the final report when they are done.

:func:`deliver` uploads a local output (a stream, or a stream folder with its pointers) to
an S3 location, what changed since an earlier call when given its ``uploaded`` record,
and returns how many objects it wrote.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from reelforge.layout import CURRENT
from reelforge.progress import NullProgress, Progress
from reelforge.storage import S3Location, download_file, is_s3, parse_s3, upload_tree
from reelforge.video.publish import PublishOptions, publish
from reelforge.video.report import PublishReport

if TYPE_CHECKING:
    from reelforge.video.chunks import ChunkRunner


@dataclass
class Delivery:
    """What :func:`publish_to` did: the publish report (its ``output`` the location), and
    for a versioned stream the version added and the stream's new ``current.json``."""

    report: PublishReport
    location: str
    version: str | None = None
    state: dict | None = None


def publish_to(
    source: str | Path,
    location: str | Path,
    options: PublishOptions | None = None,
    *,
    versioned: bool = False,
    progress: Progress | None = None,
    runner: ChunkRunner | None = None,
) -> Delivery:
    """Publish ``source`` to a folder or ``s3://BUCKET/PREFIX`` (see the module's contract);
    ``runner`` runs a chunked publish's chunks (see :func:`reelforge.video.publish.publish`;
    for S3 the chunks are made in a local scratch folder, so only a local runner fits)."""
    opts = options or PublishOptions()
    source = Path(source)
    if is_s3(location):
        done = _to_s3(source, parse_s3(str(location)), opts, versioned, progress, runner)
        done.report.output = done.location = str(location)
        return done
    return _to_folder(source, Path(location), opts, versioned, progress, runner=runner)


def deliver(local_output: Path, location: str | S3Location, *,
            progress: Progress | None = None,
            uploaded: dict[str, tuple[int, int]] | None = None) -> int:  # fmt: skip
    """Upload the output ``local_output`` to ``location`` (pointer files last); with
    ``uploaded`` (kept between calls), only what changed since. Returns the number of
    objects written."""
    where = parse_s3(location) if isinstance(location, str) else location
    files = sum(1 for p in local_output.rglob("*") if p.is_file())
    update = (progress or NullProgress()).stage("upload", files, "files")
    count = upload_tree(local_output, where, uploaded=uploaded)
    update(files)
    return count


Hook = Callable[[PublishReport], None]


def _to_folder(source: Path, output: Path, opts: PublishOptions, versioned: bool,
               progress: Progress | None, on_playable: Hook | None = None,
               runner: ChunkRunner | None = None) -> Delivery:  # fmt: skip
    if not versioned:
        report = publish(source, output, opts, progress, on_playable=on_playable,
                         runner=runner)  # fmt: skip
        return Delivery(report, str(output))
    from reelforge.delivery.versions import new_version_name, switch
    from reelforge.outputs import stream_folder

    with stream_folder(output, inputs=[source]):  # one version added at a time
        version = new_version_name()
        switched: list[dict] = []

        def playable(report: PublishReport) -> None:
            switched.append(switch(output, version))  # players get the new version now
            if on_playable is not None:
                on_playable(report)

        report = publish(source, output / version, opts, progress, on_playable=playable,
                         runner=runner)  # fmt: skip
        return Delivery(report, str(output), version, switched[-1])


def _to_s3(source: Path, where: S3Location, opts: PublishOptions, versioned: bool,
           progress: Progress | None, runner: ChunkRunner | None = None) -> Delivery:  # fmt: skip
    """Publish into a local scratch folder; upload it once playable (pointers last), then
    what the extras added."""
    uploaded: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="reelforge-publish-") as tmp:
        local = Path(tmp) / "stream"
        local.mkdir()
        if not versioned:  # the scratch folder is ours; S3 objects are replaced
            local, opts = local / "out", replace(opts, force=True)
        else:
            download_file(where, CURRENT, local / CURRENT)

        def playable(_report: PublishReport) -> None:
            deliver(local, where, progress=progress, uploaded=uploaded)

        done = _to_folder(source, local, opts, versioned, progress, on_playable=playable,
                          runner=runner)  # fmt: skip
        deliver(local, where, progress=progress, uploaded=uploaded)
    return done
