"""Terminal output for the CLI: Rich progress bars and tables, all on stderr.

Contract: :class:`RichProgress` implements :class:`reelforge.progress.Progress` with one
bar per stage showing percent, done/total and the time left. When the block under
:func:`progress_bars` fails, the bars leave nothing behind, so an error is one line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from reelforge.progress import Update

err_console = Console(stderr=True)
out_console = Console()


class RichProgress:
    """Progress bars on stderr; one task per stage."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def stage(self, name: str, total: float, unit: str = "") -> Update:
        task = self._progress.add_task(name, total=max(total, 1), unit=unit)

        def update(completed: float) -> None:
            self._progress.update(task, completed=int(completed))

        return update


@contextlib.contextmanager
def progress_bars(enabled: bool = True) -> Iterator[RichProgress | None]:
    if not enabled:
        yield None
        return
    bars = Progress(
        TextColumn("[bold]{task.description:<15}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    bars.start()
    try:
        yield RichProgress(bars)
    except BaseException:
        # The error line is the last word: no bars left above it (cleared on a terminal,
        # never printed to a file or pipe).
        bars.live.transient = True
        raise
    finally:
        if not bars.tasks:
            bars.live.transient = True
        # Live.stop, not Progress.stop: that one prints a newline on a non-terminal even
        # when there is nothing on the line (the empty line an error came after).
        bars.live.stop()
        if not bars.live.transient and not err_console.is_interactive:
            err_console.line()
