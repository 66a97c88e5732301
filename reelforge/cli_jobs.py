"""The ``jobs`` and ``watch`` commands, and how other commands record themselves as jobs.

Commands that write an output (``publish``, ``images``, ``make``) run inside
:func:`recorded` or :func:`recorded_command`: their job (kind = the command, args = the
command line as typed, with the working folder) is created, or reused when ``jobs retry``
reruns it, and ends ``done``, ``failed``, ``cancelled`` or ``interrupted`` with the
command. The state folder comes from :mod:`reelforge.config` (``REELFORGE_STATE``).

Nothing here imports SQLAlchemy until a command needs it: ``reelforge --help`` stays quick.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import shlex
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from reelforge.cli_options import JsonOpt, WorkersOpt
from reelforge.console import err_console, out_console
from reelforge.errors import InputError

if TYPE_CHECKING:
    from reelforge.pipeline.jobs import Job
    from reelforge.pipeline.runner import ProgressSink, State
    from reelforge.progress import Progress

STEP_VERSIONS = {"publish": "1", "images": "1"}  # the key of a recorded command's one step
_states: dict[tuple, State] = {}


def open_state() -> State:
    """The job store, step cache and digest memo the settings name (one per process)."""
    from reelforge import config
    from reelforge.pipeline.runner import State

    cfg = config.load()
    ident = (str(cfg.state_dir), cfg.jobs_store_url, str(cfg.step_cache_dir))
    if ident not in _states:
        _states[ident] = State.open(cfg)
    return _states[ident]


# --- the command line a job reruns -------------------------------------------------------


GLOBAL_OPTIONS = ("--debug",)  # the app's own options, before the command's name
PLACE_OPTIONS = ("--json", "--workers", "--local")  # how and where it runs, not what it does
_invocation: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "invocation", default=None
)


def command_argv(kind: str) -> list[str]:
    """The running ``kind`` command's arguments as given (:data:`PLACE_OPTIONS` left out):
    from the process's command line, or from :func:`run_command` when it runs one
    in-process."""
    given = _invocation.get()
    if given is None:
        given = sys.argv[1:]
        while given and given[0] in GLOBAL_OPTIONS:
            given = given[1:]
        if given and given[0] == kind:
            given = given[1:]
    return [t for t in given if t not in PLACE_OPTIONS]


def running_nested() -> bool:
    """Whether the running command was started in-process by another one (``jobs run``,
    ``jobs retry``, ``watch``): such a run is the job itself and never goes to workers."""
    return _invocation.get() is not None


def _key_options(argv: list[str], inputs: dict[str, Path]) -> list[str]:
    """The options that shape the work: not where it goes, not --force, not the inputs'
    names (their content is in the key)."""
    names = {str(p) for p in inputs.values()}
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token in ("-o", "--output"):
            skip = True
        elif token not in ("--force", "--", *names) and not token.startswith("--output="):
            kept.append(token)
    return kept


def run_command(kind: str, argv: list[str], *, as_json: bool = False):
    """Run ``reelforge KIND ARGV`` in this process (``--json`` first when asked)."""
    from reelforge.cli import app

    group = typer.main.get_command(app)
    token = _invocation.set(list(argv))
    try:
        with group.make_context("reelforge", [kind, *(["--json"] if as_json else []),
                                              *argv]) as ctx:  # fmt: skip
            return group.invoke(ctx)
    finally:
        _invocation.reset(token)


# --- recording commands -----------------------------------------------------------------


@contextlib.contextmanager
def recorded_command(kind: str, output: str | Path, *,
                     subject: str | None = None) -> Iterator[tuple[State, str]]:  # fmt: skip
    """The running command as a job: yields ``(state, job_id)``; the job is ``running``
    inside the block and ends with it (see :func:`reelforge.pipeline.runner.job_run`)."""
    from reelforge.pipeline.runner import job_for, job_run

    state = open_state()
    args = {"argv": command_argv(kind), "cwd": str(Path.cwd())}
    job_id = job_for(state.store, kind, args, str(output), subject=subject)
    with job_run(state.store, job_id):
        yield state, job_id


@contextlib.contextmanager
def recorded(kind: str, output: str | Path, progress: Progress | None, *,
             inputs: dict[str, Path]) -> Iterator[Progress | None]:  # fmt: skip
    """A command that is one step (``publish``, ``images``) recorded as a job of that one
    step; yields the progress to give the step (it records itself and honours cancel).
    If the state folder cannot be used, the command runs unrecorded (a warning says so)."""
    import sqlalchemy

    from reelforge.pipeline.runner import recorded_step
    from reelforge.pipeline.spec import StepSpec

    stack = contextlib.ExitStack()
    try:
        state, job_id = stack.enter_context(recorded_command(kind, output))
    except (OSError, sqlalchemy.exc.SQLAlchemyError) as exc:
        err_console.print(f"[yellow]warning:[/] job not recorded ({escape(str(exc))})",
                          highlight=False, soft_wrap=True)  # fmt: skip
        state = None
    with stack:
        if state is None:
            yield progress
            return
        spec = StepSpec(kind, STEP_VERSIONS.get(kind, "1"), inputs,
                        {"argv": _key_options(command_argv(kind), inputs)})  # fmt: skip
        with recorded_step(state, job_id, spec, progress) as step_progress:
            yield step_progress


# --- one bar, or JSON lines ---------------------------------------------------------------


class BarSink:
    """One bar on stderr for a whole job: the current step, its stage, its percentage."""

    def __init__(self, bars) -> None:
        self.bars = bars
        self.task = None

    def report(self, step: str, stage: str, fraction: float) -> None:
        label = f"{step} · {stage}" if stage and stage != step else step
        if self.task is None:
            self.task = self.bars.add_task(label, total=100)
        self.bars.update(self.task, description=label, completed=round(fraction * 100, 1))


@contextlib.contextmanager
def progress_sink(as_json: bool) -> Iterator[ProgressSink]:
    """JSON lines on stdout with ``--json``; else one bar on stderr (on a terminal)."""
    from reelforge.pipeline.runner import JsonLinesSink, NullSink

    if as_json:
        yield JsonLinesSink(sys.stdout)
        return
    if not err_console.is_terminal:
        yield NullSink()
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    bars = Progress(TextColumn("[bold]{task.description:<28}"), BarColumn(),
                    TaskProgressColumn(), TimeElapsedColumn(), console=err_console)  # fmt: skip
    bars.start()
    try:
        yield BarSink(bars)
    except BaseException:
        bars.live.transient = True  # the error line is the last word
        raise
    finally:
        bars.live.stop()


# --- jobs ---------------------------------------------------------------------------------

jobs_app = typer.Typer(help="Jobs: list, show, retry and cancel what ran.",
                       no_args_is_help=True)  # fmt: skip


def _job_json(job: Job) -> dict:
    data = json.loads(job.model_dump_json())
    data["args"].get("worker", {}).pop("printed", None)  # the command's report: in the output
    argv = job.args.get("argv")
    if isinstance(argv, list):
        data["command"] = shlex.join(["reelforge", job.kind, *map(str, argv)])
    return data


def _when(t: datetime | None) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _progress_text(job: Job) -> str:
    steps = job.current_steps()
    running = [s for s in steps if s.status == "running"]
    if running:
        s = running[-1]
        return f"{s.name} {s.stage or ''} {100 * (s.progress or 0):.0f}%".replace("  ", " ")
    if len(steps) == 1:
        return f"{steps[0].name}: {steps[0].status}"
    if steps:
        return f"{len(steps)} steps, {sum(s.status == 'cached' for s in steps)} cached"
    return "-"


@jobs_app.command("list")
def list_jobs(
    status: Annotated[
        str | None,
        typer.Option("--status", help="queued, running, done, failed, cancelled, interrupted."),
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="publish, images, make, ...")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Jobs, newest first (a job whose process is gone shows as interrupted)."""
    from reelforge.pipeline.jobs import JOB_STATUSES

    if status is not None and status not in JOB_STATUSES:
        raise InputError(f"--status must be one of {', '.join(JOB_STATUSES)}, not {status!r}")
    if limit < 1:
        raise InputError("--limit must be 1 or more")
    store = open_state().store
    store.recover()
    jobs = store.list(status=status, limit=limit, kind=kind)
    if as_json:
        print(json.dumps([_job_json(j) for j in jobs], indent=2))
        return
    if not jobs:
        out_console.print("no jobs" + (f" {status}" if status else ""))
        return
    table = Table(title=f"{len(jobs)} jobs")
    table.add_column("id", no_wrap=True, min_width=14)
    for col in ("kind", "status", "progress", "created"):
        table.add_column(col)
    table.add_column("output", overflow="fold")
    for j in jobs:
        table.add_row(j.id, j.kind, j.status, _progress_text(j), _when(j.created_at),
                      escape(j.output))  # fmt: skip
    out_console.print(table)


