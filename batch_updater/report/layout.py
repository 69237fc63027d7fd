"""The columns of the Results sheet, what each outcome and column means, and the row values."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time

from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from ..tickets import Outcome, RowResult, RunInfo, Sheet, SheetRow
from .cells import _formula_like, _sent_at, safe_text

# The columns added after the input's own columns, in this order.
RESULT_COLUMNS: tuple[str, ...] = (
    "Row",
    "Outcome",
    "HTTP Status",
    "Message",
    "Attempts",
    "Sent At",
    "Duration ms",
    "Request",
)

# Evidence columns, written only when the run collected them (--capture-before, --verify):
# column name -> the ticket field the server returned before the update.
BEFORE_COLUMNS: dict[str, str] = {
    "Before: State": "TicketState",
    "Before: Priority": "Priority",
    "Before: Assigned To": "AssignedTo",
    "Before: Description": "TicketDescription",
}
VERIFICATION_COLUMN = "Verification"

# When an input column already has one of the names above, the input keeps its name (its data is
# the evidence) and ours gets this suffix: "Outcome (batch-update)", then "(batch-update 2)"...
COLLISION_SUFFIX = "batch-update"

# The fixed order of outcomes in the Summary, so that months can be compared line by line.
OUTCOME_ORDER: tuple[Outcome, ...] = (
    Outcome.UPDATED,
    Outcome.UNCHANGED,
    Outcome.CONFLICT,
    Outcome.FAILED,
    Outcome.UNKNOWN,
    Outcome.INVALID,
    Outcome.SKIPPED,
    Outcome.NOT_SENT,
    Outcome.VALID,
)

OUTCOME_COLOURS: dict[Outcome, str] = {
    Outcome.UPDATED: "C6EFCE",  # green
    Outcome.UNCHANGED: "EDEDED",  # light grey
    Outcome.CONFLICT: "FCE4D6",  # peach
    Outcome.FAILED: "FFC7CE",  # red
    Outcome.UNKNOWN: "E4DFEC",  # lavender
    Outcome.INVALID: "F8CBAD",  # orange
    Outcome.SKIPPED: "D9D9D9",  # grey
    Outcome.NOT_SENT: "FFEB9C",  # yellow
    Outcome.VALID: "DDEBF7",  # light blue
}

OUTCOME_MEANINGS: dict[Outcome, str] = {
    Outcome.UPDATED: "The server accepted the change (HTTP 204).",
    Outcome.UNCHANGED: "The ticket already held every value the row asks for (as read from CCS "
    "when the run started, in pages, or just before its update); nothing was sent.",
    Outcome.CONFLICT: "The ticket changed in CCS since the export the sheet was made from (in a "
    "field the row would overwrite), or since the plan an apply sends; nothing was sent. Message "
    "names the field, its value then and its current value. Check the change, then edit the row "
    "or run with --overwrite-conflicts (for an apply: make a new plan).",
    Outcome.FAILED: "The server refused the change (400, 403, 404), it still answered with an "
    "error (5xx) after the last retry, or it could not be reached at all. The ticket was not "
    "changed by this row.",
    Outcome.UNKNOWN: "A request left, but no answer was seen (interrupted while it was in "
    "flight, or a try timed out or lost its connection after sending, and no later try "
    "succeeded), or the server answered 2xx with a body saying the update failed: the ticket may "
    "or may not have changed. A resume or retry (batch-update resume, batch-update retry) reads it back before "
    "deciding.",
    Outcome.INVALID: "The row did not pass validation; nothing was sent. Message says why.",
    Outcome.SKIPPED: "Blank row, or already updated by the run being resumed; nothing was sent.",
    Outcome.NOT_SENT: "The run stopped (Ctrl-C, credentials, stop policy) before this row was "
    "sent.",
    Outcome.VALID: "Dry run: the row passed validation and would be sent. Nothing was sent.",
}

COLUMN_MEANINGS: dict[str, str] = {
    "Row": "The row's number in the input sheet, as Excel shows it.",
    "Outcome": "What became of the row; the outcomes are explained below.",
    "HTTP Status": "The HTTP status code of the server's last answer for this row; empty if no "
    'answer was received. 200 with "verified by read-back" in Message: a resumed run read the '
    "ticket (GET) and found it already held the values, so the update was not sent again.",
    "Message": "The server's message, the validation problems, or why the row was not sent.",
    "Attempts": "How many requests were sent for this row: the PATCH and its retries, the reads "
    "(GET) of --capture-before and --verify, and the read-back of a resumed row; a PATCH sent "
    "again with a new token after HTTP 401 counts twice. 0 if none.",
    "Sent At": "When the row's first request was sent: a date cell in UTC, to the millisecond "
    "(e.g. 2026-11-30 14:03:07.123 UTC; sort and filter it as a date). In the CSV, ISO 8601 text "
    "(2026-11-30T14:03:07.123Z).",
    "Duration ms": "From the row's first request to its last answer, in milliseconds: retries, "
    "their waits and the reads (GET) included.",
    "Request": "The JSON body of the PATCH request; empty if no request was made.",
    "Before: State": "The ticket's state as the server held it just before the update (read with "
    "GET); empty if it was not read.",
    "Before: Priority": "The ticket's priority just before the update.",
    "Before: Assigned To": "Who the ticket was assigned to just before the update.",
    "Before: Description": "The ticket's description just before the update.",
    "Verification": "The ticket read back after the update: Verified (it holds every value "
    "sent), Mismatch (naming the fields that differ), or Not checked (and why).",
}

SAFETY_NOTE = (
    "Text beginning with = + - @, a tab, CR, LF or NUL is stored as a text cell with Excel's "
    "quote-prefix style: its value is exactly the original, and Excel neither evaluates it when "
    "the workbook is opened nor when the cell is edited. Control characters are stored as "
    "Excel's _xHHHH_ escapes, which Excel and other readers turn back into the character. Only "
    "characters no workbook can hold (lone surrogates, U+FFFE, U+FFFF) are shown as \ufffd, and "
    "text longer than Excel's 32,767-character cell limit is cut with a visible marker; the "
    "Summary counts such cells. Every other value is exactly as read. The CSV, which has no cell "
    "types, puts a ' before such text: it is for reading, not for feeding back."
)

TITLE = "batch-update results"
RESULTS_SHEET = "Results"
SUMMARY_SHEET = "Summary"
LEGEND_SHEET = "Legend"
RUN_SHEET = "Run"

_MIN_WIDTH = 8
_MAX_WIDTH = 60
# Rows looked at to size the columns; the widths are fixed before the first row is streamed.
_WIDTH_SAMPLE_ROWS = 500

_BOLD = Font(bold=True)
_TITLE_FONT = Font(bold=True, size=14)
_TOP = Alignment(vertical="top", wrap_text=True)
_FILLS = {
    outcome: PatternFill(fill_type="solid", start_color=colour, end_color=colour)
    for outcome, colour in OUTCOME_COLOURS.items()
}


# --------------------------------------------------------------------------------------------
# Layout


@dataclass(frozen=True)
class _Layout:
    """The column names of the Results sheet and the facts the Summary reports about them."""

    original: list[str]
    ours: list[str]
    renamed: list[tuple[str, str]]  # (our usual name, the name used because of a collision)
    usual: list[str] = field(default_factory=list)  # our columns' usual names, in order of ours

    @property
    def headers(self) -> list[str]:
        return self.original + self.ours


def result_headers(input_headers: Sequence[str]) -> list[str]:
    """The Results sheet's header row, as written, for an input with these headers."""
    return [str(safe_text(h)) for h in _layout(list(input_headers), len(input_headers)).headers]


