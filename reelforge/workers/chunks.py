"""A chunked encode's chunks as Celery tasks: :class:`CeleryChunkRunner`.

Contract: :class:`CeleryChunkRunner` is a :class:`reelforge.video.chunks.ChunkRunner`:
:meth:`~CeleryChunkRunner.map` sends one ``reelforge.encode_chunk`` task per chunk spec to
its queue (``cpu``; the spec as JSON and the chunk folder, which must be on storage every
worker sees at the same path), reports progress as chunks finish (their frames), and
returns the results in the specs' order. A chunk that fails revokes the others and raises
its error (a ReelForge error keeps its type and message); Ctrl-C revokes them all.
:func:`reelforge.video.chunks.encode_chunk` is idempotent (a spec names its folder, and one
already made is returned as it is), so a chunk delivered twice (its worker lost, a
visibility timeout passed) is encoded once, and a chunk whose worker stops (SIGTERM) goes
back to the queue.

A job that waits for its chunks holds its own worker slot meanwhile: give the chunks
capacity of their own (workers taking only ``cpu`` while jobs arrive on another queue, or a
concurrency above the number of jobs that may wait at once), or the chunks of as many jobs
as there are slots can wait for ever.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from celery import shared_task
from celery.exceptions import Reject

from reelforge.media import ffmpeg
from reelforge.progress import NullProgress, Progress

if TYPE_CHECKING:
    from reelforge.video.chunks import ChunkResult, ChunkSpec

ENCODE_CHUNK = "reelforge.encode_chunk"
POLL_S = 0.25


@shared_task(bind=True, name=ENCODE_CHUNK, acks_late=True, reject_on_worker_lost=True)
def encode_chunk_task(self, spec_json: str, out_dir: str) -> str:
    """Encode one chunk (:func:`reelforge.video.chunks.encode_chunk`) in this worker
    process; its :class:`~reelforge.video.chunks.ChunkResult` as JSON."""
    from reelforge.video.chunks import ChunkSpec, encode_chunk
    from reelforge.workers.celery import STOPPING

    ffmpeg.use_binary(self.app.settings.ffmpeg)
    try:
        result = encode_chunk(ChunkSpec.model_validate_json(spec_json), out_dir)
    except Exception:
        if STOPPING.is_set():  # its ffmpeg was stopped: the chunk goes back to the queue
            raise Reject("the worker is stopping", requeue=True) from None
        raise
    return result.model_dump_json()


class CeleryChunkRunner:
    """Chunks as tasks on ``queue`` of ``app``'s workers (see the module docstring);
    ``workers``: how many chunks run at once (default: the concurrency of the live workers
    that take ``queue``), which tells the planner to keep each encoder single-threaded."""

    def __init__(self, app, workers: int | None = None, *, queue: str = "cpu") -> None:
        self.app, self.queue = app, queue
        if workers is None:
            from reelforge.workers.dispatch import live_workers

            workers = sum(w["concurrency"] or 1 for w in live_workers(app)
                          if queue in w["queues"])  # fmt: skip
        self.workers = max(1, workers)

    def map(self, specs: Sequence[ChunkSpec], out_dir: Path,
            progress: Progress | None = None) -> list[ChunkResult]:  # fmt: skip
        from reelforge.video.chunks import ChunkResult

        specs = list(specs)
        update = (progress or NullProgress()).stage(
            "encode (chunks)", sum(s.frames for s in specs), "frames"
        )
        if not specs:
            return []
        task = self.app.tasks[ENCODE_CHUNK]
        sent = []
        try:
            for spec in specs:
                sent.append(task.apply_async(args=[spec.model_dump_json(), str(out_dir)],
                                             queue=self.queue))  # fmt: skip
            pending, done = set(range(len(sent))), 0
            while pending:
                for i in sorted(pending):
                    if sent[i].ready():
                        sent[i].get(propagate=True)  # a failed chunk raises its error here
                        pending.discard(i)
                        done += specs[i].frames
                update(done)
                if pending:
                    time.sleep(POLL_S)
            return [ChunkResult.model_validate_json(r.get()) for r in sent]
        except BaseException:
            with contextlib.suppress(Exception):  # the broker away: nothing more to do
                self.app.control.revoke([r.id for r in sent])
            raise