@jobs_app.command("show")
def show_job(
    job_id: Annotated[str, typer.Argument(help="The job's id (see jobs list).")],
    as_json: JsonOpt = False,
) -> None:
    """One job: its command, status, error and steps."""
    store = open_state().store
    store.recover()
    job = store.get(job_id)
    data = _job_json(job)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    out_console.print(f"[bold]{job.id}[/] {job.kind} [bold]{job.status}[/] "
                      f"(attempt {job.attempts})", highlight=False)  # fmt: skip
    if "command" in data:
        out_console.print(f"command: {escape(data['command'])}", highlight=False, soft_wrap=True)
    out_console.print(f"output: {escape(job.output)}", highlight=False, soft_wrap=True)
    out_console.print(f"created {_when(job.created_at)}, started {_when(job.started_at)}, "
                      f"finished {_when(job.finished_at)}", highlight=False)  # fmt: skip
    if job.error:
        out_console.print(f"error ({job.error_code}): {escape(job.error)}", highlight=False,
                          soft_wrap=True)  # fmt: skip
    if job.steps:
        table = Table()
        for col in ("attempt", "step", "status", "progress", "seconds", "key"):
            table.add_column(col)
        for s in job.steps:
            progress = f"{s.stage or ''} {100 * (s.progress or 0):.0f}%".strip()
            seconds = f"{s.seconds:.2f}" if s.seconds is not None else "-"
            table.add_row(str(s.attempt), s.name, s.status, progress, seconds, s.key[:12])
        out_console.print(table)


