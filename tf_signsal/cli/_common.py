"""What the commands share: error reporting, TensorFlow's import, the model, the --out policy.

Every --out goes through `tf_signsal._io`'s one output-folder policy (`prepare_out` and
`write_out` here): a new folder, an empty one or one the package wrote in before; a command
replaces only the files its manifest lists there, holds the --out's lock from its first
check to its end (`command_scope`), and writes beside it before moving its files in.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tf_signsal import _checks, _io
from tf_signsal.vocabulary import ATTRIBUTIONS

PROG = "tf-signsal"


class CommandError(Exception):
    """A problem with the command's inputs, reported in one line (exit status 1)."""


@contextlib.contextmanager
def reading(*problems: type[BaseException]) -> Iterator[None]:
    """Report a problem the package finds in the command's inputs (a ValueError or OSError
    of its checks, or one of `problems`) as a CommandError."""
    try:
        yield
    except (ValueError, OSError, *problems) as error:
        raise CommandError(_io.one_line(error)) from error


@contextlib.contextmanager
def telling_skipped() -> Iterator[None]:
    """Print one line on stderr per image file the reading passed over."""
    from tf_signsal.data import SkippedImageWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedImageWarning)
        try:
            yield
        finally:
            for warning in caught:
                if issubclass(warning.category, SkippedImageWarning):
                    print(f"{PROG}: {warning.message}", file=sys.stderr)
                else:
                    warnings.warn_explicit(
                        warning.message, warning.category, warning.filename, warning.lineno
                    )


# TensorFlow's C++ log lines (absl format) and absl's notice that precedes them.
_TF_LOG_LINE = re.compile(
    r"(?:[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\]|WARNING: All log messages before absl::)"
)


