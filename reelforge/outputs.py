"""Claiming an output: the one place that decides where a step may write and how.

Every step that writes files (publish, publish --versioned, images, voice, talk, sample)
goes through this module:

- :func:`check_apart` refuses (``InputError``, exit 2) an output that would destroy an
  input: an output that *is* an input (paths resolved, symlinks included), or an output
  folder that contains an input or equals a source folder. An output folder *beside* the
  input (``-o clip-folder/out``) is fine.
- :func:`check_target` refuses an existing output folder unless ``force`` is given *and*
  the folder is a previous output of the same :class:`OutputKind` (recognised by its
  report or manifest) or empty; anything else is never replaced.
- :func:`locked` creates the output's missing parent folders, holds an exclusive lock on
  the output (``.NAME.lock`` beside it, an ``fcntl.flock`` the OS drops if the process
  dies, holding our PID), and first checks that a file can be written there. A second run
  into the same output is refused naming the first one's PID. Environment failures
  (an ``OSError`` on one of our paths, a disk that fills up) become one
  :class:`~reelforge.errors.OutputError` (exit 1) naming the output, never a temporary.
- :func:`output_folder` builds a folder in a hidden temporary sibling
  (``.NAME.partial-XXXXXXXX``) renamed into place at the end; the rename never replaces
  something that appeared while the run worked, and with ``force`` it replaces only a
  folder that is still a previous output of the same kind.
- :func:`output_files` does the same for single files and their companions
  (``OUT.wav`` + ``OUT.wav.vtt`` + ``OUT.wav.report.json``), which replace older files
  of the same names together at the end.

Whatever fails (KeyboardInterrupt included), temporaries, the lock file and the parent
folders the claim created are removed; the target is left as it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reelforge.errors import InputError, MediaError, OutputError, ReelforgeError

PathLike = str | Path
_DISK_FULL = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))


# --- what a previous output looks like -------------------------------------------------


def _json_dict(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_publish_output(folder: Path) -> bool:
    report = _json_dict(folder / "report.json")
    if report is not None and {"reelforge_version", "renditions"} <= report.keys():
        return True
    current = _json_dict(folder / "current.json")  # a versioned stream folder
    return current is not None and {"version", "history"} <= current.keys()


def _is_images_output(folder: Path) -> bool:
    manifest = _json_dict(folder / "manifest.json")
    return manifest is not None and isinstance(manifest.get("images"), list)


@dataclass(frozen=True)
class OutputKind:
    """A kind of output folder and how to recognise one written before (for ``--force``)."""

    label: str  # in messages: "not a previous {label} output"
    recognises: Callable[[Path], bool]


def _is_make_output(folder: Path) -> bool:
    made = _json_dict(folder / "make.json")
    return made is not None and isinstance(made.get("steps"), list)


PUBLISH = OutputKind("publish", _is_publish_output)
IMAGES = OutputKind("images", _is_images_output)
MAKE = OutputKind("make", _is_make_output)


# --- overlap with inputs ----------------------------------------------------------------


def resolved(path: PathLike) -> Path:
    """``path`` made absolute with ``..`` and every symlink resolved (missing parts kept)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def check_apart(output: PathLike, inputs: Iterable[PathLike | None], *, folder: bool) -> None:
    """Refuse an output that is an input or, for a ``folder`` output, contains one.

    ``inputs`` are files or source folders (``None`` entries are skipped). Comparisons are
    made on resolved paths, so a symlink or ``..`` spelling cannot sneak past.
    """
    out = resolved(output)
    for given in inputs:
        if given is None:
            continue
        inp = resolved(given)
        if inp == out:
            raise InputError(f"is the input {given}; choose another output", path=output)
        if folder and out in inp.parents:
            raise InputError(f"contains the input {given} (--force would delete it); "
                             "choose an output folder outside it", path=output)  # fmt: skip


def check_target(target: PathLike, kind: OutputKind, *, force: bool) -> bool:
    """Refuse an existing ``target`` that may not be replaced; returns whether it exists.

    Replaceable: with ``force``, a folder that ``kind`` recognises as a previous output of
    its own, or an empty folder. Everything else (a file, someone's folder) is refused.
    """
    target = Path(target)
    if not os.path.lexists(target):
        return False
    if not target.is_dir():
        raise InputError("exists and is not a folder; remove it yourself", path=target)
    if not force:
        raise InputError("output already exists (use --force to replace it)", path=target)
    if not _replaceable(target, kind):
        raise InputError(f"exists and is not a previous {kind.label} output; "
                         "remove it yourself", path=target)  # fmt: skip
    return True


