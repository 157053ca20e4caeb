"""How a command reports failure: one line naming the problem, an exit code by kind, the traceback on request.

Exit codes: 0 done (also a run stopped by SIGTERM after writing its checkpoint); 1 a runtime failure (a reward that
raises, a non-finite loss, a dead rollout engine, a checkpoint that cannot be written); 2 a usage, config or data
error; 128 + the signal number for an interrupt that stops the run (130 for Ctrl-C, 143 for SIGTERM before the
first checkpoint). Errors of an unexpected kind are bugs and keep Python's full traceback.

Only the standard library is imported here, so the command line stays fast when nothing fails.
"""
from __future__ import annotations

import signal
import sys
import traceback
from typing import Callable

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT


class UsageError(ValueError):
    """A command used wrongly (a missing file, an unknown mode, a missing option); the message says what to pass."""


class RunInterrupted(KeyboardInterrupt):
    """A signal stopped the run before it could finish; the message says what was kept and how to continue.

    A KeyboardInterrupt, so `except Exception` in user code does not swallow it.
    """

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum


def exit_code(error: BaseException) -> int | None:
    """The exit code of an error the command reports in one line, or None for an unexpected error (a bug)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    # Matched by class name so this module imports nothing heavy; the classes live in mmpost.config, mmpost.types,
    # mmpost.registry, mmpost.run_dir, mmpost.judge and mmpost.eval.common.
    if names & {"UsageError", "ConfigError", "RegistryError", "DataError", "MediaError", "BenchmarkDataError",
                "JudgeUnavailableError", "FileNotFoundError", "NotADirectoryError", "IsADirectoryError"}:
        return EXIT_USAGE
    if names & {"RewardError", "TrainingError", "RolloutBackendError", "CheckpointError", "PermissionError"}:
        return EXIT_RUNTIME
    return None


def summary_exit_code(summary: dict) -> int:
    """0 for a run that finished or stopped cleanly after SIGTERM (a scheduler's preemption), 130 for one that Ctrl-C
    stopped (its checkpoint is written all the same)."""
    return EXIT_INTERRUPTED if summary.get("signal") == "SIGINT" else 0


def one_line(error: BaseException) -> str:
    """The error's message on one line, followed by its notes (e.g. where the full traceback was written)."""
    text = " ".join(str(error).split()) or type(error).__name__
    notes = [" ".join(str(note).split()) for note in getattr(error, "__notes__", ())]
    return text + "".join(f" ({note})" for note in notes)


def run_command(command: Callable[[], int], *, debug: bool = False) -> int:
    """Run a CLI command; known errors become one line on stderr and an exit code, with the traceback if `debug`."""
    try:
        return command()
    except KeyboardInterrupt as error:
        if debug:
            traceback.print_exc()
        print(f"interrupted: {one_line(error) if str(error) else 'stopped by Ctrl-C'}", file=sys.stderr)
        return 128 + int(getattr(error, "signum", signal.SIGINT))
    except SystemExit as error:
        if error.code is None or isinstance(error.code, int):
            raise
        print(error.code if str(error.code).startswith("error:") else f"error: {error.code}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - classified below; anything else is re-raised with its traceback
        code = exit_code(error)
        if code is None:
            raise
        if debug:
            traceback.print_exc()
        hint = " (--debug prints the traceback)" if code == EXIT_RUNTIME and not debug and not getattr(error, "__notes__", None) else ""
        print(f"error: {one_line(error)}{hint}", file=sys.stderr)
        return code