def _watcher_reruns(job: Job) -> bool:
    """Whether rerunning a watched file's job is the inbox's business (moving the file back
    from ``failed/``, moving it there again if it fails): yes for a job run here, and for
    one sent to the workers whose file is no longer in the inbox. A worker running a job a
    watcher sent only runs its command: the watcher that follows it keeps the inbox."""
    from reelforge.workers.lease import worker_info

    info = job.args["watch"]
    return not worker_info(job) or not (Path(info["inbox"]) / info["name"]).exists()


def _retry_watched(job: Job, as_json: bool) -> None:
    from reelforge.pipeline.watch import Watcher

    info = job.args["watch"]
    with _watch_output(as_json) as (emit, process):
        watcher = Watcher(open_state(), Path(info["inbox"]), Path(info["library"]), process,
                          on_event=emit)  # fmt: skip
        watcher.retry(job)


def _rerun(job: Job, as_json: bool) -> None:
    """Run ``job``'s recorded command in this process under the job's own id."""
    from reelforge.pipeline.runner import resuming

    if "watch" in job.args and _watcher_reruns(job):
        _retry_watched(job, as_json)
        return
    argv, cwd = job.args.get("argv"), job.args.get("cwd")
    if not isinstance(argv, list):
        raise InputError(f"job {job.id} ({job.kind}) records no command to rerun")
    if cwd and not Path(cwd).is_dir():
        raise InputError(f"job {job.id}: its working folder is gone", path=cwd)
    with contextlib.chdir(cwd or Path.cwd()), resuming(job.id):
        run_command(job.kind, [str(a) for a in argv], as_json=as_json)


