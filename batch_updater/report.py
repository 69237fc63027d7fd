"""The results workbook (and CSV) that goes to the auditors.

One sheet "Results" repeats every input column exactly as read and adds what became of each row;
a sheet "Summary" says who ran what, where, when, with which input, and reconciles the counts; a
sheet "Legend" explains the columns and outcomes, so that the workbook explains itself.

Every value passes `safe_text()` on its way out, and text a spreadsheet could take for a formula
is written as a text cell with Excel's quote-prefix style: no cell is ever a formula (OWASP CSV
injection), and the value stays exactly the original (a rollback or a re-used workbook sends what
was there). Only the CSV, which has no cell types, gets the OWASP apostrophe (`csv_text()`). Files are written to a
temporary file beside the target and moved into place at the end; an existing file is never
overwritten and the input is never written to. openpyxl is imported here and nowhere else.
"""

from __future__ import annotations

import csv
import json
import math
import numbers
import os
import re
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.chart import BarChart, Reference
from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from .errors import OutputError
from .rollback import ROLLBACK_FIELDS
from .rollback import rollback_rows as restoring_rows
from .tickets import Outcome, RowResult, RunInfo, Sheet, SheetRow

# Excel's documented maximum number of characters in one cell (counted in UTF-16 code units).
EXCEL_CELL_LIMIT = 32_767

# A leading character that makes Excel, LibreOffice or Google Sheets evaluate a cell (OWASP).
FORMULA_TRIGGERS = frozenset("=+-@\t\r\n\0")

# Shown instead of a character that no .xlsx can hold, not even escaped: lone surrogates and the
# non-characters U+FFFE/U+FFFF (neither can be encoded, nor read back by Excel or calamine).
REPLACEMENT_CHARACTER = "\ufffd"
_UNWRITABLE_CHARS_RE = re.compile("[\ud800-\udfff\ufffe\uffff]")
# C0 controls XML 1.0 cannot hold as they are: a workbook holds them (and CR, which XML readers
# turn into LF) as Excel's own "_xHHHH_" escapes, which Excel, LibreOffice and calamine decode.
_CONTROL_CHARS_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\r]")

TRUNCATION_MARKER = " … [cut by batch-update: {total:,} characters in all, Excel holds {limit:,}]"

# Excel keeps 15 significant digits; longer integers would silently lose their last digits.
_LARGEST_EXACT_INTEGER = 10**15 - 1

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
    Outcome.FAILED,
    Outcome.UNKNOWN,
    Outcome.INVALID,
    Outcome.SKIPPED,
    Outcome.NOT_SENT,
    Outcome.VALID,
)

OUTCOME_COLOURS: dict[Outcome, str] = {
    Outcome.UPDATED: "C6EFCE",  # green
    Outcome.FAILED: "FFC7CE",  # red
    Outcome.UNKNOWN: "E4DFEC",  # lavender
    Outcome.INVALID: "F8CBAD",  # orange
    Outcome.SKIPPED: "D9D9D9",  # grey
    Outcome.NOT_SENT: "FFEB9C",  # yellow
    Outcome.VALID: "DDEBF7",  # light blue
}