def evidence_columns(run: RunInfo) -> tuple[str, ...]:
    """The evidence columns this run's Results sheet has, after the usual result columns."""
    names: tuple[str, ...] = ()
    if run.capture_before:
        names += tuple(BEFORE_COLUMNS)
    if run.verify:
        names += (VERIFICATION_COLUMN,)
    return names


def _layout(input_headers: list[str], width: int, evidence: Sequence[str] = ()) -> _Layout:
    original = [str(h) if h is not None else "" for h in input_headers]
    # Cells beyond the header row's last column are kept too, under a name saying where they were.
    for index in range(len(original), width):
        original.append(f"Column {get_column_letter(index + 1)}")
    taken = {_header_key(h) for h in original}
    ours: list[str] = []
    renamed: list[tuple[str, str]] = []
    for name in (*RESULT_COLUMNS, *evidence):
        chosen = name
        number = 1
        while _header_key(chosen) in taken:
            label = COLLISION_SUFFIX if number == 1 else f"{COLLISION_SUFFIX} {number}"
            chosen = f"{name} ({label})"
            number += 1
        if chosen != name:
            renamed.append((name, chosen))
        taken.add(_header_key(chosen))
        ours.append(chosen)
    return _Layout(original, ours, renamed, [*RESULT_COLUMNS, *evidence])