@jobs_app.command("run")
def run_job(
    job_id: Annotated[str, typer.Argument(help="A queued job.")],
    as_json: JsonOpt = False,
) -> None:
    """Run a queued job (one a service recorded for later) in this process, under its id;
    its progress and outcome go to the job store as for any command."""
    from reelforge.pipeline.jobs import QUEUED

    store = open_state().store
    job = store.get(job_id)
    if job.status != QUEUED:
        raise InputError(f"job {job.id} is {job.status}, not queued; "
                         "use `jobs retry` for one that ended")  # fmt: skip
    _rerun(job, as_json)


@jobs_app.command("retry")
def retry_job(
    job_id: Annotated[str, typer.Argument(help="A failed, interrupted or cancelled job.")],
    as_json: JsonOpt = False,
) -> None:
    """Rerun a job's command under the same id: finished steps come from the step cache, so
    the work resumes at the step that failed. Prints what the command prints."""
    from reelforge.pipeline.jobs import RETRYABLE

    store = open_state().store
    store.recover()
    job = store.get(job_id)
    if job.status not in RETRYABLE:
        raise InputError(f"job {job.id} is {job.status}; only failed, interrupted or "
                         "cancelled jobs can be retried")  # fmt: skip
    _rerun(job, as_json)
    if not as_json:
        job = store.get(job.id)
        out_console.print(f"job {job.id}: {job.status}", highlight=False)


@jobs_app.command("cancel")
def cancel_job(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: JsonOpt = False,
) -> None:
    """Cancel a job: a running one stops within a second and is marked cancelled; a
    queued, failed or interrupted one is cancelled at once (and never resumed)."""
    from reelforge.cli_workers import revoke_task

    store = open_state().store
    store.recover()
    job = store.cancel(job_id)
    revoke_task(job)  # a job sent to the workers: its task is dropped if not yet started
    if as_json:
        print(json.dumps(_job_json(job), indent=2))
        return
    state = "cancelling (it stops at its next check)" if job.status == "running" else job.status
    out_console.print(f"job {job.id}: {state}", highlight=False)


# --- watch --------------------------------------------------------------------------------


