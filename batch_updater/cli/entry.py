"""The command group: its default command `run`, the other commands (one module each in
`commands/`), and the options that chose a job before there were commands.

`batch-update FILE` is `batch-update run FILE`; the other commands are named. Each command's
function turns its options into one call of a core function and returns an exit status; the
guard (`guard.guarded`) turns the project's exceptions into one message and that exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from .. import __version__
from .commands import COMMANDS
from .common import EXIT_CODES_HELP, _quoted
from .guard import CONTEXT

# Whether each takes a value, and the command to type instead.
LEGACY_OPTIONS = {
    "--resume": (False, "resume {file}"),
    "--retry-failed": (True, "retry {file} {value}"),
    "--report-only": (True, "report {value}"),
    "--runs": (False, "runs {optional_file}"),
    "--check-manifest": (True, "check {value}"),
    "--rollback": (True, "rollback {value}"),
}


class DefaultGroup(click.Group):
    """A group whose first argument, when it names no command, is the FILE of `run`.

    So `batch-update tickets.xlsx --dry-run` runs the sheet, and a file named like a command is
    still run with `batch-update run report`.
    """

    default_command = "run"
    own_options = ("-h", "--help", "--version")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in self.own_options:
            self._refuse_a_mistyped_command(args[0])
            args = [self.default_command, *args]
        if args and args[0] == self.default_command:
            _refuse_a_legacy_option(self.commands[self.default_command], args[1:])
        return super().parse_args(ctx, args)

    def _refuse_a_mistyped_command(self, word: str) -> None:
        """A word close to a command's name that is not a file (no extension, not there) is a
        mistyped command, not a sheet: say which command was meant, rather than "not found"."""
        import difflib

        if word.startswith("-") or Path(word).suffix or Path(word).exists():
            return
        close = difflib.get_close_matches(word, list(self.commands), n=1, cutoff=0.6)
        if close:
            raise click.UsageError(
                f"No such command {word!r}. Did you mean {close[0]!r}? "
                f"(A file of that name is run with: batch-update run {word})"
            )

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order they are defined, the most used first

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        path = ctx.command_path
        formatter.write(
            f"Usage: {path} FILE [OPTIONS]       (the same as: {path} run FILE [OPTIONS])\n"
            f"       {path} COMMAND [ARGS]...\n"
        )


@click.group(
    cls=DefaultGroup,
    context_settings=CONTEXT,
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="batch-update")
def command() -> None:
    """Update CCS remediation tickets from a spreadsheet (.xlsx, .xlsm, .xls, .ods or .csv).

    Every row is checked before anything is sent; then each ticket's current state is read, and
    one PATCH goes to the CCS server for each ticket that really changes, at a steady pace. A
    results workbook records what happened to each row. Each run is journaled, so that it can be
    resumed, retried, rebuilt or rolled back. `batch-update export` writes the sheet to edit.

    \b
    Examples:
      batch-update samples/tickets.xlsx --simulate     try it against the built-in simulator
      batch-update export --state Open --out t.xlsx    the open tickets, as a sheet to edit
      batch-update tickets.xlsx --dry-run              check the sheet, send nothing
      batch-update tickets.xlsx --url https://ccs01:12431 --user "corp\\svc-ccs"
      batch-update resume tickets.xlsx                 continue a run that did not finish
      batch-update COMMAND --help                      the options of one command
    """


for _command in COMMANDS:
    command.add_command(_command)


def _refuse_a_legacy_option(run: click.Command, args: list[str]) -> None:
    """The options that chose a job before there were commands: a usage error that gives the
    command to type (found in the arguments, so that no option of `run` is kept for them)."""
    takes_value = {
        name
        for param in run.params
        if isinstance(param, click.Option) and not param.is_flag
        for name in param.opts
    }
    file = legacy = value = None
    index = 0
    while index < len(args):
        token = args[index]
        name, equals, inline = token.partition("=")
        if token == "--":
            file = file or (args[index + 1] if index + 1 < len(args) else None)
            break
        if name in LEGACY_OPTIONS:
            legacy = legacy or name
            if LEGACY_OPTIONS[name][0] and not equals:
                index += 1
                value = args[index] if index < len(args) else "RUN"
            elif equals:
                value = inline
        elif token.startswith("-"):
            index += 1 if name in takes_value and not equals else 0
        elif file is None:
            file = token
        index += 1
    if legacy is None:
        return
    typed = (
        LEGACY_OPTIONS[legacy][1]
        .format(
            file=_quoted(Path(file)) if file else "FILE",
            optional_file=_quoted(Path(file)) if file else "",
            value=value,
        )
        .rstrip()
    )
    raise click.UsageError(
        f"{legacy} is a command of its own now: batch-update {typed} "
        f"(its options: batch-update {typed.split()[0]} --help)."
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the batch-update command."""
    command.main(args=list(argv) if argv is not None else None, prog_name="batch-update")
