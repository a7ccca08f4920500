"""The ``mbutils`` command line: global options, error handling, signals, closed pipes, help."""
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import mbutils
from mbutils.cli import _models, main

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["data", "models", "score", "sweep", "book", "cache"]


@pytest.fixture(autouse=True)
def _restore_logger():
    logger = logging.getLogger("mbutils")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.fixture
def command(monkeypatch):
    """Replace ``mbutils models`` by a function; returns the list of namespaces it was called with."""
    calls = []

    def use(func=None):
        def run(args):
            calls.append(args)
            return func(args) if func else 0

        monkeypatch.setattr(_models, "_run", run)
        return calls

    return use


def _raise(exc):
    def run(args):
        raise exc

    return run


def _version():
    from importlib.metadata import version

    return version("mbutils")


@pytest.mark.parametrize("argv", [["--version"], ["models", "--version"], ["data", "synthetic", "--version"],
                                  ["-v", "score", "--version"]])
def test_version_before_or_after_the_command(argv, capsys):
    assert main(argv) == 0
    assert capsys.readouterr().out == f"mbutils {_version()}\n"


@pytest.mark.parametrize("argv, level", [
    (["models"], logging.WARNING), (["-q", "models"], logging.ERROR), (["models", "--quiet"], logging.ERROR),
    (["-v", "models"], logging.INFO), (["models", "-v"], logging.INFO), (["-vv", "models"], logging.DEBUG),
    (["-v", "models", "--verbose"], logging.DEBUG), (["-v", "-q", "models"], logging.WARNING),
])
def test_verbosity_flags_set_the_logger_level(argv, level, command):
    levels = []
    command(lambda args: levels.append(logging.getLogger("mbutils").level))
    assert main(argv) == 0
    assert levels == [level]


def test_one_stderr_handler_across_runs(command, capsys):
    command(lambda args: logging.getLogger("mbutils.models").info("info message"))
    for _ in range(3):
        assert main(["-v", "models"]) == 0
    ours = [h for h in logging.getLogger("mbutils").handlers if getattr(h, "_mbutils_cli", False)]
    assert len(ours) == 1
    assert capsys.readouterr().err.count("info message") == 3
    assert main(["models"]) == 0
    assert "info message" not in capsys.readouterr().err


def test_global_options_after_the_command(command):
    seen = []
    command(lambda args: seen.append((mbutils.get_config().progress, mbutils.get_config().device)))
    progress, device = mbutils.get_config().progress, mbutils.get_config().device
    with mbutils.config_context(progress=progress, device=device):
        assert main(["models", "--no-progress", "--device", "cpu"]) == 0
    with mbutils.config_context(progress=progress, device=device):
        assert main(["--device", "cpu", "models", "--device", "auto"]) == 0
    assert seen == [(False, "cpu"), (progress, "auto")]


