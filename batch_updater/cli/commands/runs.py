"""`batch-update runs [FILE]`: the recent runs."""

from __future__ import annotations

from pathlib import Path

import click

from ..common import ExitStatus
from ..guard import CONTEXT, guarded
from ..options import (
    config_option,
    debug_option,
    optional_file_argument,
)


@click.command("runs", context_settings=CONTEXT)
@optional_file_argument
@config_option
@debug_option
@guarded
def runs_command(file: Path | None, config_path: Path | None) -> ExitStatus:
    """List the recent runs (of FILE, or all), newest first, with how each ended."""
    from ..records import list_recent_runs

    return list_recent_runs(file, config_path=config_path)
