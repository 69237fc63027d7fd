"""`batch-update rollback RUN`: put back what RUN's tickets held before it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..common import ExitStatus
from ..guard import CONTEXT, SAME_EXIT_CODES, guarded
from ..options import (
    debug_option,
    optional_file_argument,
    rollback_again_option,
    run_argument,
    sending_options,
)


@click.command(
    "rollback",
    context_settings=CONTEXT,
    epilog=SAME_EXIT_CODES,
    short_help="Put back what RUN's tickets held before it updated them.",
)
@run_argument
@optional_file_argument
@rollback_again_option
@sending_options
@debug_option
@guarded
def rollback_command(run_ref: str, file: Path | None, **options: Any) -> ExitStatus:
    """Put back what RUN's tickets held before it updated them, exactly as its journal captured them.

    RUN is a run id or its results workbook, of a run made with --capture-before. FILE (the
    sheet RUN sent) is needed only when the run's journal is in the folder of another input.
    The rollback is a run of its own: journaled, verified, and undoable in turn.
    """
    from ..records import rollback_from_journal

    return rollback_from_journal(run_ref, {"file": file, **options})
