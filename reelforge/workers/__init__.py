"""Running jobs outside the process that queued them.

- :mod:`reelforge.workers.local`: a job's recorded command as a child process (``reelforge
  jobs run|retry ID``), the one way every runner (the web service's pool, a Celery task)
  starts and stops a job's process;
- :mod:`reelforge.workers.lease`: what a worker adds to a job's record (which task and
  worker run it, a heartbeat) and how a job whose runner went away is taken over;
- :mod:`reelforge.workers.celery`: the Celery app built from the settings, its queues and
  the worker's signal policy; :mod:`reelforge.workers.tasks`: the ``run_job`` task;
- :mod:`reelforge.workers.chunks`: a chunked encode's chunks as tasks
  (:class:`~reelforge.workers.chunks.CeleryChunkRunner`);
- :mod:`reelforge.workers.dispatch`: the sending side: which queue, sending a job, following
  it through the job store, revoking it, the live workers.

Nothing here imports Celery until a broker is configured and a job is sent.
"""
