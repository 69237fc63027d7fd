"""The command line: options, wiring, exit codes, and what the administrator sees on the terminal.

A thin shell over the core: it builds the settings, calls read -> validate -> send -> report, and
turns the project's exceptions into one clear message and an exit code. It is the only module
that prints, prompts or exits, and the only one that imports click.

Modules: `entry` (the click group, its default command `run` and the other commands), `options`
(the option groups the commands share), `sweep` (a run of a sheet), `sending` (credentials,
confirmation, the sender),
`earlier` (earlier runs: journals, the run lock, resume and retry), `records` (report, runs,
manifest check, rollback), `terminal` (progress and signals), `common` (exit codes, messages).
"""

from .common import ExitStatus
from .entry import command, main
from .sending import SIMULATED_SERVER
from .sweep import _planned_results, run
from .terminal import Interrupts, TerminalProgress

__all__ = [
    "SIMULATED_SERVER",
    "ExitStatus",
    "Interrupts",
    "TerminalProgress",
    "_planned_results",
    "command",
    "main",
    "run",
]
