"""The ``make`` command: a story file in, a published, subtitled stream out.

Contract: a thin shell over :func:`reelforge.pipeline.graph.make` (given the settings the
command loaded: hosted APIs' keys, the voice cache), recorded as a job
(``reelforge jobs retry`` runs it again, its finished steps from the cache); one progress
bar for the job (or, with ``--json``, progress as JSON lines and the report as the last
line), then a table of the steps. With a broker set (``REELFORGE_BROKER``) it runs on the
workers unless ``--local`` is given, with the same output and exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from reelforge.cli_options import JsonOpt, WorkersOpt
from reelforge.cli_workers import make_on_workers, use_workers
from reelforge.console import out_console


def make(
    story: Annotated[Path, typer.Argument(help="The story file (YAML: title, cast, scenes).")],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="Output folder or s3://BUCKET/PREFIX (default: the story's output:).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    workers: WorkersOpt = None,
) -> None:
    """Make a story into a published stream: voices, talking shots, footage, subtitles."""
    from reelforge.cli import settings
    from reelforge.cli_jobs import progress_sink, recorded_command
    from reelforge.pipeline.graph import make as make_story

    if use_workers(workers):
        _show(make_on_workers(output or story, as_json=as_json, subject=story.name), as_json)
        return
    with (
        recorded_command("make", output or story, subject=story.name) as (state, job_id),
        progress_sink(as_json) as sink,
    ):
        report = make_story(story, output, state.pipeline(job_id, sink=sink), config=settings())
    _show(report, as_json)


def _show(report, as_json: bool) -> None:
    """What make prints: the report as a JSON line, or a table of its steps."""
    if as_json:
        print(report.model_dump_json(), flush=True)
        return
    table = Table(title=f"{report.title}: {report.output}")
    for col in ("step", "status", "seconds", "key"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for step in report.steps:
        table.add_row(step["step"], step["status"], f"{step['seconds']:.1f}", step["key"][:12])
    out_console.print(table)
    done = sum(1 for s in report.steps if s["status"] == "done")
    out_console.print(
        f"{report.duration:.1f} s of video in {report.seconds:.1f} s; {done} steps made, "
        f"{len(report.steps) - done} from the cache. Watch it: reelforge serve {report.output}",
        highlight=False,
    )
