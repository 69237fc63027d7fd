"""A run of a sheet as one function: `run(request, settings, console) -> RunOutcome`.

The steps of the data flow (read, validate, the earlier runs, send, the evidence) as plain
functions. The run talks to the user only through a `Console` (notices, credentials, the
confirmation, progress, the stop events) and returns what the command line prints: it never
prints, prompts, exits or reads stdin. Tests and benchmarks call it with consoles of their own.

Modules: `run` (`run()`, the data flow, and its first steps: reading, validation), `earlier`
(the policy for earlier runs: the journal folders, the run lock, resume, retry and the
duplicate guard), `continuation` (what a resume or retry sends, reads back or carries),
`sending` (the server or the simulator, credentials, the confirmation, the sender wired to the
journal), `evidence` (the outputs chosen, the workbook written from the journal, the journal
finished, the rollback workbook, the manifest), `outcome` (`RunRequest`, `RunOutcome`,
`ExitStatus`), `console` (the `Console` protocol), `history` (the core of the commands over
recorded runs: the list, a workbook rebuilt, a rollback made ready), `common` (names and times
as written).
"""

from .console import Console, Progress, Stops
from .continuation import Continuation, continue_run
from .outcome import ExitStatus, NothingToSend, RunOutcome, RunRequest, Transport
from .run import ROLLS_BACK, planned_results, run
from .sending import SIMULATED_SERVER

__all__ = [
    "ROLLS_BACK",
    "SIMULATED_SERVER",
    "Console",
    "Continuation",
    "ExitStatus",
    "NothingToSend",
    "Progress",
    "RunOutcome",
    "RunRequest",
    "Stops",
    "Transport",
    "continue_run",
    "planned_results",
    "run",
]
