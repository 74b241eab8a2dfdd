"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
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