OUTCOME_MEANINGS: dict[Outcome, str] = {
    Outcome.UPDATED: "The server accepted the change (HTTP 204).",
    Outcome.FAILED: "The server refused the change (400, 403, 404), it still answered with an "
    "error (5xx) after the last retry, or it could not be reached at all. The ticket was not "
    "changed by this row.",
    Outcome.UNKNOWN: "A request left, but no answer was seen (interrupted while it was in "
    "flight, or a try timed out or lost its connection after sending, and no later try "
    "succeeded), or the server answered 2xx with a body saying the update failed: the ticket may "
    "or may not have changed. A resume or retry (--resume, --retry-failed) reads it back before "
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

# Text openpyxl would store as an error cell rather than as text.
_EXCEL_ERROR_TEXTS = frozenset(
    ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA")
)
# Excel and other readers decode "_xHHHH_" inside cell text as a character; "_x005F_" is "_".
# (openpyxl's reader does not decode them; Excel, LibreOffice and calamine do.)
_OOXML_ESCAPE_RE = re.compile(r"_(x[0-9A-Fa-f]{4}_)")
_ODD_FIRST = "#=+-@"  # error texts, and the formula triggers that are not white space
_XML_BLANK_RE = re.compile("[ \t\n\r]")


# --------------------------------------------------------------------------------------------
# Values


def safe_text(value: object) -> object:
    """Return value as it may be written to a workbook: text unchanged, unless no workbook can
    hold it (see SAFETY_NOTE); numbers, dates and times in the forms Excel keeps exactly.

    That text is never taken for a formula is the writer's job (`_xlsx_value`): a text cell with
    the quote-prefix style. The CSV has no cell types and uses `csv_text()`.
    """
    # Exact-type checks first: this runs for every cell of a 100,000-row sheet.
    kind = type(value)
    if kind is str:
        return _safe_string(value)  # type: ignore[arg-type]
    if kind is int:
        if -_LARGEST_EXACT_INTEGER <= value <= _LARGEST_EXACT_INTEGER:  # type: ignore[operator]
            return value
        return _safe_string(str(value))
    if kind is float:
        if math.isfinite(value):  # type: ignore[arg-type]
            return value
        return _safe_string(str(value))  # Excel has no NaN or infinity
    if value is None or kind is bool:
        return value
    return _safe_other(value)


def _safe_other(value: object) -> object:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return safe_text(int(value))  # IntEnum and friends become plain numbers
    if isinstance(value, float):
        return safe_text(float(value))
    if isinstance(value, datetime):
        return _safe_datetime(value)
    if isinstance(value, date):
        # Excel's calendar starts in 1900; earlier dates would show as #### or as a wrong date.
        return value if value.year >= 1900 else _safe_string(value.isoformat())
    if isinstance(value, time):
        return _naive_time(value)
    if isinstance(value, str):
        return _safe_string(str.__str__(value))  # the text itself, not a subclass's __str__
    if isinstance(value, numbers.Integral):
        return safe_text(int(value))
    if isinstance(value, numbers.Real):
        return safe_text(float(value))
    try:
        text = str(value)
    except Exception:  # a broken __str__ must not cost the auditors their workbook
        text = object.__repr__(value)
    return _safe_string(text)


def csv_text(value: object) -> object:
    """A value for the results CSV: the OWASP apostrophe before text a spreadsheet would evaluate.

    The CSV is for reading; unlike the workbook, its text is not the exact value.
    """
    if type(value) is str and value[:1] in FORMULA_TRIGGERS:
        return "'" + value  # type: ignore[operator]
    return value


def _formula_like(value: object) -> bool:
    """Text that a spreadsheet would evaluate if it were typed, opened or edited as it is."""
    return type(value) is str and (value[:1] in FORMULA_TRIGGERS or value in _EXCEL_ERROR_TEXTS)


def _safe_string(text: str) -> str:
    if not text:
        return text
    if _UNWRITABLE_CHARS_RE.search(text):
        text = _UNWRITABLE_CHARS_RE.sub(REPLACEMENT_CHARACTER, text)
    # A UTF-16 length is at most twice the character count, so short text needs no counting.
    if len(text) * 2 > EXCEL_CELL_LIMIT:
        text = _truncate(text)
    return text


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _truncate(text: str) -> str:
    total = _utf16_length(text)
    if total <= EXCEL_CELL_LIMIT:
        return text
    marker = TRUNCATION_MARKER.format(total=len(text), limit=EXCEL_CELL_LIMIT)
    budget = EXCEL_CELL_LIMIT - _utf16_length(marker)
    cut = min(budget, len(text))
    # A character is one or two UTF-16 units: dropping half the excess (rounded up) in characters
    # never drops more than one unit too many, and every round drops at least one character.
    while (excess := _utf16_length(text[:cut]) - budget) > 0:
        cut -= (excess + 1) // 2
    return text[:cut] + marker


def _safe_datetime(value: datetime) -> object:
    if value.tzinfo is not None:
        offset = value.utcoffset()
        if offset is not None:
            value = (value - offset).replace(tzinfo=None)  # naive UTC, as openpyxl requires
        else:
            value = value.replace(tzinfo=None)
    if value.year < 1900:
        return _safe_string(value.isoformat())
    return value


def _naive_time(value: time) -> time:
    if value.tzinfo is None:
        return value
    offset = value.utcoffset()
    naive = value.replace(tzinfo=None)
    if offset is None:
        return naive
    shifted = datetime.combine(date(2000, 1, 1), naive) - offset
    return shifted.time()


def _as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


# How a Sent At date cell shows: the moment to the millisecond, and that it is UTC.
SENT_AT_FORMAT = 'yyyy-mm-dd hh:mm:ss.000 "UTC"'


def _sent_at(moment: datetime | None) -> datetime | None:
    """Sent At as a date cell holds it: naive UTC (a workbook has no time zones), to the ms."""
    if moment is None:
        return None
    moment = _as_utc(moment).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _iso_utc(moment: datetime | None, *, milliseconds: bool = True) -> str:
    if moment is None:
        return ""
    moment = _as_utc(moment)
    if milliseconds:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _concurrency_text(run: RunInfo) -> object:
    """4, or "auto (at most 7 requests in flight at once)"."""
    if run.concurrency is None:
        return ""
    if run.concurrency == "auto" and run.workers:
        return f"auto (at most {run.workers} requests in flight at once)"
    return run.concurrency


def _duration_text(elapsed: timedelta) -> str:
    seconds = elapsed.total_seconds()
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d} ({seconds:.1f} s)"


