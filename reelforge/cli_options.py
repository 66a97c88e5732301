"""Options every command shares."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
WorkersOpt = Annotated[
    bool | None,
    typer.Option(
        "--workers/--local",
        help="Run on the Celery workers (the default when REELFORGE_BROKER is set) or here.",
    ),
]
