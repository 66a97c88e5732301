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

A job that waits for its chunks holds its own worker slot meanwhile, so when every slot
holds a waiting job no worker is left for the chunks. The waiting process therefore works
too: a chunk that no worker has started after ``steal_after`` seconds is revoked and
encoded by the process waiting for it (the last such chunk first: workers take the queue
from its front). The chunks of any number of jobs on any number of slots always finish; a
chunk that a worker takes anyway (a revoke it did not hear) is encoded twice and kept once.

:func:`worker_chunking` is the policy of a publish that runs as a job on the workers: a
title over :data:`AUTO_CHUNK_OVER_S` seconds is chunked (:data:`AUTO_CHUNK_SECONDS`) unless
the command set ``--chunk-seconds`` (``0``: never), and its chunks become tasks.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
STEAL_AFTER_S = 10.0  # a chunk no worker has started by then is encoded by the job itself
AUTO_CHUNK_OVER_S = 180.0  # on the workers, titles longer than this are chunked by default
AUTO_CHUNK_SECONDS = 30.0


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

    def __init__(self, app, workers: int | None = None, *, queue: str = "cpu",
                 steal_after: float | None = STEAL_AFTER_S) -> None:  # fmt: skip
        self.app, self.queue, self.steal_after = app, queue, steal_after
        if workers is None:
            from reelforge.workers.dispatch import live_workers

            workers = sum(w["concurrency"] or 1 for w in live_workers(app)
                          if queue in w["queues"])  # fmt: skip
        self.workers = max(1, workers)

    def map(self, specs: Sequence[ChunkSpec], out_dir: Path,
            progress: Progress | None = None) -> list[ChunkResult]:  # fmt: skip
        from reelforge.video.chunks import ChunkResult, encode_chunk

        specs = list(specs)
        update = (progress or NullProgress()).stage(
            "encode (chunks)", sum(s.frames for s in specs), "frames"
        )
        if not specs:
            return []
        task = self.app.tasks[ENCODE_CHUNK]
        sent, here = [], {}
        try:
            for spec in specs:
                sent.append(task.apply_async(args=[spec.model_dump_json(), str(out_dir)],
                                             queue=self.queue))  # fmt: skip
            pending, done, since = set(range(len(sent))), 0, time.monotonic()
            while pending:
                for i in sorted(pending):
                    if sent[i].ready():
                        sent[i].get(propagate=True)  # a failed chunk raises its error here
                        pending.discard(i)
                        done += specs[i].frames
                update(done)
                idle = self._unstarted(sent, pending, since)
                if idle is not None:  # no worker for it: encode it here
                    base = done
                    self._revoke([sent[idle].id])
                    here[idle] = encode_chunk(specs[idle], out_dir,
                                              lambda n, base=base: update(base + n))  # fmt: skip
                    pending.discard(idle)
                    done += specs[idle].frames
                    since = time.monotonic()
                elif pending:
                    time.sleep(POLL_S)
            return [here.get(i) or ChunkResult.model_validate_json(r.get())
                    for i, r in enumerate(sent)]  # fmt: skip
        except BaseException:
            self._revoke([r.id for r in sent])
            raise

    def _unstarted(self, sent, pending: set[int], since: float) -> int | None:
        """The pending chunk to encode here: the last one no worker has started, once the
        chunks have waited ``steal_after`` seconds since the last one ended here."""
        if self.steal_after is None or time.monotonic() - since < self.steal_after:
            return None
        for i in sorted(pending, reverse=True):
            if sent[i].state == "PENDING":  # STARTED once a worker runs it (track_started)
                return i
        return None

    def _revoke(self, ids: list[str]) -> None:
        with contextlib.suppress(Exception):  # the broker away: nothing more to do
            self.app.control.revoke(ids)


def worker_chunking(options, source: Path, output: str, config) -> tuple[object, object | None]:
    """``(options, runner)`` for a publish to ``output`` that runs as a job on the workers
    (see the module docstring): options with ``chunk_seconds`` decided, and the runner for
    its chunks (None: publish's own). The chunks are tasks when ``output`` is a folder (the
    workers share it); for ``s3://`` they run on this worker (a local scratch folder)."""
    from reelforge.media.probe import probe
    from reelforge.storage import is_s3
    from reelforge.video.chunks import LocalRunner

    seconds = options.chunk_seconds
    if seconds is None:
        try:
            duration = probe(source).duration
        except Exception:  # publish itself says what is wrong with the source
            duration = 0.0
        seconds = AUTO_CHUNK_SECONDS if duration > AUTO_CHUNK_OVER_S else 0
    options = dataclasses.replace(options, chunk_seconds=seconds or None)
    if not seconds:
        return options, None
    if is_s3(output):
        return options, LocalRunner()
    from reelforge.workers.celery import create_app  # only a chunked publish needs the app

    return options, CeleryChunkRunner(create_app(config))