def _replaceable(folder: Path, kind: OutputKind) -> bool:
    try:
        return kind.recognises(folder) or not any(folder.iterdir())
    except OSError:
        return False


# --- lock, probe, error mapping -------------------------------------------------------


def target_path(target: PathLike) -> Path:
    """Where ``target`` really is: absolute, its parent folder's symlinks resolved (the
    name itself is kept, so a claim renames over the name, never through a link)."""
    shown = Path(target)
    return resolved(shown.absolute().parent) / shown.absolute().name


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


def _make_parents(folder: Path, target: PathLike) -> list[Path]:
    """Create ``folder`` and its missing ancestors; returns those created, deepest last."""
    missing: list[Path] = []
    probe = folder
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    created: list[Path] = []
    try:
        for path in reversed(missing):
            path.mkdir()
            created.append(path)
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
    except FileExistsError:  # another run created it in the meantime
        if not folder.is_dir():
            _remove_parents(created)
            raise OutputError(f"cannot create the folder {folder} (a file is in the way)",
                              path=target) from None  # fmt: skip
    except OSError as exc:
        _remove_parents(created)
        raise OutputError(f"cannot create the folder {folder} ({exc.strerror})",
                          path=target) from None  # fmt: skip
    return created


def _remove_parents(created: list[Path]) -> None:
    for path in reversed(created):
        with contextlib.suppress(OSError):
            path.rmdir()  # only if still empty: another run may have moved in


def _read_pid(fd: int) -> int | None:
    deadline = time.monotonic() + 1.0
    while True:  # the holder writes its PID just after taking the lock
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def _acquire(path: Path, target: PathLike) -> int:
    """An fd holding ``flock(LOCK_EX)`` on ``path`` (same inode as the path has now)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"another run (PID {pid})" if pid else "another run"
            raise InputError(f"{who} is writing {target}") from None
        try:  # the previous holder may have removed the file between our open and lock
            same = os.fstat(fd).st_ino == path.stat().st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)
            raise
        return fd


def _remove_stale(parent: Path, names: tuple[str, ...]) -> None:
    """Remove temporaries of ``names`` left by a run that was killed (we hold the lock, so
    no live run owns them)."""
    alternatives = "|".join(re.escape(n) for n in names)
    pattern = re.compile(rf"^\.\.?({alternatives})\.(partial|work|old)-[0-9a-f]{{8}}")
    for entry in parent.iterdir():
        if not pattern.match(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


def _probe(folder: Path) -> None:
    """Write (and remove) a small file in ``folder``: fails now on a full or read-only disk."""
    probe = folder / f".reelforge-probe-{uuid.uuid4().hex[:8]}"
    try:
        with probe.open("wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _ours(filename: object, parent: Path, names: tuple[str, ...]) -> bool:
    """Whether an OSError's ``filename`` is one of the paths a claim writes."""
    if filename is None:
        return True
    path = resolved(os.fsdecode(filename))  # type: ignore[arg-type]
    try:
        first = path.relative_to(parent).parts[0]
    except (ValueError, IndexError):
        return False
    bare = first.lstrip(".")
    return any(bare == n or bare.startswith(f"{n}.") for n in names)


def _disk_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    no_blocks = st.f_blocks > 0 and (st.f_bavail == 0 or st.f_bfree == 0)
    no_inodes = st.f_files > 0 and st.f_favail == 0  # some file systems report no inodes
    return no_blocks or no_inodes


def _environment_failure(exc: Exception, parent: Path, names: tuple[str, ...]) -> str | None:
    """The system's reason when ``exc`` came from writing the output, else None.

    An ``OSError`` on one of our paths gives its own reason; any other failure (a library
    that hides the errno, ffmpeg) counts as the disk's when the output's file system is
    full now, while our temporaries still hold their space.
    """
    if isinstance(exc, ReelforgeError) and not isinstance(exc, MediaError):
        return None  # the user's mistake, a backend, an interrupt: said as they are
    if isinstance(exc, OSError) and _ours(exc.filename, parent, names):
        return exc.strerror or str(exc)
    if _disk_full(parent):
        return os.strerror(errno.ENOSPC)
    if isinstance(exc, MediaError):
        return next((r for r in _DISK_FULL if r in str(exc)), None)
    return None


