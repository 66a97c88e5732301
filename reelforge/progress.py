"""Progress reporting between library steps and whatever shows it.

Contract: a step calls ``progress.stage(name, total, unit)`` when it starts a piece of work
and then calls the returned function with the amount completed so far (absolute, in the
stage's unit). :class:`NullProgress` ignores everything; the CLI supplies a Rich one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Update = Callable[[float], None]


class Progress(Protocol):
    def stage(self, name: str, total: float, unit: str = "") -> Update:
        """Begin a stage of ``total`` units; returns a function taking units completed."""
        ...


class NullProgress:
    """Progress that goes nowhere."""

    def stage(self, name: str, total: float, unit: str = "") -> Update:
        return lambda completed: None
