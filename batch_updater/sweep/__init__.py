"""The core functions of the commands: a run of a sheet, `run(request, settings, console) ->
RunOutcome`; an export, `export(...) -> ExportOutcome`; one ticket shown, `show(...)`.

The steps of the data flow (read, validate, the earlier runs, send, the evidence) as plain
functions. The run talks to the user only through a `Console` (notices, credentials, the
confirmation, progress, the stop events) and returns what the command line prints: it never
prints, prompts, exits or reads stdin. Tests and benchmarks call it with consoles of their own.

Modules: `run` (`run()`, the data flow, and its first steps: reading, validation), `earlier`
(the policy for earlier runs: the journal folders, the run lock, resume, retry and the
duplicate guard), `continuation` (what a resume or retry sends, reads back or carries),
`sending` (the confirmation, the journal started, the sender wired to the journal), `server`
(the server or the simulator, the credentials, the client and its TLS), `export` (the tickets a
Search matches, read in pages, written as a workbook to edit), `show` (one ticket as sent), `evidence` (the outputs chosen, the workbook written from the journal, the journal
finished, the rollback workbook, the manifest), `outcome` (`RunRequest`, `RunOutcome`,
`ExitStatus`), `console` (the `Console` protocol), `history` (the core of the commands over
recorded runs: the list, a workbook rebuilt, a rollback made ready), `common` (names and times
as written).
"""

from .applying import ApplyRequest, apply_plan
from .approving import ApproveOutcome, ApproveRequest, approve
from .comparing import CompareOutcome, CompareRequest, compare_runs
from .console import Console, Progress, Stops
from .continuation import Continuation, continue_run
from .export import ExportOutcome, ExportRequest, export, search_query
from .outcome import ExitStatus, NothingToSend, RunOutcome, RunRequest, Transport
from .planning import PlanOutcome, PlanRequest, make_plan
from .run import ROLLS_BACK, planned_results, run
from .server import SIMULATED_SERVER
from .show import ShowOutcome, ShowRequest, show

__all__ = [
    "ROLLS_BACK",
    "SIMULATED_SERVER",
    "ApplyRequest",
    "ApproveOutcome",
    "ApproveRequest",
    "CompareOutcome",
    "CompareRequest",
    "Console",
    "Continuation",
    "ExitStatus",
    "ExportOutcome",
    "ExportRequest",
    "NothingToSend",
    "PlanOutcome",
    "PlanRequest",
    "Progress",
    "RunOutcome",
    "RunRequest",
    "ShowOutcome",
    "ShowRequest",
    "Stops",
    "Transport",
    "apply_plan",
    "approve",
    "compare_runs",
    "continue_run",
    "export",
    "make_plan",
    "planned_results",
    "run",
    "search_query",
    "show",
]
