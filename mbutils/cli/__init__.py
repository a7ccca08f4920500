"""The ``mbutils`` command (also ``python -m mbutils``).

:func:`main` is the entry point. Each command group lives in a private module with an
``add_parser(subparsers, parents)`` function that registers its subcommands (passing
``parents`` on, so that the global options are accepted after the command too) and sets
``func``, called with the parsed namespace and returning an exit code:

- :mod:`mbutils.cli._data` -- ``mbutils data synthetic``, ``mbutils data allen``
- :mod:`mbutils.cli._models` -- ``mbutils models``
- :mod:`mbutils.cli._score` -- ``mbutils score``
- :mod:`mbutils.cli._build` -- ``mbutils sweep``, ``mbutils book``
- :mod:`mbutils.cli._cache` -- ``mbutils cache``
- :mod:`mbutils.cli._claims` -- ``mbutils claims``

Heavy imports happen inside ``func`` only, so that ``mbutils --help`` stays fast.

Exit codes: 0 success; 1 the command failed or rejected its input (one line on stderr says
why); 2 a usage error (unknown option, missing argument, no command); 130 interrupted
(Ctrl-C); 141 standard output closed early (``mbutils models | head -1``); 143 terminated
(SIGTERM).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import traceback

__all__ = ["build_parser", "configure_logging", "main"]

#: command-group modules, in the order their commands appear in ``mbutils --help``
_COMMAND_MODULES = [
    "mbutils.cli._data",
    "mbutils.cli._models",
    "mbutils.cli._score",
    "mbutils.cli._build",
    "mbutils.cli._cache",
    "mbutils.cli._claims",
]

#: namespace attributes that hold the chosen command and subcommand names
_COMMAND_DESTS = ("command", "data_command")

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143

_EXAMPLES = """\
examples:
  mbutils data synthetic --out data/synthetic.nc
  mbutils models --available
  mbutils score resnet18 --weights random --dataset data/synthetic.nc --out results/resnet18
  mbutils sweep --config smoke
  mbutils book --config smoke
  mbutils cache --clear --stale
  mbutils claims --results results/default --dataset data/synthetic.nc

`mbutils COMMAND --help` describes a command. The global options are accepted before or
after the command."""


def _version() -> str:
    """The installed distribution's version, else ``mbutils.__version__``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mbutils")
    except PackageNotFoundError:
        from .. import __version__

        return __version__


def _add_global_options(parser: argparse.ArgumentParser, *, top: bool, exclude=()) -> None:
    """Add the global options to ``parser``, but those whose option string is in ``exclude``.

    The top-level parser stores them as ``top_<name>`` with real defaults; a command's parser
    as ``sub_<name>``, set only when given, so that neither overwrites the other (argparse
    copies a subcommand's namespace over the top-level one) and :func:`main` combines both.
    """
    prefix = "top_" if top else "sub_"

    def default(value):
        return value if top else argparse.SUPPRESS

    options = [
        (("--version",), dict(action="version", version=f"mbutils {_version()}",
                              help="print the version and exit")),
        (("-v", "--verbose"), dict(action="count", dest=prefix + "verbose", default=default(0),
                                   help="more log messages on stderr (-v info, -vv debug)")),
        (("-q", "--quiet"), dict(action="count", dest=prefix + "quiet", default=default(0),
                                 help="log errors only")),
        (("--debug",), dict(action="store_true", dest=prefix + "debug", default=default(False),
                            help="show the full traceback of an error")),
        (("--no-progress",), dict(action="store_true", dest=prefix + "no_progress", default=default(False),
                                  help="hide progress bars")),
        (("--device",), dict(choices=["auto", "cpu", "cuda"], dest=prefix + "device", default=default(None),
                             help="torch device (default: the configured one)")),
    ]
    group = parser.add_argument_group("global options")
    for flags, kwargs in options:
        if not set(flags) & set(exclude):
            group.add_argument(*flags, **kwargs)


def _global_options_parser(exclude=()) -> argparse.ArgumentParser:
    """A parent parser with the global options of a command (see :func:`_add_global_options`).

    A command that defines one of these options itself takes a parser built with that option
    in ``exclude`` as its parent (parents share their option objects with every child).
    """
    parser = argparse.ArgumentParser(add_help=False)
    _add_global_options(parser, top=False, exclude=exclude)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``mbutils`` argument parser with every command registered.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="mbutils",
        description="Compare deep neural networks with mouse visual cortex (Conwell et al. 2021).",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_global_options(parser, top=True)
    common = _global_options_parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub, [common])
    return parser