def test_unexpected_error_one_line_or_traceback_with_debug(command, capsys):
    command(_raise(RuntimeError("boom")))
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["mbutils: error: RuntimeError: boom (re-run with --debug for the full traceback)"]
    for argv in (["--debug", "models"], ["models", "--debug"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):")
        assert "raise exc" in err and err.rstrip().endswith("RuntimeError: boom")


@pytest.mark.parametrize("exc, message", [
    (ValueError("bad value"), "bad value"),
    (KeyError("no model 'nope'"), "no model 'nope'"),
    (FileNotFoundError("dataset 'x.nc' not found"), "dataset 'x.nc' not found"),
    (PermissionError(13, "Permission denied", "out"), "[Errno 13] Permission denied: 'out'"),
])
def test_user_errors_one_line_with_the_command(exc, message, command, capsys):
    command(_raise(exc))
    assert main(["models"]) == 1
    assert capsys.readouterr().err == f"mbutils models: {message}\n"


def test_weights_unavailable_is_a_user_error(command, capsys):
    from mbutils.models import WeightsUnavailableError

    command(_raise(WeightsUnavailableError("no trained weights for resnet18 here (offline)")))
    assert main(["models"]) == 1
    assert capsys.readouterr().err == "mbutils models: no trained weights for resnet18 here (offline)\n"


def test_subcommand_named_in_errors(capsys):
    assert main(["data", "synthetic", "--out", "unused.nc", "--neurons", "0"]) == 1
    assert capsys.readouterr().err == "mbutils data synthetic: --neurons must be >= 1, got 0\n"


def test_usage_errors_exit_2(capsys):
    assert main(["score", "resnet18"]) == 2
    assert "the following arguments are required: --dataset, --out" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2
    assert main(["data"]) == 2  # a group without its subcommand: its help
    assert "synthetic" in capsys.readouterr().out


def test_keyboard_interrupt_exits_130_with_one_line(command, capsys):
    command(_raise(KeyboardInterrupt()))
    assert main(["models"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "mbutils: interrupted\n" and captured.out == ""


def test_broken_pipe_exits_quietly(command, capsys):
    command(_raise(BrokenPipeError(32, "Broken pipe")))
    assert main(["models"]) == 141
    assert capsys.readouterr().err == ""


def test_sigterm_handler_restored(command):
    before = signal.getsignal(signal.SIGTERM)
    during = []
    command(lambda args: during.append(signal.getsignal(signal.SIGTERM)))
    assert main(["models"]) == 0
    assert during[0] is not before and signal.getsignal(signal.SIGTERM) is before


def test_help_lists_each_command_on_one_line(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name in COMMANDS:
        (i,) = [i for i, line in enumerate(lines) if re.match(rf"^    {name} +\S", line)]
        assert not lines[i + 1].startswith(" " * 6)  # no continuation line
    assert "examples:\n  mbutils " in out


@pytest.mark.parametrize("argv", [["data"], ["data", "synthetic"], ["data", "allen"], ["models"], ["score"],
                                  ["sweep"], ["book"], ["cache"]])
def test_every_command_has_examples(argv, capsys):
    assert main([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^examples:\n  mbutils " + " ".join(argv), out, re.M), out
    assert "global options:" in out and "--verbose" in out


def test_score_help_example(capsys):
    assert main(["score", "--help"]) == 0
    text = capsys.readouterr().out
    assert "mbutils score resnet18 --weights random --dataset data/synthetic.nc --out results/resnet18" in text


def _mbutils_command() -> str:
    return f"{shlex.quote(sys.executable)} -m mbutils"


def test_closed_pipe_is_quiet():
    proc = subprocess.run(f"{_mbutils_command()} models | head -1", shell=True, capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 1 and "name" in proc.stdout


def test_python_m_mbutils_version():
    proc = subprocess.run([sys.executable, "-m", "mbutils", "models", "--version"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0 and proc.stdout == f"mbutils {_version()}\n" and proc.stderr == ""


@pytest.mark.parametrize("signum, code, line", [(signal.SIGINT, 130, "mbutils: interrupted"),
                                                (signal.SIGTERM, 143, "mbutils: terminated")])
def test_signal_stops_a_real_score_run(signum, code, line, tmp_path):
    from mbutils.testing import make_fake_dataset

    # 119 stimuli of the synthetic mouse's size: a run long enough to be interrupted
    dataset = make_fake_dataset(tmp_path / "d.nc", n_stimuli=119, image_size=(240, 307))
    env = dict(os.environ, MBUTILS_CACHE=str(tmp_path / "cache"), MBUTILS_PROGRESS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mbutils", "score", "gabor", "--weights", "random", "--dataset", str(dataset),
         "--out", str(tmp_path / "out"), "--no-cache"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
        # a shell's background job starts with SIGINT ignored; Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    err = []
    extracting = threading.Event()

    def read_stderr():
        for chunk in iter(lambda: proc.stderr.read(64), ""):
            err.append(chunk)
            if "gabor:" in "".join(err[-2:]):
                extracting.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    # wait for the feature extraction (past the dataset read: netCDF4 swallows a signal that lands
    # inside one of its C calls), at least ~3 s in
    start = time.monotonic()
    extracting.wait(timeout=120)
    time.sleep(max(0.5, 3 - (time.monotonic() - start)))
    assert proc.poll() is None, "the run finished before the signal"
    proc.send_signal(signum)
    try:
        proc.wait(timeout=60)
    finally:
        proc.kill()
    reader.join(timeout=10)
    stderr = "".join(err)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert stderr.rstrip().endswith(line)
    assert not (tmp_path / "out" / "summary.parquet").exists()


def test_score_passes_n_boot_and_reliability_cutoffs(monkeypatch, tmp_path):
    import mbutils.scoring.pipeline as pipeline

    seen = []

    def fake_score_model(*args, **kwargs):
        import pandas as pd

        seen.append(kwargs)
        return {"summary": pd.DataFrame()}

    monkeypatch.setattr(pipeline, "score_model", fake_score_model)
    base = ["score", "gabor", "--weights", "random", "--dataset", str(tmp_path / "d.nc"), "--out", str(tmp_path / "o")]
    assert main(base) == 0
    assert main(base + ["--n-boot", "0", "--reliability-cutoffs"]) == 0
    assert main(base + ["--reliability-cutoffs", "0.6", "0.7"]) == 0
    assert "n_boot" not in seen[0] and "reliability_cutoffs" not in seen[0]  # score_model's defaults
    assert seen[1]["n_boot"] == 0 and seen[1]["reliability_cutoffs"] == ()
    assert seen[2]["reliability_cutoffs"] == (0.6, 0.7)
