"""The pipeline: steps keyed by their inputs and options, a step cache, a job store.

- :mod:`.spec`: :class:`~.spec.StepSpec`, what one step is asked to do;
- :mod:`.digest`: content digests of input files (memoised) and step keys;
- :mod:`.cache`: finished steps' output folders by key, built once, renamed into place;
- :mod:`.jobs`: the job store (SQLite by default, any SQLAlchemy URL), status and progress;
- :mod:`.runner`: the step registry, :class:`~.runner.Pipeline` (one job's run in-process),
  progress that records itself in the store, cancellation;
- :mod:`.watch`: a watched inbox whose files are published exactly once.

Importing this package imports none of them (the story reader needs no database).
"""
