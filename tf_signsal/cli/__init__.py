"""The `tf-signsal` command line: demo | evaluate | explain | export | sanity.

Each command is one module of this package that declares its arguments
(`add_arguments(parser)`) and runs (`run(args)`), with its one-line `HELP` and its
`EXAMPLE`; `build_parser` finds them, so a new command is one new module. What they share
(error reporting, the model file, the --out policy) is in `tf_signsal.cli._common`.

Bad usage exits with status 2 and argparse's message; a problem with the inputs (a missing
file, a model that is not a classifier, an unreadable image, an --out that cannot be
written) exits with status 1 and one line on stderr, with the traceback only under
`--debug`; any other error is a bug, and raises with its traceback. Every --out follows one
policy (`tf_signsal._io`), checked before any work: a new folder, an empty one or one
tf-signsal wrote in (its `.tf-signsal-<command>.json` lists what each command wrote
there); a command replaces only the files it listed, and refuses an --out holding another
file of a name it writes, lying in its input folder (--images, --data, --data-dir), or
locked by another run. It writes beside --out and moves its files in at the end, so that an
interrupted run leaves --out as it was.

The parser is built from `tf_signsal.vocabulary` alone, so `tf-signsal --help` answers
without importing TensorFlow; each command imports what it uses. Unless `--debug` is given,
TensorFlow's C++ log (start-up lines such as "I0000 ... cudart_stub.cc ...") is kept off
the terminal.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from tf_signsal._io import one_line
from tf_signsal.cli._common import PROG, CommandError, command_scope, import_tensorflow

__all__ = ["CommandError", "build_parser", "main"]


def _command_modules() -> list:
    """The command modules of this package (every public submodule), in name order."""
    return [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name)
        if not info.name.startswith("_")
    ]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `tf-signsal` and its commands (no TensorFlow needed)."""
    debug = "show the full traceback of an error, and TensorFlow's log"
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand must not overwrite a --debug given before it.
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Sign-aware saliency maps (positive, negative, active, inactive) and the "
        "black/white deletion benchmark for Keras classifiers.",
        epilog=f"example:\n  {PROG} demo\n  {PROG} explain --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help=debug)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        name = module.__name__.rsplit(".", 1)[1]
        sub = commands.add_parser(
            name, help=module.HELP, description=module.HELP, parents=[common],
            epilog=module.EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
    return parser


def _reported(error: BaseException) -> bool:
    """Whether `error` is a problem with the inputs or the machine (one line) rather than a
    bug: a CommandError (what the commands' checks raise, and the package's ValueErrors
    met while reading the inputs), an OSError (a file, the disk), or an error TensorFlow
    reports from running the model (e.g. out of memory)."""
    if isinstance(error, (CommandError, OSError)):
        return True
    tensorflow = sys.modules.get("tensorflow")
    return tensorflow is not None and isinstance(error, tensorflow.errors.OpError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `tf-signsal` with `argv` (default: the process's arguments); return the exit status.

    Example:
        >>> from tf_signsal.cli import main
        >>> main(["export", "--model", "model.keras", "--out", "models/signsal/1"])
        0
    """
    args = build_parser().parse_args(argv)
    try:
        import_tensorflow(args.debug)
        with command_scope(args):
            args.func(args)
    except Exception as error:
        if args.debug or not _reported(error):
            raise
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return 1
    return 0
