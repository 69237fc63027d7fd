"""The command line: the commands, the terminal, exit codes: what the administrator sees.

A thin shell over the core: each command parses its options, calls one core function (a run of
a sheet is `sweep.run`, with the terminal as its console), prints what it returns and exits. It
is the only package that prints, prompts or exits, and the only one that imports click.

Modules: `entry` (the click group, whose default command is `run`), `commands/` (one module per
command), `guard` (errors to one message and an exit code), `options` (the option groups the
commands share), `running` (a run of a sheet: settings, logging, the
run, its summary), `records` (report, runs, manifest check, rollback), `terminal` (the
terminal's Console: notices, questions, the keyring, progress and signals), `common` (exit
codes, messages).
"""

from ..sweep import SIMULATED_SERVER
from .common import ExitStatus
from .entry import command, main
from .running import run_sheet
from .terminal import Interrupts, TerminalConsole, TerminalProgress

__all__ = [
    "SIMULATED_SERVER",
    "ExitStatus",
    "Interrupts",
    "TerminalConsole",
    "TerminalProgress",
    "command",
    "main",
    "run_sheet",
]