@contextlib.contextmanager
def locked(target: PathLike, *, companions: Iterable[PathLike] = ()) -> Iterator[Path]:
    """Hold the output ``target`` for the block; yields its absolute path.

    Creates the missing parent folders, takes the lock, checks a file can be written
    there. ``OSError`` on ``target``, its companions or their temporaries, and any failure
    while its file system is full, leave the block as :class:`OutputError` naming
    ``target`` (see :func:`_environment_failure`).
    """
    shown = Path(target)
    path = target_path(shown)
    names = (path.name, *(Path(c).name for c in companions))
    created = _make_parents(path.parent, shown)
    ok = False
    fd: int | None = None
    try:
        try:
            fd = _acquire(_lock_path(path), shown)
            _remove_stale(path.parent, names)
            _probe(path.parent)
        except OSError as exc:
            raise OutputError(f"cannot write in {path.parent} ({exc.strerror})",
                              path=shown) from None  # fmt: skip
        try:
            yield path
        except Exception as exc:
            reason = _environment_failure(exc, path.parent, names)
            if reason is None:
                raise
            raise OutputError(f"cannot write ({reason})", path=shown) from exc
        ok = True
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                _lock_path(path).unlink()
            os.close(fd)
        if not ok:
            _remove_parents(created)


# --- renames ----------------------------------------------------------------------------

_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


@functools.cache
def _libc_renameat2() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``; False where the C library or file system lacks it."""
    fn = _libc_renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; ``FileExistsError`` if anything is at ``dst``."""
    if _renameat2(src, dst, _RENAME_NOREPLACE):
        return
    if os.path.lexists(dst):  # fallback: a small window; rename(2) refuses non-empty dirs
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    src.rename(dst)


def exchange(a: Path, b: Path) -> None:
    """Swap ``a`` and ``b`` (both exist), atomically where the kernel can."""
    if _renameat2(a, b, _RENAME_EXCHANGE):
        return
    aside = b.with_name(f".{b.name}.old-{uuid.uuid4().hex[:8]}")
    b.rename(aside)
    try:
        rename_noreplace(a, b)
    except BaseException:
        aside.rename(b)
        raise
    aside.rename(a)


# --- the claims -------------------------------------------------------------------------


@contextlib.contextmanager
def output_folder(
    target: PathLike,
    kind: OutputKind,
    *,
    force: bool = False,
    inputs: Iterable[PathLike | None] = (),
) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target`` that becomes ``target`` on success.

    Refuses inputs inside ``target`` (:func:`check_apart`), an existing target it may not
    replace (:func:`check_target`), and a second run (:func:`locked`). At the end the
    temporary is renamed into place only if ``target`` is as the run found it: absent then
    and now, or (with ``force``) still a previous output of ``kind``, which is then
    swapped out and removed; otherwise :class:`InputError` names it and nothing changes.
    """
    with staged_output_folder(target, kind, force=force, inputs=inputs) as staged:
        yield staged.folder
        staged.place()


class StagedFolder:
    """An output folder being built: :attr:`folder` is the hidden temporary sibling until
    :meth:`place` renames it into place, then the target itself (still locked)."""

    def __init__(self, tmp: Path, path: Path, shown: Path, kind: OutputKind,
                 existed: bool) -> None:  # fmt: skip
        self._tmp, self._path, self._shown = tmp, path, shown
        self._kind, self._existed = kind, existed
        self.folder = tmp
        self.placed = False

    def place(self) -> Path:
        """Rename the temporary into place (as :func:`output_folder` does at its end) and
        remove the previous output it replaced; returns the target's path."""
        _place_folder(self._tmp, self._path, self._shown, self._kind, self._existed)
        self.placed = True
        self.folder = self._path
        self.discard()
        return self._path

    def discard(self) -> None:
        """Remove the temporary (before :meth:`place`: the work; after: what it replaced)."""
        if self._tmp.is_symlink():  # the target was a link to a previous output: swapped
            self._tmp.unlink()
        else:
            shutil.rmtree(self._tmp, ignore_errors=True)


@contextlib.contextmanager
def staged_output_folder(
    target: PathLike,
    kind: OutputKind,
    *,
    force: bool = False,
    inputs: Iterable[PathLike | None] = (),
) -> Iterator[StagedFolder]:
    """:func:`output_folder` for a step whose output is usable before it is finished: the
    block builds in ``staged.folder``, calls ``staged.place()`` once the output is valid,
    and may go on writing into the placed folder while the lock is held. A failure before
    ``place()`` leaves nothing behind; after it, the placed folder stays (keeping it valid
    is the block's part). Refusals and the rename are :func:`output_folder`'s."""
    shown = Path(target)
    check_apart(shown, inputs, folder=True)
    check_target(shown, kind, force=force)
    with locked(shown) as path:
        existed = check_target(shown, kind, force=force)  # again, now that it is ours
        tmp = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        staged = StagedFolder(tmp, path, shown, kind, existed)
        try:
            yield staged
        finally:
            staged.discard()


