"""Every value on its way into a workbook or the CSV: safe_text(), csv_text(), text cells."""

from __future__ import annotations

import math
import numbers
import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, cast

from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill

from ..tickets import RunInfo

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
        return "'" + value
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


def _xlsx_value(ws: Any, value: object) -> object:
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
    ws: Any,
    value: object,
    *,
    font: Font | None = None,
    fill: PatternFill | None = None,
    alignment: Alignment | None = None,
) -> Cell:
    """A cell with a style, for the few cells that have one (header, Outcome, Summary keys)."""
    prepared = _xlsx_value(ws, safe_text(value))
    cell = prepared if isinstance(prepared, Cell) else WriteOnlyCell(ws, value=cast(Any, prepared))
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    if alignment is not None:
        cell.alignment = alignment
    return cell