# --------------------------------------------------------------------------------------------
# Paths


def default_results_path(
    input_path: Path, started: datetime, out_dir: Path | None = None, suffix: str = ".xlsx"
) -> Path:
    """'<input stem>.results-<UTC yyyymmdd-HHMMSS>.xlsx' beside the input, or in out_dir."""
    stamp = _as_utc(started).strftime("%Y%m%d-%H%M%S")
    folder = Path(out_dir) if out_dir is not None else Path(input_path).parent
    return folder / f"{Path(input_path).stem}.results-{stamp}{suffix}"


def free_path(path: Path, companion: Callable[[Path], Path] | None = None) -> Path:
    """path itself if nothing is there, else the first free `<stem>-2<suffix>`, `-3`, ...

    With a companion (the manifest beside a workbook, say), that file must be free too.
    """
    candidate, number = path, 1
    while candidate.exists() or (companion is not None and companion(candidate).exists()):
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def check_output_path(path: Path, *, input_path: Path | None = None, option: str = "--out") -> None:
    """Raise OutputError unless path is a new file in a writable folder and not the input."""
    _check_target(Path(path), [Path(input_path)] if input_path is not None else [], option)


def _check_target(path: Path, inputs: Sequence[Path], option: str) -> None:
    for input_path in inputs:
        if _same_file(path, input_path):
            raise OutputError(
                f"{path} is the input file; batch-update never writes to its input.",
                tip=f"Choose another name for the results with {option}.",
            )
    if os.path.lexists(path):
        what = "is a folder" if path.is_dir() else "exists already"
        raise OutputError(
            f"{path} {what}; batch-update will not overwrite it.",
            tip=f"Move it away, or choose another name with {option}.",
        )
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise OutputError(
            f"Cannot write {path}: the folder {folder} {what}.",
            tip=f"Create the folder, or choose another place with {option}.",
        )
    # os.access does not see Windows ACLs or read-only mounts; creating a file does.
    try:
        probe = _create_temp_beside(path)
    except OSError as exc:
        raise OutputError(
            f"Cannot write {path}: cannot create files in {folder} ({exc.strerror or exc}).",
            tip=f"Choose a folder you can write to with {option}.",
        ) from exc
    _remove_quietly(probe)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _create_temp_beside(target: Path) -> Path:
    """Create an empty temporary file in target's folder (honouring the umask, unlike mkstemp)."""
    for _ in range(100):
        # Shortened so that a long but legal target name still leaves room for the temp name.
        candidate = target.with_name(f".{target.name[:100]}.{secrets.token_hex(4)}.tmp")
        try:
            with open(candidate, "xb"):
                pass
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name beside {target}")


def _remove_quietly(path: Path | None) -> None:
    if path is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass  # best effort: the original error matters more than a leftover temp file