@contextlib.contextmanager
def _watch_output(as_json: bool, *, on_workers: bool = False):
    """``(emit, process)``: events as JSON lines or lines of text; each job's command run
    in-process under its id, its own output swallowed (the events say what happened), or,
    ``on_workers``, sent to the workers and followed through the job store until it ends
    (a job that did not end ``done`` raises the error a run here would have raised)."""
    from reelforge.pipeline.runner import JsonLinesSink, NullSink, reporting, resuming

    stdout = sys.stdout
    sink = JsonLinesSink(stdout) if as_json else None

    def emit(event: dict) -> None:
        if as_json:
            stdout.write(json.dumps(event) + "\n")
            stdout.flush()
            return
        if event["event"] == "skipped":
            return  # said once in JSON; a quiet second run is the point of the record
        name, kind, job = escape(event["file"]), event["kind"], event["job"]
        text = {
            "started": f"{name}: {kind} → {escape(event['output'])} (job {job})",
            "resumed": f"{name}: resuming job {job} → {escape(event['output'])}",
            "retried": f"{name}: trying job {job} again → {escape(event['output'])}",
            "done": f"{name}: done in {event.get('seconds', 0):.1f} s → "
                    f"{escape(event['output'])}",
            "failed": f"[red]{name}: failed[/] ({escape(event.get('error', ''))}); moved to "
                      f"{escape(event.get('moved_to', ''))}",
        }.get(event["event"], f"{name}: {event['event']}")  # fmt: skip
        out_console.print(text, highlight=False, soft_wrap=True)

    def process(job: Job) -> None:
        with (
            resuming(job.id),
            reporting(sink) if sink else contextlib.nullcontext(),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            run_command(job.kind, [str(a) for a in job.args["argv"]], as_json=True)

    def process_on_workers(job: Job) -> None:
        from reelforge.cli_workers import follow_on_workers

        follow_on_workers(job, sink or NullSink())

    yield emit, process_on_workers if on_workers else process


def _check_passthrough(command: str, extra: list[str]) -> None:
    """Refuse options the ``command`` would refuse, before any file is taken."""
    from reelforge.cli import app

    group = typer.main.get_command(app)
    cmd = group.commands[command]
    try:
        cmd.make_context(command, [*extra, "-o", "x", "--", "x"])
    except Exception as exc:  # the usage errors of Typer's own click
        if not hasattr(exc, "format_message"):
            raise
        raise InputError(f"watch passes options on to {command}: {exc.format_message()}") \
            from None  # fmt: skip


def watch(
    ctx: typer.Context,
    inbox: Annotated[Path, typer.Argument(help="Folder to watch for uploads.")],
    library: Annotated[Path, typer.Option("-o", "--output", help="Library folder to fill.")],
    once: Annotated[
        bool, typer.Option("--once", help="Process what is there (once settled), then exit.")
    ] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between scans.")] = 2.0,
    settle: Annotated[
        float, typer.Option("--settle", help="Seconds a file must be still before it is taken.")
    ] = 5.0,
    widths: Annotated[
        str | None, typer.Option("--widths", help="Images: srcset widths (see images).")
    ] = None,
    formats: Annotated[
        str | None, typer.Option("--formats", help="Images: formats (see images).")
    ] = None,
    as_json: JsonOpt = False,
    workers: WorkersOpt = None,
) -> None:
    """Publish every video, and make an image set of every picture, that lands in INBOX.

    Videos go to LIBRARY/<stem>/ (a stream), pictures to LIBRARY/images/<stem>/, each once
    (by content), each a job; failures move to INBOX/failed/ with NAME.error.txt. Other
    options (--preset fast, --no-quality, ...) are passed on to publish. SIGTERM or Ctrl-C
    stops after removing partial output; the interrupted job resumes on the next start.
    With a broker set (REELFORGE_BROKER) each job runs on the workers, one at a time, and
    the inbox and library must be a folder the workers share; stopping the watcher leaves
    a job sent to them running there."""
    from reelforge.cli_workers import use_workers
    from reelforge.media import ffmpeg
    from reelforge.pipeline.watch import Watcher

    if interval <= 0 or settle < 0:
        raise InputError("--interval must be above 0 and --settle 0 or more")
    extra = list(ctx.args)
    _check_passthrough("publish", extra)
    image_args = [*(["--widths", widths] if widths else []),
                  *(["--formats", formats] if formats else [])]  # fmt: skip
    _check_passthrough("images", image_args)
    library.mkdir(parents=True, exist_ok=True)
    with _watch_output(as_json, on_workers=use_workers(workers)) as (emit, process):
        watcher = Watcher(open_state(), inbox, library, process, settle=settle,
                          publish_args=extra, image_args=image_args, on_event=emit)  # fmt: skip
        if not as_json:
            out_console.print(f"Watching {escape(str(watcher.inbox))} → "
                              f"{escape(str(watcher.library))}"
                              + ("" if once else " (Ctrl-C to stop)"), highlight=False,
                              soft_wrap=True)  # fmt: skip
        try:
            watcher.run(once=once, interval=interval)
        except (KeyboardInterrupt, typer.Abort):
            ffmpeg.stop_all()
            if as_json:
                emit_stop = {"event": "stopped"}
                print(json.dumps(emit_stop), flush=True)
            else:
                out_console.print("stopped; an interrupted job resumes on the next start",
                                  highlight=False)  # fmt: skip
            raise typer.Exit(0) from None
