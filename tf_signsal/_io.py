"""Atomic file writes (a reader never sees a half-written file) and output folders (the
package replaces only what it wrote)."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Sequence
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

_MANIFEST = re.compile(r"\.tf-signsal-[\w-]+\.json")


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
        PermissionError: the nearest existing parent cannot be written.
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
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {shown}: {parent} cannot be written")
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


def claim_output_folder(
    path: str | os.PathLike,
    command: str,
    names: Sequence[str],
    own: re.Pattern[str],
    option: str = "`out`",
) -> list[str]:
    """Check, before any work, that `command` may write `names` in the folder `path`;
    return the files an earlier run of it wrote there (its manifest), for
    `write_output_folder`.

    Args:
        path: the output folder (`check_output_path` checked it).
        command: who writes, e.g. "explain".
        names: the file names it will write there.
        own: the names `command` may ever write: a manifest listing another name is not
            obeyed, so an edited manifest cannot make it replace a file of the user's.
        option: how the messages name `path`.

    Raises:
        FileExistsError: `path` holds a file of `names` that no earlier run of `command`
            wrote, or it is a non-empty folder the package never wrote in (no manifest).
        ValueError: the manifest of `command` there cannot be read.
    """
    shown = os.fspath(path)
    path = os.path.abspath(shown)
    if not os.path.isdir(path):
        return []
    manifest = os.path.join(path, manifest_name(command))
    earlier = []
    if os.path.lexists(manifest):
        try:
            listed = read_json(manifest)["files"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"cannot read {manifest} ({command}'s list of its files): {one_line(error)}"
            ) from error
        earlier = [
            name for name in listed if isinstance(name, str) and own.fullmatch(name)
            and os.path.isfile(os.path.join(path, name))
            and not os.path.islink(os.path.join(path, name))
        ]
    foreign = [
        name for name in names
        if os.path.lexists(os.path.join(path, name)) and name not in earlier
    ]
    if foreign:
        raise FileExistsError(
            f"{option} {shown} holds {', '.join(foreign)}, which {command} did not write there "
            f"(not in {manifest_name(command)}) and will not replace: choose another "
            f"{option}, or move or remove them"
        )
    if os.listdir(path) and not is_package_folder(path):
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
    write: Callable[[], Any],
) -> tuple[Any, list[str]]:
    """Write the files `names` of `command` in `path` with `write()`, and remove the files
    of the earlier run (`earlier`, from `claim_output_folder`) that it did not rewrite.

    The manifest first lists both runs' files, so that a run stopped half-way leaves no
    file of its own unlisted; once written, it lists `names` alone.

    Returns:
        What `write` returns, and the names removed.
    """
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    manifest = os.path.join(path, manifest_name(command))
    write_json(manifest, {"command": command, "files": sorted({*earlier, *names})})
    result = write()
    stale = sorted(set(earlier) - set(names))
    for name in stale:
        os.remove(os.path.join(path, name))
    write_json(manifest, {"command": command, "files": list(names)})
    return result, stale