def import_tensorflow(debug: bool) -> None:
    """Import TensorFlow and Keras; unless `debug`, keep TensorFlow's C++ log quiet.

    TF_CPP_MIN_LOG_LEVEL=3 silences the C++ log once TensorFlow runs (e.g. "E0000 ...
    failed call to cuInit"); the lines printed while its libraries load, before absl's
    log is set up ("I0000 ... port.cc ... oneDNN", "cudart_stub.cc"), obey no setting, so
    the import runs with file descriptor 2 captured, and what it wrote is written back
    less those lines.
    """
    if "tensorflow" in sys.modules:
        return
    if debug:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to redirect
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            kept = [line for line in text.splitlines(True) if not _TF_LOG_LINE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


# ----------------------------------------------------------------------------- --out


@contextlib.contextmanager
def command_scope(args: argparse.Namespace) -> Iterator[None]:
    """The run of one command: the --out lock that `prepare_out` takes is held until the
    command ends, however it ends (an error, Ctrl-C)."""
    with _io.run_scope() as held:
        args.out_locks = held
        yield


def _tell(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def prepare_out(
    args: argparse.Namespace,
    command: str,
    names: Sequence[str] = (),
    own: re.Pattern[str] | None = None,
    inputs: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """Refuse, before any work, an --out that the output-folder policy refuses (see
    `tf_signsal._io`): not a folder, not writable, inside an input folder (`inputs`,
    (option, folder) pairs), locked by another run, holding a file of `names` that
    `command` did not write, or a folder the package never wrote in. Takes the --out's lock
    for the rest of the command (`command_scope`). Returns the files of `command`'s earlier
    run there (none when `own`, the pattern of the names it may write, is None: only the
    path is checked)."""
    with reading():
        _io.check_output_path(args.out, "--out", inputs)
        args.out_locks.enter_context(
            _io.locked_output_folder(args.out, command, "--out", _tell)
        )
        if own is None:
            return []
        return _io.claim_output_folder(args.out, command, names, own, "--out", _tell)


def write_out(
    out: str, command: str, names: Sequence[str], earlier: Sequence[str],
    write: Callable[[str], Any],
) -> tuple[Any, list[str]]:
    """Write `names` with `write(folder)` in a folder beside `out`, then move them into
    `out` under `command`'s manifest (see `tf_signsal._io.write_output_folder`); return what
    `write` returns and the names of the earlier run removed."""
    return _io.write_output_folder(out, command, names, earlier, write, "--out")


def outputs_pattern(names: Sequence[str]) -> re.Pattern[str]:
    """The pattern of exactly `names`: what a command of fixed outputs may write."""
    return re.compile("|".join(map(re.escape, names)))


def write_record_and_figure(
    out: str, command: str, names: tuple[str, str], earlier: Sequence[str], record: Any,
    figure: Any,
) -> list[str]:
    """Write `record` as JSON and `figure` as PNG under `names` in `out` (evaluate's and
    sanity's outputs), through `write_out`; return their paths."""
    from tf_signsal import plotting

    def write(folder: str) -> None:
        _io.write_json(os.path.join(folder, names[0]), record)
        plotting.save_figure(figure, os.path.join(folder, names[1]))

    write_out(out, command, names, earlier, write)
    return [os.path.join(out, name) for name in names]


def out_help(command: str, names: Sequence[str]) -> str:
    """The --out help of a command that writes the files `names`."""
    return (
        f"output folder: a new one, an empty one or one tf-signsal wrote in. {command} "
        f"writes {' and '.join(names)} there, and lists them in {_io.manifest_name(command)}; "
        "run again, it replaces them. It never replaces a file it did not write: an --out "
        "holding such a file is refused, and so is an --out inside the input data, or one "
        "another run is writing. The files are written beside --out and moved in at the end: "
        "an interrupted run leaves --out as it was"
    )


# ----------------------------------------------------------------------------- the model


def load_model(path: str) -> tuple[Any, tuple[int | None, ...], int]:
    """Load a Keras model file, check that it maps images to (batch, classes) scores, and
    return it with its (H, W, channels) input shape and number of classes."""
    import zipfile

    import keras

    if not os.path.lexists(path) or (os.path.islink(path) and not os.path.exists(path)):
        raise CommandError(f"model file not found: {path}")
    if not os.path.isfile(path):
        raise CommandError(f"cannot load the model {path}: not a regular file")
    reason = None
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        reason = "not a .keras file (a .keras file is a zip archive; this one is not)"
    elif path.endswith((".h5", ".hdf5")):
        with open(path, "rb") as file:
            if file.read(8) != b"\x89HDF\r\n\x1a\n":
                reason = "not an HDF5 file (no HDF5 signature)"
    if reason is not None:
        raise CommandError(f"cannot load the model {path}: {reason}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for unreadable or foreign files
        raise CommandError(f"cannot load the model {path}: {_io.one_line(error)}") from error
    try:
        shape = _checks.model_image_shape(model)
    except ValueError as error:
        raise CommandError(
            f"{path} is not an image classifier: {_io.one_line(error)}"
        ) from error
    if shape is None:
        raise CommandError(
            f"{path} is not an image classifier: it declares no (batch, H, W, channels) input"
        )
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1 or len(tuple(outputs[0].shape)) != 2:
        shapes = [tuple(o.shape) for o in outputs or []]
        raise CommandError(
            f"{path} is not a classifier: its output must be (batch, classes), it is {shapes}"
        )
    return model, shape, int(outputs[0].shape[-1])


def sha256(path: str) -> str:
    """The SHA-256 of a file, in hex (the run record's model fingerprint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_record(command: str, model_path: str, num_classes: int) -> dict[str, Any]:
    """The "run" record of a results file: the command, the model, versions and date."""
    from datetime import datetime, timezone

    from tf_signsal import report

    return {
        "command": command,
        "model": {"path": os.path.abspath(model_path), "sha256": sha256(model_path)},
        "num_classes": num_classes,
        "versions": report.versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------- arguments


def _integer_type(check: Callable[[str, Any], int], expected: str) -> Callable[[str], int]:
    """An argparse `type=`: `text` as an int passing `check` (from `_checks`, which is
    TensorFlow-free), else argparse's usage error saying what is `expected`."""

    def parse(text: str) -> int:
        try:
            return check("value", int(text))
        except ValueError:  # not an integer, or out of range
            raise argparse.ArgumentTypeError(f"must be {expected}, received {text!r}") from None

    return parse


positive_int = _integer_type(_checks.positive_int, "a positive integer")
non_negative_int = _integer_type(_checks.non_negative_int, "a non-negative integer")
seed_int = _integer_type(_checks.seed, "an integer in [0, 2**32)")


def model_argument(parser: argparse.ArgumentParser) -> None:
    """--model, the Keras model file every command but demo reads."""
    parser.add_argument("--model", required=True, help="a Keras model file (.keras, .h5)")


def attribution_argument(parser: argparse.ArgumentParser) -> None:
    """--attribution: what the maps are channel reductions of."""
    parser.add_argument(
        "--attribution", choices=ATTRIBUTIONS, default="gradient",
        help="what the maps are channel reductions of (default: %(default)s, the paper)",
    )