def _move_into_place(temp: Path, target: Path, option: str) -> None:
    """Give temp the name target, failing (never overwriting) if target exists meanwhile."""
    exists_error = _appeared_error(target, option)
    if os.path.lexists(target):
        raise exists_error
    # A hard link is created only if the name is free, atomically: no window in which a file
    # that appears at the last moment could be overwritten.
    try:
        os.link(temp, target)
    except FileExistsError:
        raise exists_error from None
    except OSError:
        # File systems without hard links (FAT, some network shares): check, then replace.
        if os.path.lexists(target):
            raise exists_error from None
        os.replace(temp, target)
        return
    _remove_quietly(temp)


def _appeared_error(target: Path, option: str) -> OutputError:
    return OutputError(
        f"{target} appeared while the results were being written; batch-update will not "
        f"overwrite it.",
        tip=f"Move it away, or choose another name with {option}, and write the results again.",
    )


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


# --------------------------------------------------------------------------------------------
# Writing


def write_results(
    path: Path,
    sheet: Sheet,
    results: Sequence[RowResult],
    run: RunInfo,
    *,
    csv_path: Path | None = None,
) -> None:
    """Write the results workbook (and the CSV, if asked) without ever overwriting a file."""
    _check_results(sheet, results)
    path = Path(path)
    targets = [(path, "--out")]
    if csv_path is not None:
        csv_path = Path(csv_path)
        if _same_file(csv_path, path):
            raise OutputError(
                f"{csv_path} is both the results workbook and the results CSV.",
                tip="Give the CSV its own name with --csv.",
            )
        targets.append((csv_path, "--csv"))
    inputs = [Path(p) for p in dict.fromkeys((sheet.path, run.input_path)) if p]
    for target, option in targets:
        _check_target(target, inputs, option)

    width = max([len(sheet.headers)] + [len(row.values) for row in sheet.rows])
    layout = _layout(list(sheet.headers), width, evidence_columns(run))

    temps: list[Path] = []
    try:
        temp_xlsx = _create_temp_beside(path)
        temps.append(temp_xlsx)
        if csv_path is None:
            _write_files(temp_xlsx, None, sheet, results, run, layout, width)
        else:
            temp_csv = _create_temp_beside(csv_path)
            temps.append(temp_csv)
            # Excel needs the BOM to read UTF-8; newline="" lets the csv module write CRLF.
            with open(temp_csv, "w", encoding="utf-8-sig", newline="") as csv_file:
                _write_files(temp_xlsx, csv_file, sheet, results, run, layout, width)
        # Both names are checked before either file is moved, so that a clash leaves neither.
        for target, option in targets:
            if os.path.lexists(target):
                raise _appeared_error(target, option)
        for (target, option), temp in zip(targets, temps):
            _move_into_place(temp, target, option)
    except OSError as exc:
        names = " and ".join(str(target) for target, _ in targets)
        folders = " and ".join(dict.fromkeys(str(target.parent) for target, _ in targets))
        options = " or ".join(option for _, option in targets)
        raise OutputError(
            f"Could not write {names}: {exc.strerror or exc}.",
            tip=f"Check the free space and the permissions of {folders}, or choose another "
            f"place with {options}.",
        ) from exc
    finally:
        for temp in temps:
            _remove_quietly(temp)


def _write_files(
    xlsx_path: Path,
    csv_file: IO[str] | None,
    sheet: Sheet,
    results: Sequence[RowResult],
    run: RunInfo,
    layout: _Layout,
    width: int,
) -> None:
    workbook = Workbook(write_only=True)
    workbook.properties.creator = f"batch-update {run.tool_version}"
    workbook.properties.title = TITLE
    tally = _Tally()
    try:
        _write_results_sheet(
            workbook, csv_file, sheet, results, layout, width, tally, evidence_columns(run)
        )
        _write_summary_sheet(workbook, sheet, run, layout, tally)
        _write_run_sheet(workbook, run)
        _write_legend_sheet(workbook, layout)
        workbook.save(str(xlsx_path))
    except BaseException:
        _abandon(workbook)
        raise


def _abandon(workbook: Workbook) -> None:
    """Close half-written sheets now, rather than when the garbage collector finds them."""
    for ws in workbook.worksheets:
        try:
            if not ws.closed:
                ws.close()
        except Exception:
            pass  # the error that got us here is the one to report


