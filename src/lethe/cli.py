"""`lethe ...`: the command line. Each subcommand lives in `lethe.commands.<name>`.

A user error becomes one line on stderr and exit code 2: a LetheError (bad input, refused
operation), a usage error (argparse), an argument that is not valid UTF-8, an OS error on a path
the user gave, and output cut off by a closed pipe (`lethe request list --json | head -1`).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import logging
import os
import pkgutil
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import NoReturn

import lethe
from lethe import commands
from lethe.errors import LetheError
from lethe.redact import mask_credentials


class UsageError(LetheError):
    """A command line argparse refused (unknown option, missing or malformed argument)."""


class LetheArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (argparse prints the usage block first)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _check_utf8(args: argparse.Namespace) -> None:
    """Refuse arguments that are not UTF-8: Python keeps such bytes as lone surrogates, which
    cannot be hashed, stored in the ledger or written to JSON, and would fail halfway through."""
    for name, value in vars(args).items():
        for text in _strings(value):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"argument {flag}: not valid UTF-8 text") from None


def _one_line(text: str) -> str:
    # Every message goes through here: a URL's password or token never reaches the terminal.
    return mask_credentials(" ".join(line.strip() for line in text.splitlines() if line.strip())
                            or "(no message)")


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file (tests capture it)
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = LetheArgumentParser(
        prog="lethe",
        description="Make a trained image classifier forget data on request (LFSSD), with evidence.",
    )
    parser.add_argument("--version", action="version", version=f"lethe {lethe.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        _check_utf8(args)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        result = args.func(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
    except LetheError as exc:
        print(f"lethe: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        print("lethe: error: the output was cut off: its reader closed the pipe", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave that cannot be read or written (permissions, disk full)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"lethe: error: {_one_line(exc.strerror or str(exc))}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lethe: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def run() -> NoReturn:
    """The `lethe` console script (and `python -m lethe.cli`): `main`, then an exit without the
    interpreter's teardown of the modules it imported (torch, MLflow, pandas: 1-2.5 s on two cores,
    spent after the answer is printed, and waited for by whoever reads the output to its end).
    Everything else a normal exit does still happens, in the interpreter's order: other threads
    finish, the atexit handlers run (temporary directories, logging, multiprocessing, coverage), the
    streams are flushed. An exception `main` does not turn into a message exits the usual way."""
    exit_without_teardown(main())


def exit_without_teardown(code: int) -> NoReturn:
    """Exit as the interpreter would (threads joined, atexit handlers, flushed streams), less the
    teardown of every imported module."""
    shutdown = getattr(threading, "_shutdown", None)  # what Py_FinalizeEx calls first: joins threads
    if shutdown is None:
        sys.exit(code)
    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # a closed pipe: nothing to say
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