def _place_folder(tmp: Path, path: Path, shown: Path, kind: OutputKind, existed: bool) -> None:
    appeared = InputError("appeared while this run was working; left it as it is "
                          "and kept nothing", path=shown)  # fmt: skip
    if not os.path.lexists(path):
        try:
            rename_noreplace(tmp, path)
        except (FileExistsError, IsADirectoryError, NotADirectoryError):
            raise appeared from None
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise appeared from None
            raise
        return
    if not existed:
        raise appeared
    if not path.is_dir() or not _replaceable(path, kind):
        raise InputError(f"changed while this run was working and is no longer a previous "
                         f"{kind.label} output; left it as it is", path=shown)  # fmt: skip
    exchange(tmp, path)  # tmp now holds the previous output, removed by the caller


class FileSet:
    """The files an :func:`output_files` claim will put in place: ``temp(final)`` names a
    hidden temporary sibling to write ``final`` to."""

    def __init__(self, finals: Iterable[Path]) -> None:
        self._finals = {p.name: p for p in finals}  # all in one folder
        self._tag = uuid.uuid4().hex[:8]
        self.temps: dict[Path, Path] = {}

    def temp(self, final: PathLike) -> Path:
        path = self._finals.get(Path(final).name)
        if path is None:
            raise ValueError(f"{final} is not part of this output")
        tmp = path.with_name(f".{path.name}.partial-{self._tag}{path.suffix}")
        self.temps[path] = tmp
        return tmp


@contextlib.contextmanager
def output_files(
    target: PathLike,
    *,
    companions: Iterable[PathLike] = (),
    inputs: Iterable[PathLike | None] = (),
) -> Iterator[FileSet]:
    """Claim the file ``target`` (and its ``companions``, beside it) for the block.

    Refuses a target or companion that is an input or an existing folder, and a second run
    (:func:`locked`). The block writes each file to ``files.temp(final)``; on success every
    written temporary replaces its final name (older files of those names included), on
    failure they are all removed.
    """
    shown = Path(target)
    companions = [Path(c) for c in companions]
    inputs = list(inputs)
    for out in (shown, *companions):
        check_apart(out, inputs, folder=False)
        if out.is_dir():
            raise InputError("is a folder; name a file to write", path=out)
    with locked(shown, companions=companions) as path:
        finals = [path, *(path.parent / c.name for c in companions)]
        files = FileSet(finals)
        try:
            yield files
            for final, tmp in files.temps.items():
                if tmp.exists():
                    tmp.replace(final)
        finally:
            for tmp in files.temps.values():
                with contextlib.suppress(OSError):
                    tmp.unlink()


@contextlib.contextmanager
def stream_folder(stream: PathLike, *, inputs: Iterable[PathLike | None] = ()) -> Iterator[Path]:
    """Hold a versioned stream folder for the block (one publish adds a version at a time).

    Refuses an input inside it and an existing folder that is neither a stream folder
    (``current.json``) nor empty (hidden entries aside: a first version may be on its way,
    or left by a killed run), so a version is never added to someone else's folder. The
    folder is judged under the lock, so a run in progress is named as such.
    """
    shown = Path(stream)
    check_apart(shown, inputs, folder=True)
    with locked(shown) as path:
        if os.path.lexists(shown):
            if not shown.is_dir():
                raise InputError("is not a stream folder", path=shown)
            visible = [p for p in shown.iterdir() if not p.name.startswith(".")]
            if visible and not (shown / "current.json").is_file():
                raise InputError("exists and is not a versioned stream folder (no "
                                 "current.json); choose another output", path=shown)  # fmt: skip
            _remove_stale_versions(path)
        yield path


_VERSION_LEFTOVER = re.compile(
    r"^\.\.?v\d{8}T\d{6}Z-[0-9a-f]{4}\.((partial|work|old)-[0-9a-f]{8}|lock$)"
)


def _remove_stale_versions(stream: Path) -> None:
    """Temporaries and lock files of versions a killed run was adding (we hold the
    stream's lock, so no run is adding one now)."""
    for entry in stream.iterdir():
        if not _VERSION_LEFTOVER.match(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