def _write_results_sheet(
    workbook: Workbook,
    csv_file: IO[str] | None,
    sheet: Sheet,
    results: Sequence[RowResult],
    layout: _Layout,
    width: int,
    tally: _Tally,
    evidence: Sequence[str] = (),
) -> None:
    ws = workbook.create_sheet(RESULTS_SHEET)
    headers = [safe_text(h) for h in layout.headers]
    outcome_index = width + RESULT_COLUMNS.index("Outcome")
    sent_index = width + RESULT_COLUMNS.index("Sent At")

    # Write-only sheets stream rows, so widths, panes and the filter are fixed up front.
    sample_tally = _Tally()
    sample = [
        _row_values(row, result, width, sample_tally, evidence)
        for row, result in zip(sheet.rows[:_WIDTH_SAMPLE_ROWS], results[:_WIDTH_SAMPLE_ROWS])
    ]
    for index, column_width in enumerate(_column_widths(headers, sample), start=1):
        ws.column_dimensions[get_column_letter(index)].width = column_width
    ws.freeze_panes = "A2"
    last = f"{get_column_letter(len(headers))}{len(sheet.rows) + 1}"
    ws.auto_filter.ref = f"A1:{last}"

    ws.append([_styled(ws, header, font=_BOLD) for header in headers])
    # The csv module writes None as an empty field and dates in ISO form, as Excel reads them.
    writer = csv.writer(csv_file) if csv_file is not None else None
    if writer is not None:
        writer.writerow(headers)

    # The Outcome column is coloured by conditional formatting, one rule per outcome, rather
    # than by a style on every cell: the cells stay plain values (a styled cell costs openpyxl
    # about 3 us a row more to write), the colour follows the value when an auditor sorts or
    # filters (Excel and LibreOffice both apply such rules).
    if sheet.rows:
        column = get_column_letter(outcome_index + 1)
        _colour_outcomes(ws, f"{column}2:{column}{len(sheet.rows) + 1}")
    for row, result in zip(sheet.rows, results):
        values = _row_values(row, result, width, tally, evidence)
        sent = values[sent_index]
        if writer is not None:
            if sent is not None:  # the CSV has no date cells: ISO 8601 text, as the journal has
                values[sent_index] = _iso_utc(sent)
            writer.writerow([csv_text(v) for v in values])
        if sent is not None:
            cell = WriteOnlyCell(ws, value=sent)
            cell.number_format = SENT_AT_FORMAT
            values[sent_index] = cell
        # Only text that openpyxl or Excel would not take as plain text needs a cell of its own
        # (isprintable() is the quick test that leaves the regular expression to the few).
        ws.append(
            [
                _xlsx_value(ws, v)
                if type(v) is str
                and (
                    not v
                    or v[0] in _ODD_FIRST
                    or v[0].isspace()
                    or "_x" in v
                    or (not v.isprintable() and _CONTROL_CHARS_RE.search(v) is not None)
                )
                else v
                for v in values
            ]
        )


def _colour_outcomes(ws: Any, cell_range: str) -> None:
    """Colour each Outcome cell of cell_range by its value, as the Legend sheet shows."""
    for outcome in OUTCOME_ORDER:
        # Outcome texts hold no quotes; a formula's text constant doubles them all the same.
        text = outcome.value.replace('"', '""')
        ws.conditional_formatting.add(
            cell_range,
            CellIsRule(operator="equal", formula=[f'"{text}"'], fill=_FILLS[outcome]),
        )


def _xlsx_value(ws: object, value: object) -> object:
    """The value, or a text cell where openpyxl or Excel would not read the value as text.

    Text a spreadsheet would evaluate ("=1+1", "-x", "@SUM(A1)", "#N/A") becomes a text cell
    with the quote-prefix style: the stored value is exactly the text, Excel shows it as text
    and keeps it text when the cell is edited; no apostrophe is added to the value.
    """
    if type(value) is not str:
        return value
    if not value:
        return None  # no cell at all, rather than an empty text cell
    protect = _formula_like(value)
    if "_x" in value or (not value.isprintable() and _CONTROL_CHARS_RE.search(value)):
        # Excel decodes "_x0041_" in cell text as "A"; escaping the underscore keeps the text.
        value = _OOXML_ESCAPE_RE.sub(r"_x005F_\1", value)
        # Control characters, and CR (which XML readers turn into LF), as Excel writes them.
        value = _CONTROL_CHARS_RE.sub(_ooxml_escape, value)
        if len(value) > EXCEL_CELL_LIMIT:
            value = _truncate(value)
    if value.isspace() and len(value) * 7 <= EXCEL_CELL_LIMIT:
        # openpyxl marks only text with non-blank content as xml:space="preserve", and readers
        # drop the XML blanks of a blank-only text; written as escapes, the blanks survive.
        value = _XML_BLANK_RE.sub(_ooxml_escape, value)
    if protect or value[:1] == "=":
        # openpyxl would store "#N/A" as an error value and "=..." as a formula: the cell's
        # type is set to text, and the quote prefix keeps Excel from evaluating it on edit.
        cell = WriteOnlyCell(ws, value=value)
        cell.data_type = "s"
        cell.quotePrefix = True
        return cell
    return value


