"""Atomic file writes (a reader never sees a half-written file) and output folders (the
package replaces only what it wrote, one run at a time, never leaving a mix of two runs)."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import shutil
import signal
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any


def save_atomic(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call `write(temporary_path)`, then rename the temporary file onto `path`.

    The temporary file sits in the same folder (so the rename is atomic) and keeps the
    extension of `path` (Keras's `model.save` insists on ".keras"). It is created with the
    usual umask permissions, unlike `tempfile.mkstemp`'s private 0o600, and removed if
    `write` fails. Raises OSError when the folder cannot be written.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    extension = os.path.splitext(name)[1]
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex}{extension}")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see `save_atomic`)."""

    def write(temporary: str) -> None:
        with open(temporary, "xb") as file:
            file.write(data)

    save_atomic(path, write)


def write_json(path: str | os.PathLike, record: Any) -> None:
    """Write `record` as indented JSON, atomically. NaN and Inf are refused (ValueError):
    they are not JSON, and no number the package writes should be one."""
    try:
        text = json.dumps(record, indent=1, allow_nan=False)
    except ValueError:  # json's own message ("Out of range float values") names neither
        raise ValueError(
            f"{os.fspath(path)} was not written: the record holds NaN or Inf, which JSON "
            "cannot hold"
        ) from None
    write_atomic(path, (text + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, refusing NaN and Inf (ValueError) as `write_json` does."""

    def refuse(name: str) -> float:
        raise ValueError(f"{os.fspath(path)} holds {name}, which is no number")

    with open(path) as file:
        try:
            return json.load(file, parse_constant=refuse)
        except json.JSONDecodeError as error:
            raise ValueError(f"{os.fspath(path)} is not valid JSON ({error})") from None


def one_line(error: BaseException) -> str:
    """An error's message on one line (its type's name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


# ----------------------------------------------------------------------------- output folders
#
# One policy for every folder the package writes into (the commands, `serving.export`,
# `demo.run_demo`): a folder is accepted when it is new or empty, or when the package wrote
# in it before, which its manifest (`manifest_name(command)`, the list of what `command`
# wrote there) marks. In such a folder a command replaces only the files its manifest
# lists; a file of a name it writes that it did not write is refused, and so is any other
# folder: the package never replaces or deletes a file of the user's.
#
# A run never leaves a mix of two runs (`write_output_folder`): it writes its files in a
# folder beside `path` (same parent, so that renames are atomic) named
# `.<name>.tf-signsal-<command>.incomplete-<hex>`; once all are written it renames that
# folder `...ready-<hex>`, with its manifest inside, and moves them in: in one rename when
# `path` does not exist, else file by file with Ctrl-C held off, `path`'s manifest marking
# the move ("incomplete") until it is done. A run that fails or is interrupted while writing
# removes its folder and leaves `path` as it was; one killed while writing leaves an
# `incomplete` folder, which the next run into `path` removes; one killed while moving
# leaves a `ready` folder, whose files the next run of the command moves in before it starts.
#
# One run at a time (`locked_output_folder`): a run holds `.<name>.tf-signsal.lock` beside
# `path` (created with O_EXCL, holding its pid, host, command and start) from before any
# work to its end; another run is refused while the holder lives, and takes over the lock
# of a holder that no longer runs on this host.

_MANIFEST = re.compile(r"\.tf-signsal-[\w-]+\.json")
_HEX = "[0-9a-f]{32}"
# A lock that cannot be read is being written this instant, or was left by a run killed
# at that instant: after this many seconds it is taken for the latter.
_UNREADABLE_LOCK_SECONDS = 10.0
# The locks this run holds (a CLI command, or an API call outside one): the API calls
# inside it share them, a run started inside it (`run_scope`) does not.
_HELD: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "tf_signsal_held_locks", default=frozenset()
)


def manifest_name(command: str) -> str:
    """The file in which `command` lists the files it wrote in its output folder: the only
    files a later run of it replaces or removes there."""
    return f".tf-signsal-{command}.json"


def is_within(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or lies inside it (both absolute, links resolved)."""
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives
        return False


def check_output_path(
    path: str | os.PathLike, option: str = "`out`", inputs: Sequence[tuple[str, str]] = ()
) -> None:
    """Refuse, before any work, a `path` that cannot become an output folder.

    Args:
        path: the output folder (need not exist).
        option: how the messages name it, e.g. "--out" or "`path`".
        inputs: (option, folder) pairs of the input folders: `path` must be none of them
            nor lie inside one (what is written there would be read as input next time).

    Raises:
        FileExistsError: `path` exists and is not a folder.
        FileNotFoundError: `path` or a parent is a broken symbolic link.
        NotADirectoryError: a parent of `path` is a file.
        PermissionError: the nearest existing parent, or the folder of `path` (where a run
            is written before it moves in), cannot be written.
        ValueError: `path` is or lies inside a folder of `inputs`.
    """
    shown = os.fspath(path)
    path = os.path.abspath(shown)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{option} {shown} exists and is not a folder")
    parent = path
    while not os.path.exists(parent):
        if os.path.lexists(parent):
            raise FileNotFoundError(f"{option} {shown}: {parent} is a broken symbolic link")
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(f"{option} {shown}: {parent} is a file, not a folder")
    beside = os.path.dirname(os.path.realpath(path))  # where a run is written first
    for folder in (parent, beside):
        if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"{option} {shown}: {folder} cannot be written")
    where = os.path.realpath(path)
    for input_option, folder in inputs:
        if not os.path.isdir(folder):
            continue
        inside = os.path.realpath(folder)
        if is_within(where, inside):
            relation = "is" if where == inside else "lies inside"
            raise ValueError(
                f"{option} {shown} {relation} the {input_option} folder {folder}: what "
                f"tf-signsal writes there would be read as input by the next run; choose an "
                f"{option} outside {folder}"
            )


def is_package_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder that the package wrote in before (it holds a manifest)."""
    with os.scandir(path) as entries:
        return any(_MANIFEST.fullmatch(entry.name) and entry.is_file() for entry in entries)


def make_folders(folder: str, created: list[str]) -> None:
    """Create `folder` and its missing parents (umask permissions), appending each one
    created to `created`, outermost first (for `remove_empty`)."""
    missing = []
    while not os.path.exists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        created.append(folder)


def remove_empty(folders: Sequence[str]) -> None:
    """Remove the `folders` that `make_folders` created, innermost first, while empty."""
    for folder in reversed(folders):
        try:
            os.rmdir(folder)
        except OSError:
            return


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def _beside(path: str, suffix: str) -> str:
    """`.<name of path>.tf-signsal<suffix>` in the parent of `path` (absolute, resolved)."""
    parent, name = os.path.split(path)
    return os.path.join(parent, f".{name}.tf-signsal{suffix}")


def _files(root: str, name: str) -> list[str]:
    """The entries under the folder `root/name` that are not folders (links to folders
    included), as "/"-separated paths relative to `root`, sorted."""
    found = []
    for folder, folders, files in os.walk(os.path.join(root, name)):
        links = [f for f in folders if os.path.islink(os.path.join(folder, f))]
        for entry in files + links:
            found.append(os.path.relpath(os.path.join(folder, entry), root).replace(os.sep, "/"))
    return sorted(found)


def _listed(path: str, command: str, own: re.Pattern[str]) -> list[str]:
    """The files of `path` that the manifest of `command` lists, of names `own` matches
    (an edited manifest cannot make it replace a file of the user's), regular files."""
    manifest = os.path.join(path, manifest_name(command))
    if not os.path.lexists(manifest):
        return []
    try:
        listed = read_json(manifest)["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"cannot read {manifest} ({command}'s list of its files): {one_line(error)}"
        ) from error
    return [
        name for name in listed if isinstance(name, str) and own.fullmatch(name)
        and os.path.isfile(os.path.join(path, name))
        and not os.path.islink(os.path.join(path, name))
    ]


def _expand(root: str, name: str) -> list[str]:
    """`name` of `root` as files: the files under it when it is a folder, else itself when
    it exists."""
    target = os.path.join(root, *name.split("/"))
    if os.path.isdir(target) and not os.path.islink(target):
        return _files(root, name)
    return [name] if os.path.lexists(target) else []


def _in_the_way(path: str, file: str, earlier: Sequence[str]) -> bool:
    """Whether what stands in `path` where `file` goes is not `earlier`'s: a file of its
    name, or a file or link in place of one of its folders."""
    parts = file.split("/")
    for depth in range(1, len(parts)):
        folder = os.path.join(path, *parts[:depth])
        if os.path.islink(folder) or (os.path.lexists(folder) and not os.path.isdir(folder)):
            return True
    return file not in earlier and os.path.lexists(os.path.join(path, *parts))


@contextlib.contextmanager
def run_scope() -> Iterator[contextlib.ExitStack]:
    """One run (a CLI command): the locks it takes (into the yielded stack) are its own,
    not shared with a run it was started from, and are released when it ends, however."""
    token = _HELD.set(frozenset())
    try:
        with contextlib.ExitStack() as stack:
            yield stack
    finally:
        _HELD.reset(token)


@contextlib.contextmanager
def locked_output_folder(
    path: str | os.PathLike,
    command: str,
    option: str = "`out`",
    tell: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the lock of the output folder `path` (checked by `check_output_path`) while the
    block runs (a nested call for the same folder shares it); once taken, remove what runs
    killed while writing in `path` left beside it.

    Args:
        path: the output folder (need not exist; its missing parents are created, and
            removed again when the run leaves them empty).
        command: who writes, recorded in the lock.
        option: how the messages name `path`.
        tell: shows a message (a stale lock taken over, leftovers removed); default: a
            RuntimeWarning.

    Raises:
        FileExistsError: another run holds the lock: a live process of this host, one of
            another host (it cannot be told whether it still runs), or one taking it now.
    """
    shown = os.fspath(path)
    real = os.path.realpath(shown)
    lock = _beside(real, ".lock")
    if lock in _HELD.get():
        yield
        return
    tell = tell or _warn
    created: list[str] = []
    make_folders(os.path.dirname(real), created)
    try:
        inode = _acquire(lock, command, f"{option} {shown}", tell)
    except BaseException:
        remove_empty(created)
        raise
    token = _HELD.set(_HELD.get() | {lock})
    try:
        pattern = re.compile(
            re.escape(os.path.basename(_beside(real, "-"))) + rf"[\w-]+\.incomplete-{_HEX}"
        )
        for name in sorted(os.listdir(os.path.dirname(real))):
            if pattern.fullmatch(name):  # the lock is ours: no run writes there any more
                shutil.rmtree(os.path.join(os.path.dirname(real), name))
                tell(f"{option} {shown}: removed {name}, the files of a run that was "
                     "killed while writing them")
        yield
    finally:
        _HELD.reset(token)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == inode:  # not taken over meanwhile
                os.remove(lock)
        remove_empty(created)


def _acquire(lock: str, command: str, shown: str, tell: Callable[[str], None]) -> int:
    """Create `lock` (O_EXCL), taking over a stale one; return its inode."""
    record = json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "command": command,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }).encode()
    for _ in range(10):  # each turn, another run took or released the lock meanwhile
        try:
            descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder, status = _holder(lock)
            if status is None:
                continue
            if holder is None and time.time() - status.st_mtime < _UNREADABLE_LOCK_SECONDS:
                raise FileExistsError(
                    f"{shown} is being locked by another tf-signsal run ({lock} is being "
                    "written): wait for that run to end, or choose another output folder"
                ) from None
            if holder is not None and _alive(holder):
                elsewhere = holder["host"] != socket.gethostname()
                raise FileExistsError(
                    f"{shown} is being written by another tf-signsal run: "
                    f"{holder.get('command', '?')} in process {holder['pid']} on "
                    f"{holder['host']}, since {holder.get('started', '?')}"
                    + (" (whether it still runs cannot be told from this host)" * elsewhere)
                    + f". Wait for it to end or choose another output folder; if no such run "
                    f"is alive, remove {lock}"
                ) from None
            if _set_aside(lock, status.st_ino):
                who = f"process {holder['pid']}" if holder else "a run killed as it locked"
                tell(f"{shown}: took over the lock {lock} of {who}, which no longer runs")
            continue
        try:
            os.write(descriptor, record)
            return os.fstat(descriptor).st_ino
        except BaseException:
            os.remove(lock)
            raise
        finally:
            os.close(descriptor)
    raise FileExistsError(f"{shown}: other runs keep taking its lock {lock}: try again")


def _holder(lock: str) -> tuple[dict[str, Any] | None, os.stat_result | None]:
    """The record of `lock` (None when it cannot be read) and its status (None when it is
    gone)."""
    try:
        with open(lock, "rb") as file:
            status, text = os.fstat(file.fileno()), file.read()
    except FileNotFoundError:
        return None, None
    try:
        holder = json.loads(text)
        if isinstance(holder["pid"], int) and holder["pid"] > 0 and isinstance(holder["host"], str):
            return holder, status
    except (ValueError, TypeError, KeyError):
        pass
    return None, status


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the process of a lock's `holder` may still run."""
    if holder["host"] != socket.gethostname() or os.name != "posix":
        return True  # cannot be told (and Windows's os.kill would end the process)
    try:
        os.kill(holder["pid"], 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def _set_aside(lock: str, inode: int) -> bool:
    """Remove the stale `lock` of inode `inode`, unless another run took it over first
    (False): it is renamed aside, and renamed back if it turns out to be a newer lock."""
    aside = f"{lock}.{uuid.uuid4().hex}"
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return False
    if os.stat(aside).st_ino != inode:
        os.replace(aside, lock)
        return False
    os.remove(aside)
    return True


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM off until the block ends, then deliver them:
    moving a run's files in takes milliseconds, and a stop half-way would leave a mix."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    caught: list[int] = []
    held = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
    previous = {s: signal.signal(s, lambda number, _: caught.append(number)) for s in held}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(caught):
            signal.raise_signal(number)


def claim_output_folder(
    path: str | os.PathLike,
    command: str,
    names: Sequence[str],
    own: re.Pattern[str],
    option: str = "`out`",
    tell: Callable[[str], None] | None = None,
) -> list[str]:
    """Check, before any work, that `command` may write `names` in the folder `path`;
    return the files an earlier run of it wrote there (its manifest), for
    `write_output_folder`. Call it holding `locked_output_folder`.

    A run of `command` killed while moving its files into `path` is completed first.

    Args:
        path: the output folder (`check_output_path` checked it).
        command: who writes, e.g. "explain".
        names: the names it will write there: files, or folders it writes whole.
        own: the names `command` may ever write ("/"-separated paths for the files in
            its folders): a manifest listing another name is not obeyed, so an edited
            manifest cannot make it replace a file of the user's.
        option: how the messages name `path`.
        tell: shows a message (a run completed); default: a RuntimeWarning.

    Raises:
        FileExistsError: `path` holds a file of `names` (or in a folder of `names`) that
            no earlier run of `command` wrote, or it is a non-empty folder the package
            never wrote in (no manifest).
        ValueError: the manifest of `command` there cannot be read.
    """
    shown = os.fspath(path)
    real = os.path.realpath(shown)
    ready = re.compile(re.escape(os.path.basename(_beside(real, f"-{command}.ready-"))) + _HEX)
    parent = os.path.dirname(real)
    for name in sorted(n for n in os.listdir(parent) if ready.fullmatch(n)):
        earlier = _listed(real, command, own) if os.path.isdir(real) else []
        with _uninterrupted():
            _commit(os.path.join(parent, name), real, command, earlier, f"{option} {shown}")
        (tell or _warn)(f"{option} {shown}: moved in the files of the {command} run that was "
                        "killed while moving them")
    if not os.path.isdir(real):
        return []
    earlier = _listed(real, command, own)
    foreign = [f for n in names for f in _expand(real, n) if _in_the_way(real, f, earlier)]
    if foreign:
        raise FileExistsError(
            f"{option} {shown} holds {', '.join(foreign)}, which {command} did not write there "
            f"(not in {manifest_name(command)}) and will not replace: choose another "
            f"{option}, or move or remove them"
        )
    if os.listdir(real) and not is_package_folder(real):
        raise FileExistsError(
            f"{option} {shown} is a folder that tf-signsal did not write (it holds no "
            f".tf-signsal-*.json list of its files), and tf-signsal writes only in a new "
            f"folder, an empty one or its own: choose another {option}"
        )
    return earlier


def write_output_folder(
    path: str | os.PathLike,
    command: str,
    names: Sequence[str],
    earlier: Sequence[str],
    write: Callable[[str], Any],
    option: str = "`out`",
) -> tuple[Any, list[str]]:
    """Run `write(folder)`, which writes the `names` of `command` (files, or folders of
    files) in `folder`, a new folder beside `path`; then move them into `path`, and remove
    the files of the earlier run (`earlier`, from `claim_output_folder`) not rewritten.

    `path` holds the earlier run until the move, and the new one after it, listed in the
    manifest (files in the order of `names`, a folder's files sorted); when `write` fails
    or is interrupted, `path` is left as it was and the new folder removed. Call it holding
    `locked_output_folder`.

    Returns:
        What `write` returns, and the names removed.

    Raises:
        FileExistsError: a file in the way of the new ones appeared in `path` since
            `claim_output_folder` (nothing is moved in; the message says where the new
            run's files wait).
    """
    real = os.path.realpath(os.fspath(path))
    name = uuid.uuid4().hex
    staging = _beside(real, f"-{command}.incomplete-{name}")
    os.mkdir(staging)
    try:
        result = write(staging)
        unexpected = [n for n in sorted(os.listdir(staging)) if n not in names]
        if unexpected:
            raise RuntimeError(f"{command} wrote {', '.join(unexpected)}, which is not among "
                               f"the names it declared ({', '.join(names)})")
        files = [f for entry in names for f in _expand(staging, entry)]
        write_json(os.path.join(staging, manifest_name(command)),
                   {"command": command, "files": files})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    ready = _beside(real, f"-{command}.ready-{name}")
    with _uninterrupted():
        os.rename(staging, ready)
        stale = _commit(ready, real, command, earlier, f"{option} {os.fspath(path)}")
    return result, stale


def _commit(ready: str, path: str, command: str, earlier: Sequence[str], shown: str) -> list[str]:
    """Move the files of the `ready` folder of a run of `command` into `path`, and remove
    the `earlier` files it did not rewrite; return those. Idempotent: a move cut short is
    completed by calling it again."""
    manifest = manifest_name(command)
    files = read_json(os.path.join(ready, manifest))["files"]
    if not os.path.lexists(path):
        try:
            os.rename(ready, path)  # the whole run at once
            return []
        except OSError:  # `path` was made meanwhile
            pass
    moving = [f for f in files if os.path.lexists(os.path.join(ready, *f.split("/")))]
    in_the_way = [f for f in moving if _in_the_way(path, f, earlier)]
    if in_the_way:
        raise FileExistsError(
            f"{shown} now holds {', '.join(in_the_way)} where {command} writes, which it did "
            f"not write there and will not replace: the new run's files wait in {ready}; move "
            f"those away and run {command} again to move them in, or remove {ready}"
        )
    os.makedirs(path, exist_ok=True)
    listing = [*earlier, *(f for f in files if f not in earlier)]
    write_json(os.path.join(path, manifest),
               {"command": command, "files": listing, "incomplete": os.path.basename(ready)})
    for file in moving:
        target = os.path.join(path, *file.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(os.path.join(ready, *file.split("/")), target)
    stale = [f for f in earlier if f not in files]
    for file in stale:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(path, *file.split("/")))
        parts = file.split("/")[:-1]
        while parts:  # the folders it leaves empty
            try:
                os.rmdir(os.path.join(path, *parts))
            except OSError:
                break
            parts.pop()
    write_json(os.path.join(path, manifest), {"command": command, "files": files})
    shutil.rmtree(ready)
    return stale