def configure_logging(verbose: int = 0, quiet: int = 0) -> logging.Logger:
    """Give the ``mbutils`` logger one stderr handler and the level the flags ask for.

    Parameters
    ----------
    verbose : int
        Number of ``-v``: 1 INFO, 2 or more DEBUG.
    quiet : int
        Number of ``-q``: ERROR. ``-v`` and ``-q`` cancel each other out.

    Returns
    -------
    logging.Logger
        The ``mbutils`` logger (WARNING without flags).
    """
    level = min(max(logging.WARNING + 10 * (int(quiet) - int(verbose)), logging.DEBUG), logging.ERROR)
    logger = logging.getLogger("mbutils")
    for handler in list(logger.handlers):
        if getattr(handler, "_mbutils_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler._mbutils_cli = True
    logger.addHandler(handler)
    logger.setLevel(level)
    return logger


class _Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so that cleanup code runs as on Ctrl-C."""


@contextlib.contextmanager
def _sigterm_raises():
    """Turn SIGTERM into :class:`_Terminated` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _silence_stdout() -> None:
    """Point the stdout file descriptor at devnull: the exit's flush then has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # a replaced sys.stdout without a descriptor
        pass


def _close_progress_bars() -> None:
    """Close the progress bars an exception left open, so that the message below starts a line."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        with contextlib.suppress(Exception):
            bar.close()


def _user_error_types() -> tuple:
    """Exceptions whose message is meant for the user: no traceback, ``mbutils CMD: message``."""
    types = [ValueError, KeyError, OSError]
    sources = sys.modules.get("mbutils.models._sources")  # loaded if a model was looked up
    if sources is not None:
        types.append(sources.WeightsUnavailableError)
    return tuple(types)


def _message(err: BaseException) -> str:
    if isinstance(err, KeyError) and len(err.args) == 1:
        return str(err.args[0])  # str(KeyError) adds quotes
    return str(err) or type(err).__name__


class _Run:
    """What the error handlers of :func:`main` need to know about the command line."""

    command = ""
    debug = False


def _run(argv, state: _Run) -> int:
    from ..config import set_config, torch_env

    os.environ.update(torch_env())  # before a command imports torch
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error (argparse printed it)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    state.debug = bool(args.top_debug or getattr(args, "sub_debug", False))
    state.command = " ".join(str(getattr(args, d)) for d in _COMMAND_DESTS if getattr(args, d, None))
    configure_logging(args.top_verbose + getattr(args, "sub_verbose", 0),
                      args.top_quiet + getattr(args, "sub_quiet", 0))
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_USAGE
    if args.top_no_progress or getattr(args, "sub_no_progress", False):
        set_config(progress=False)
    device = getattr(args, "sub_device", None) or args.top_device
    if device:
        set_config(device=device)
    code = int(args.func(args) or 0)
    sys.stdout.flush()  # a closed pipe fails here, inside the handlers of main
    return code


def main(argv=None) -> int:
    """Run the ``mbutils`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 success, 1 failure or rejected input (one line on stderr; the full
        traceback with ``--debug``), 2 usage error, 130 interrupted, 141 standard output
        closed, 143 terminated.

    Examples
    --------
    >>> from mbutils.cli import main
    >>> main(["models", "--source", "baseline"])  # doctest: +SKIP
    """
    state = _Run()
    try:
        with _sigterm_raises():
            return _run(argv, state)
    except KeyboardInterrupt:
        _close_progress_bars()
        if state.debug:
            traceback.print_exc()
        print("mbutils: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        _close_progress_bars()
        print("mbutils: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as err:
        _close_progress_bars()
        if state.debug:
            traceback.print_exc()
        if isinstance(err, _user_error_types()):
            prefix = f"mbutils {state.command}".rstrip()
            print(f"{prefix}: {_message(err)}", file=sys.stderr)
        elif not state.debug:
            print(f"mbutils: error: {type(err).__name__}: {err} (re-run with --debug for the full traceback)",
                  file=sys.stderr)
        return EXIT_FAILURE