def _ooxml_escape(match: re.Match[str]) -> str:
    return f"_x{ord(match.group()):04X}_"


def _styled(
    ws: object,
    value: object,
    *,
    font: Font | None = None,
    fill: PatternFill | None = None,
    alignment: Alignment | None = None,
) -> Cell:
    """A cell with a style, for the few cells that have one (header, Outcome, Summary keys)."""
    prepared = _xlsx_value(ws, safe_text(value))
    cell = prepared if isinstance(prepared, Cell) else WriteOnlyCell(ws, value=prepared)
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    if alignment is not None:
        cell.alignment = alignment
    return cell


def _summary_items(
    sheet: Sheet, run: RunInfo, layout: _Layout, tally: _Tally
) -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    if run.run_id:
        items.append(("Run ID", run.run_id))
    if run.follows:
        items.append(("Follows", run.follows))
    items += [
        ("Input file", Path(run.input_path).name if run.input_path else sheet.file_name),
        ("Input path", run.input_path or sheet.path),
        ("Input SHA-256", run.input_sha256),
        ("Sheet", run.sheet_name or sheet.sheet_name),
        ("Header row", sheet.header_row),
        ("Rows read", len(sheet.rows)),
    ]
    for outcome in OUTCOME_ORDER:
        items.append((outcome.value, tally.outcomes[outcome]))
    counted = sum(tally.outcomes[outcome] for outcome in OUTCOME_ORDER)
    balanced = counted == len(sheet.rows) == tally.rows
    terms = " + ".join(f"{tally.outcomes[o]} {o.value}" for o in OUTCOME_ORDER)
    items.append(
        (
            "Reconciliation",
            f"{'balanced' if balanced else 'NOT balanced'}: {len(sheet.rows)} rows read "
            f"{'=' if balanced else '≠'} {terms} (= {counted}, counted from the Results sheet)",
        )
    )
    for status in sorted(tally.statuses, key=lambda code: (len(str(code)), str(code))):
        items.append((f"HTTP {status}", tally.statuses[status]))
    items.append(("No response", tally.no_response))
    items.append(("No request sent", tally.no_request))
    items.append(
        (
            "Before values",
            "captured: each ticket was read (GET) just before its update; see the Before columns"
            if run.capture_before
            else "not captured (run with --capture-before to record them)",
        )
    )
    if run.verify:
        checks = tally.verifications
        verification = (
            f"on: each updated ticket was read back; {checks['Verified']} Verified, "
            f"{checks['Mismatch']} Mismatch, {checks['Not checked']} Not checked"
        )
    else:
        verification = "off (run with --verify to read every updated ticket back)"
    items.append(("Read-back verification", verification))

    if run.dry_run:
        mode = "Dry run, no network"
    elif run.simulated:
        mode = "Simulated server"
    else:
        mode = "Live run"
    duration = ""
    if run.finished is not None:
        duration = _duration_text(_as_utc(run.finished) - _as_utc(run.started))
    items += [
        ("Server URL", run.server_url),
        ("CCS user", run.ccs_user),
        ("Operator", run.operator),
        ("Started (UTC)", _iso_utc(run.started, milliseconds=False)),
        ("Finished (UTC)", _iso_utc(run.finished, milliseconds=False) or "not recorded"),
        ("Duration", duration or "not recorded"),
        ("Rate (requests/s)", run.rate if run.rate is not None else ""),
        ("Concurrency", _concurrency_text(run)),
        ("Mode", mode),
        ("Stopped early", run.stopped_reason or "No"),
        ("Tool version", run.tool_version),
        ("Run journal", run.journal_path or ("none (dry run)" if run.dry_run else "none")),
        ("Text cells kept as text (quote prefix)", tally.text_protected),
        ("Text cells not kept exactly", tally.text_not_exact),
        ("About safe text", SAFETY_NOTE),
    ]
    if layout.renamed:
        renames = "; ".join(f'"{ours}" is named "{used}"' for ours, used in layout.renamed)
        items.append(
            (
                "Columns renamed",
                f"The input has columns with the names of result columns; the input's columns "
                f"are kept as they are, and of the result columns {renames}.",
            )
        )
    for number, notice in enumerate(sheet.notices, start=1):
        items.append((f"Input notice {number}", notice))
    for number, note in enumerate(run.notes, start=1):
        items.append((f"Note {number}", note))
    return items