def _header_key(header: str) -> str:
    # Excel users see "Outcome", "outcome " and "OUTCOME" as the same column.
    return header.strip().casefold()


def _check_results(sheet: Sheet, results: Sequence[RowResult]) -> None:
    """Refuse to write a workbook whose rows would not match their results (a bug, not input)."""
    if len(results) != len(sheet.rows):
        raise ValueError(
            f"internal error: {len(results)} results for {len(sheet.rows)} rows of "
            f"{sheet.file_name}; the results workbook was not written"
        )
    for position, (row, result) in enumerate(zip(sheet.rows, results)):
        if row.row_number != result.row_number:
            raise ValueError(
                f"internal error: result {position + 1} is for row {result.row_number} but the "
                f"sheet's row {position + 1} is row {row.row_number}; the results workbook was "
                f"not written"
            )
        if not isinstance(result.outcome, Outcome):
            raise ValueError(
                f"internal error: row {row.row_number} has outcome {result.outcome!r}, "
                f"not an Outcome; the results workbook was not written"
            )


def _result_values(result: RowResult, evidence: Sequence[str] = ()) -> list[object]:
    values: list[object] = [
        result.row_number,
        result.outcome.value,
        result.status,
        result.message,
        result.attempts,
        _sent_at(result.sent_at),
        result.duration_ms,
        result.request_json or None,
    ]
    for name in evidence:
        if name == VERIFICATION_COLUMN:
            values.append(result.verification or None)
        else:
            held = result.before.get(BEFORE_COLUMNS[name]) if result.before else None
            values.append(
                held if isinstance(held, (str, int, float)) or held is None else str(held)
            )
    return values


@dataclass
class _Tally:
    """What the Summary reports, counted from the rows as they are written."""

    rows: int = 0
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    no_response: int = 0  # sent, but no HTTP answer (timeouts, resets)
    no_request: int = 0  # never sent (invalid, skipped, not sent, dry run)
    text_protected: int = 0  # text cells with the quote-prefix style (formula-like text)
    text_not_exact: int = 0  # text no workbook can hold as it is (see SAFETY_NOTE)
    verifications: Counter[str] = field(default_factory=Counter)  # Verified, Mismatch, Not checked


def _row_values(
    row: SheetRow, result: RowResult, width: int, tally: _Tally, evidence: Sequence[str] = ()
) -> list[object]:
    """The row's cells, every one through safe_text."""
    raw = list(row.values)
    if len(raw) < width:
        raw.extend([None] * (width - len(raw)))
    raw.extend(_result_values(result, evidence))
    values = [safe_text(value) for value in raw]
    for before, after in zip(raw, values):
        # safe_text returns unchanged text as the very same object, so this is cheap.
        if before is not after and isinstance(before, str) and before != after:
            tally.text_not_exact += 1
        elif _formula_like(after):
            tally.text_protected += 1
    tally.rows += 1
    tally.outcomes[result.outcome] += 1
    if result.verification:
        tally.verifications[result.verification.split(":", 1)[0]] += 1
    if result.status is not None:
        tally.statuses[result.status] += 1
    elif result.attempts:
        tally.no_response += 1
    else:
        tally.no_request += 1
    return values


def _column_widths(headers: list[str], sample: list[list[object]]) -> list[float]:
    widths = []
    for index, header in enumerate(headers):
        # Room for the bold header and the autofilter button.
        longest = _display_length(header) + 4
        for values in sample:
            if index < len(values):
                longest = max(longest, _display_length(values[index]) + 1)
        widths.append(float(min(_MAX_WIDTH, max(_MIN_WIDTH, longest))))
    return widths


def _display_length(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, datetime):
        return 19
    if isinstance(value, (date, time)):
        return 10
    text = str(value)
    if len(text) > _MAX_WIDTH * 4:
        return _MAX_WIDTH
    return max((len(line) for line in text.splitlines()), default=0)
