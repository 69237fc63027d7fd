"""The commands, one module each, in the order --help lists them (the most used first).

A new command is a module here with one click command, added to COMMANDS.
"""

from .apply import apply_command
from .approve import approve_command
from .check import check_command
from .compare import compare_command
from .export import export_command
from .plan import plan_command
from .report import report_command
from .resume import resume_command
from .retry import retry_command
from .rollback import rollback_command
from .run import run_command
from .runs import runs_command
from .show import show_command

COMMANDS = (
    run_command,
    export_command,
    plan_command,
    approve_command,
    apply_command,
    resume_command,
    retry_command,
    rollback_command,
    report_command,
    runs_command,
    check_command,
    compare_command,
    show_command,
)

__all__ = ["COMMANDS"]