def _write_summary_sheet(
    workbook: Workbook, sheet: Sheet, run: RunInfo, layout: _Layout, tally: _Tally
) -> None:
    ws = workbook.create_sheet(SUMMARY_SHEET)
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 90
    ws.append([_styled(ws, TITLE, font=_TITLE_FONT)])
    where: dict[str, int] = {}
    for number, (key, value) in enumerate(_summary_items(sheet, run, layout, tally), start=2):
        where[key] = number
        cell = _styled(ws, value, alignment=_TOP) if isinstance(value, str) else safe_text(value)
        ws.append([_styled(ws, key, font=_BOLD, alignment=_TOP), cell])
    _add_charts(ws, where)


def _add_charts(ws: object, where: dict[str, int]) -> None:
    """Bar charts of the outcomes and the HTTP statuses, beside the figures they are drawn from.

    They use openpyxl's own charts, which refer to the Summary's cells: what the chart shows is
    what the table says.
    """
    first, last = where[OUTCOME_ORDER[0].value], where[OUTCOME_ORDER[-1].value]
    outcomes = BarChart()
    outcomes.type = "bar"
    outcomes.title = "Rows by outcome"
    outcomes.legend = None
    outcomes.add_data(Reference(ws, min_col=2, min_row=first, max_row=last))
    outcomes.set_categories(Reference(ws, min_col=1, min_row=first, max_row=last))
    outcomes.height, outcomes.width = 7.5, 14
    ws.add_chart(outcomes, "D2")
    status_rows = [number for key, number in where.items() if key.startswith("HTTP ")]
    if status_rows:
        statuses = BarChart()
        statuses.type = "bar"
        statuses.title = "Answers by HTTP status"
        statuses.legend = None
        top, bottom = min(status_rows), max(status_rows)
        statuses.add_data(Reference(ws, min_col=2, min_row=top, max_row=bottom))
        statuses.set_categories(Reference(ws, min_col=1, min_row=top, max_row=bottom))
        statuses.height, statuses.width = 7.5, 14
        ws.add_chart(statuses, "D18")


def _write_run_sheet(workbook: Workbook, run: RunInfo) -> None:
    """The run's identity and every setting it used (never a secret), as in the manifest."""
    ws = workbook.create_sheet(RUN_SHEET)
    ws.column_dimensions["A"].width = 28
    ws.column_dimensions["B"].width = 80
    ws.append([_styled(ws, "Run", font=_TITLE_FONT)])
    facts: list[tuple[str, object]] = [
        ("Run ID", run.run_id or "none (no journal)"),
        ("Follows", run.follows or "none"),
        ("Tool version", run.tool_version),
        ("Python version", run.python_version),
        ("Operator", run.operator),
        ("CCS user", run.ccs_user),
        ("Server URL", run.server_url),
        ("Started (UTC)", _iso_utc(run.started, milliseconds=False)),
        ("Finished (UTC)", _iso_utc(run.finished, milliseconds=False) or "not recorded"),
        ("Input SHA-256", run.input_sha256),
        ("Run journal", run.journal_path or "none"),
    ]
    for key in sorted(run.settings):
        facts.append((f"Setting: {key}", _setting_text(key, run.settings[key])))
    for key, value in facts:
        ws.append(
            [
                _styled(ws, key, font=_BOLD),
                safe_text(value) if not isinstance(value, str) else _styled(ws, value),
            ]
        )


def _setting_text(key: str, value: object) -> object:
    """A setting as the Run sheet shows it: never an empty cell, never a secret."""
    if key == "password":
        # The settings hold only a mask, or nothing when the password is asked for later.
        return (
            "given in the settings (CCS_PASSWORD); never recorded"
            if value
            else "not in the settings (from the keyring or a prompt, if one was needed); never recorded"
        )
    if value is None:
        return "(not set)"
    if isinstance(value, (int, float, str)):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _write_legend_sheet(workbook: Workbook, layout: _Layout) -> None:
    ws = workbook.create_sheet(LEGEND_SHEET)
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 100
    ws.append([_styled(ws, "Column", font=_BOLD), _styled(ws, "Meaning", font=_BOLD)])
    ws.append(["(the input's columns)", "Every column of the input, in its order, as read."])
    for name, used in zip(layout.usual, layout.ours):
        ws.append([_styled(ws, used), _styled(ws, COLUMN_MEANINGS[name], alignment=_TOP)])
    ws.append([])
    ws.append([_styled(ws, "Outcome", font=_BOLD), _styled(ws, "Meaning", font=_BOLD)])
    for outcome in OUTCOME_ORDER:
        ws.append(
            [
                _styled(ws, outcome.value, fill=_FILLS[outcome]),
                _styled(ws, OUTCOME_MEANINGS[outcome], alignment=_TOP),
            ]
        )
    ws.append([])
    ws.append([_styled(ws, "Safe text", font=_BOLD), _styled(ws, SAFETY_NOTE, alignment=_TOP)])


# --------------------------------------------------------------------------------------------
# Rollback

ROLLBACK_HEADERS = (
    "Ticket Number",
    "State",
    "Priority",
    "Assigned To",
    "Description",
    "Rolls back row",
    "Note",
)


def default_rollback_path(input_path: Path, started: datetime, out_dir: Path | None = None) -> Path:
    """`<input stem>.rollback-<UTC yyyymmdd-HHMMSS>.xlsx` beside the input (or in out_dir)."""
    stamp = _as_utc(started).strftime("%Y%m%d-%H%M%S")
    return (out_dir or input_path.parent) / f"{input_path.stem}.rollback-{stamp}.xlsx"


def rollback_rows(results: Sequence[RowResult]) -> list[list[object]]:
    """The rollback workbook's rows: for each applied update with captured before values, the
    input row that undoes it (rollback.rollback_rows says which values, exactly)."""
    return [
        [
            row.ticket_number,
            *(row.cell(field_name) for field_name, _ in ROLLBACK_FIELDS),
            row.rolls_back_row,
            "; ".join(row.notes) or None,
        ]
        for row in restoring_rows(results)
    ]


def write_rollback(path: Path, results: Sequence[RowResult], run: RunInfo) -> int:
    """Write a batch-update input that restores the previous values; returns its row count.

    Written like the results workbook: to a temporary file beside it, then moved into place,
    never over an existing file. Every value passes through safe_text.
    """
    rows = rollback_rows(results)
    _check_target(path, [Path(run.input_path)] if run.input_path else [], "--capture-before")
    temp: Path | None = None
    try:
        temp = _create_temp_beside(path)
        workbook = Workbook(write_only=True)
        workbook.properties.creator = f"batch-update {run.tool_version}"
        workbook.properties.title = "batch-update rollback"
        ws = workbook.create_sheet("Tickets")
        widths = (16, 10, 10, 22, 50, 14, 60)
        for index, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(index)].width = width
        ws.freeze_panes = "A2"
        ws.append([_styled(ws, header, font=_BOLD) for header in ROLLBACK_HEADERS])
        for row in rows:
            values = [safe_text(value) for value in row]
            ws.append([_xlsx_value(ws, v) for v in values])
        workbook.save(str(temp))
        if os.path.lexists(path):
            raise _appeared_error(path, "--capture-before")
        _move_into_place(temp, path, "--capture-before")
    except OSError as exc:
        raise OutputError(
            f"Could not write the rollback workbook {path}: {exc.strerror or exc}.",
            tip=f"Check the free space and the permissions of {path.parent}.",
        ) from exc
    finally:
        _remove_quietly(temp)
    return len(rows)
