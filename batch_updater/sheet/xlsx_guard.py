"""What the workbook reader does not say about an .xlsx: a streaming pass over its sheet XML.

Formulas without a saved value, error cells, hidden rows and stray far-away cells are found here,
before calamine sees the file.
"""

from __future__ import annotations

import bisect
import html
import posixpath
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..tickets import CellError, FormulaWithoutValue
from .common import column_letter

# --- what the workbook reader does not say (.xlsx) ----------------------------------------
#
# calamine reads a formula without a saved value as an empty cell, says nothing of hidden rows,
# and trusts the counts and cell positions written in the file: one stray value in XFD1048576,
# or a damaged count, makes it ask for more memory than any machine has, which ends the
# process. So before calamine sees an .xlsx, its sheet XML is read here in one streaming pass
# of C-speed searches (no Python work per cell on the common path).

_XML_CHUNK = 4 * 1024 * 1024
_NS = rb"(?:[A-Za-z_][\w.-]*:)?"
_ROW_OPEN_RE = re.compile(rb"<(" + _NS + rb")row[\s/>]")
_HIDDEN_ROW_RE = re.compile(rb"<" + _NS + rb"row\s[^>]*?\bhidden=\"(?:1|true)\"[^>]*>")
_TAG_NAME_ENDS = frozenset((b" ", b"/", b">", b"\t", b"\n", b"\r"))
_FORMULA_TEXT_RE = re.compile(rb"<" + _NS + rb"f(\s[^>]*?)?(?:/>|>([^<]*)<)")
_REF_ATTR_RE = re.compile(rb'\sr="([A-Za-z]{0,3})(\d+)"')
_TYPE_ATTR_RE = re.compile(rb'\st="([^"]*)"')
_SI_ATTR_RE = re.compile(rb'\ssi="(\d+)"')
_VALUE_RE = re.compile(rb"<" + _NS + rb"v(?:\s[^>]*)?(?:/>|>([^<]*)<)")
_INLINE_RE = re.compile(rb"<" + _NS + rb"is[\s>]")
_ERROR_TYPE = b't="e"'
_XML_TAG_RE = re.compile(rb"<" + _NS + rb"(sheet|Relationship)\s([^>]*)>")
_XML_ATTR_RE = re.compile(rb"([\w:.-]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_SST_COUNT_RE = re.compile(rb"\suniqueCount=\"(\d+)\"")
# Fewer entries than this in the list of shared texts cost little memory whatever they claim.
_PLAUSIBLE_SHARED_STRINGS = 1_000_000
_MIN_SHARED_STRING_BYTES = 5  # "<si/>"
_MAX_LISTED_HIDDEN = 10


@dataclass
class _SheetFacts:
    """What the sheet XML says that calamine does not."""

    # Formulas without a saved value, and error values, by 0-based (row, column).
    formulas: dict[tuple[int, int], FormulaWithoutValue | CellError]
    hidden_rows: list[int]  # 1-based, in sheet order
    last_row: int  # 1-based row of the last cell with a value (0: none)
    last_column: int  # 1-based column of the right-most cell with a value (0: none)
    far_cell: str  # the reference of that right-most cell, e.g. "XFD3"


def _column_number(letters: bytes) -> int:
    number = 0
    for byte in letters.upper():
        number = number * 26 + byte - 64
    return number


def _columns_beyond(column: int) -> bytes:
    """A regex alternation matching the column letters of every column right of `column`."""
    letters = column_letter(column - 1).encode("ascii") if column > 0 else b""
    size = len(letters)
    alternatives = [b"[A-Z]{%d,3}" % (size + 1)] if size < 3 else []
    for index, letter in enumerate(letters):
        if letter != ord("Z"):
            rest = size - index - 1
            alternatives.append(
                letters[:index] + b"[%c-Z]" % (letter + 1) + (b"[A-Z]{%d}" % rest if rest else b"")
            )
    return b"|".join(alternatives) or b"(?!)"


class _SheetXmlScanner:
    """One streaming pass over a sheet's XML; feed() returns its _SheetFacts."""

    def __init__(self) -> None:
        self.facts = _SheetFacts({}, [], 0, 0, "")
        self.prefix: bytes | None = None
        self.row_token = b"<row"
        self.row_close = b"</row>"
        self.cell_tokens: tuple[bytes, ...] = ()
        self.cell_close = b"</c>"
        self.value_ends: tuple[bytes, ...] = ()
        self.rows_before = 0  # row elements in the blocks already scanned (if positional)
        self.positional: bool | None = None  # rows without their number (r="...")
        self.formula_token = b"<f"
        # Where each row of the current block starts (for rows without a number), made once.
        self._row_starts: list[int] = []
        self._row_starts_of: bytes | None = None
        self.shared: dict[bytes, bytes] = {}  # shared formulas' text by their si
        self._far = re.compile(b"(?!)")

    def feed(self, stream: IO[bytes]) -> _SheetFacts:
        carry = b""
        while True:
            chunk = stream.read(_XML_CHUNK)
            if not chunk:
                if carry and self.prefix is not None:
                    self._block(carry)
                return self.facts
            data = carry + chunk if carry else chunk
            if self.prefix is None:
                found = _ROW_OPEN_RE.search(data)
                if found is None:
                    carry = data[-64:]  # the part before the first row holds nothing wanted
                    continue
                self._set_prefix(found.group(1))
            # Cut after the last complete row, so that no cell is split between two blocks.
            cut = data.rfind(self.row_close)
            if cut < 0:
                carry = data
                continue
            cut += len(self.row_close)
            self._block(data[:cut])
            carry = data[cut:]

    def _set_prefix(self, prefix: bytes) -> None:
        self.prefix = prefix
        self.row_token = b"<" + prefix + b"row"
        self.row_close = b"</" + prefix + b"row>"
        self.cell_tokens = tuple(
            b"<" + prefix + b"c" + end for end in (b" ", b">", b"\t", b"\n", b"\r")
        )
        self.cell_close = b"</" + prefix + b"c>"
        self.value_ends = (b"</" + prefix + b"v>", b"</" + prefix + b"is>")
        self.formula_token = b"<" + prefix + b"f"
        self._set_far(0)

    def _set_far(self, column: int) -> None:
        # One search with a literal start ('r="'), which the regex engine finds at C speed:
        # a cell right of the right-most one so far, or a row number of seven digits or more.
        self._far = re.compile(
            rb'r="(?:(' + _columns_beyond(column) + rb')(\d+)|[A-Z]{1,3}(\d{7,}))"'
        )

    # -- one block of whole rows ----------------------------------------------------------------

    def _block(self, block: bytes) -> None:
        facts = self.facts
        if self.positional is None:
            first = _ROW_OPEN_RE.search(block)
            if first is not None:
                tag_end = block.find(b">", first.start())
                self.positional = _REF_ATTR_RE.search(block[first.start() : tag_end + 1]) is None
        found_formula = block.find(self.formula_token)
        if found_formula >= 0:
            self._formulas(block, found_formula)
        if _ERROR_TYPE in block:
            self._errors(block)
        if b'hidden="' in block:
            for hidden in _HIDDEN_ROW_RE.finditer(block):
                facts.hidden_rows.append(self._row_number(block, hidden.start(), hidden.group(0)))
        position = 0
        while True:
            found = self._far.search(block, position)
            if found is None:
                break
            position = found.end()
            start = block.rfind(b"<", 0, found.start())
            if not block.startswith(self.cell_tokens, start):
                continue
            tag, content = self._cell(block, start)
            if content is None or not self._has_value(tag, content):
                continue
            if found.group(3) is not None:
                facts.last_row = max(facts.last_row, int(found.group(3)))
                continue
            column = _column_number(found.group(1))
            if column > facts.last_column:
                facts.last_column = column
                facts.far_cell = (found.group(1) + found.group(2)).decode("ascii")
                self._set_far(column)
        end = max(block.rfind(token) for token in self.value_ends)
        if end >= 0:
            start = self._cell_start(block, end)
            if start >= 0:
                tag, _ = self._cell(block, start)
                facts.last_row = max(facts.last_row, self._position(block, start, tag)[0])
        if self.positional:
            self.rows_before += block.count(self.row_token)

    def _formulas(self, block: bytes, found: int) -> None:
        done = -1
        token = self.formula_token
        while found >= 0:
            at, found = found, block.find(token, found + 1)
            if block[at + len(token) : at + len(token) + 1] not in _TAG_NAME_ENDS:
                continue
            start = self._cell_start(block, at)
            if start < 0 or start == done:
                continue
            done = start
            tag, content = self._cell(block, start)
            if not content:
                continue
            formula = _FORMULA_TEXT_RE.search(content)
            if formula is None:
                continue
            if self._has_value(tag, content):
                if b'si="' in (formula.group(1) or b""):
                    self._formula_text(formula)  # the first cell of a shared formula: keep it
                continue
            text = self._formula_text(formula)
            row, column = self._position(block, start, tag)
            if row < 1 or column < 1:
                continue
            self.facts.formulas[(row - 1, column - 1)] = FormulaWithoutValue(
                text, f"{column_letter(column - 1)}{row}"
            )

    def _formula_text(self, formula: re.Match[bytes]) -> str:
        attributes, text = formula.group(1) or b"", formula.group(2) or b""
        shared = _SI_ATTR_RE.search(attributes)
        if shared is not None:
            # A shared formula is written once, in its first cell; the others point to it.
            if text:
                self.shared[shared.group(1)] = text
            else:
                text = self.shared.get(shared.group(1), b"")
        return html.unescape(text.decode("utf-8", "replace")).strip()

    def _errors(self, block: bytes) -> None:
        """Cells holding an error value (t="e"): calamine reads them as empty."""
        at = block.find(_ERROR_TYPE)
        while at >= 0:
            start = block.rfind(b"<", 0, at)
            at = block.find(_ERROR_TYPE, at + 1)
            if not block.startswith(self.cell_tokens, start):
                continue
            tag, content = self._cell(block, start)
            if not content:
                continue
            value = _VALUE_RE.search(content)
            if value is None or not value.group(1):
                continue
            formula = _FORMULA_TEXT_RE.search(content)
            row, column = self._position(block, start, tag)
            if row < 1 or column < 1:
                continue
            self.facts.formulas[(row - 1, column - 1)] = CellError(
                html.unescape(value.group(1).decode("utf-8", "replace")).strip(),
                self._formula_text(formula) if formula is not None else "",
                f"{column_letter(column - 1)}{row}",
            )

    # -- cells --------------------------------------------------------------------------------

    def _cell_start(self, block: bytes, before: int) -> int:
        """Where the last cell tag before `before` starts, or -1."""
        # Searched in a window that grows: the tag is usually a few bytes back, and searching
        # the whole block each time would make a sheet full of formulas quadratic.
        first, *others = self.cell_tokens  # "<c " first: nearly every cell tag is spelled so
        low = before
        while low > 0:
            low = max(0, low - max(256, 4 * (before - low)))
            found = block.rfind(first, low, before)
            if found >= 0:
                # A cell tag spelled otherwise ("<c>", a line break) may still come after it.
                return max(found, *(block.rfind(token, found, before) for token in others))
            found = max(block.rfind(token, low, before) for token in others)
            if found >= 0:
                return found
        return -1

    def _cell(self, block: bytes, start: int) -> tuple[bytes, bytes | None]:
        """The cell's opening tag and its content (b"" if it is self-closing, None if cut)."""
        tag_end = block.find(b">", start)
        if tag_end < 0:
            return block[start:], None
        tag = block[start : tag_end + 1]
        if tag.endswith(b"/>"):
            return tag, b""
        close = block.find(self.cell_close, tag_end)
        if close < 0:
            return tag, None
        return tag, block[tag_end + 1 : close]

    @staticmethod
    def _has_value(tag: bytes, content: bytes) -> bool:
        if _INLINE_RE.search(content) is not None:
            return True
        value = _VALUE_RE.search(content)
        if value is None:
            return False
        if value.group(1):
            return True
        # A formula whose result is the empty text is saved as t="str" with an empty value.
        kind = _TYPE_ATTR_RE.search(tag)
        return kind is not None and kind.group(1) == b"str"

    def _row_number(self, block: bytes, row_start: int, row_tag: bytes) -> int:
        ref = _REF_ATTR_RE.search(row_tag)
        if ref is not None and not ref.group(1):
            return int(ref.group(2))
        # Rows may leave out their number; then they count from the top.
        if self._row_starts_of is not block:
            self._row_starts = [found.start() for found in _ROW_OPEN_RE.finditer(block)]
            self._row_starts_of = block
        return self.rows_before + bisect.bisect_right(self._row_starts, row_start)

    def _position(self, block: bytes, start: int, tag: bytes) -> tuple[int, int]:
        """The 1-based (row, column) of the cell whose tag starts at `start`."""
        ref = _REF_ATTR_RE.search(tag)
        if ref is not None and ref.group(1):
            return int(ref.group(2)), _column_number(ref.group(1))
        # Cells may leave out their reference; then they count from the row's start.
        row_start = block.rfind(self.row_token, 0, start)
        if row_start < 0:
            return 0, 0
        row_tag = block[row_start : block.find(b">", row_start) + 1]
        column = 1 + sum(block.count(token, row_start, start) for token in self.cell_tokens)
        return self._row_number(block, row_start, row_tag), column


def _xml_attributes(text: bytes) -> dict[str, str]:
    attributes = {}
    for name, double, single in _XML_ATTR_RE.findall(text):
        value = double if double or not single else single
        attributes[name.decode("utf-8", "replace")] = html.unescape(
            value.decode("utf-8", "replace")
        )
    return attributes


class _XlsxParts:
    """Where things are inside an .xlsx: each sheet's XML and the shared texts, by name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archive = zipfile.ZipFile(path)
        self.sheets: dict[str, str] = {}
        self.shared_strings = ""
        try:
            self._locate()
        except Exception:
            self.archive.close()
            raise

    def close(self) -> None:
        self.archive.close()

    def _read_small(self, member: str, limit: int = 16 * 1024 * 1024) -> bytes:
        with self.archive.open(member) as stream:
            return stream.read(limit)

    def _locate(self) -> None:
        names = set(self.archive.namelist())
        if "xl/workbook.xml" not in names or "xl/_rels/workbook.xml.rels" not in names:
            return
        targets: dict[str, str] = {}
        for kind, text in _XML_TAG_RE.findall(self._read_small("xl/_rels/workbook.xml.rels")):
            if kind != b"Relationship":
                continue
            attributes = _xml_attributes(text)
            target = attributes.get("Target", "")
            if not target or attributes.get("TargetMode") == "External":
                continue
            if target.startswith("/"):
                member = target.lstrip("/")
            else:
                member = posixpath.normpath(posixpath.join("xl", target))
            if member not in names:
                continue
            targets[attributes.get("Id", "")] = member
            if attributes.get("Type", "").endswith("/sharedStrings"):
                self.shared_strings = member
        for kind, text in _XML_TAG_RE.findall(self._read_small("xl/workbook.xml")):
            if kind != b"sheet":
                continue
            attributes = _xml_attributes(text)
            relation = next(
                (v for k, v in attributes.items() if k.endswith(":id") or k == "id"), ""
            )
            if "name" in attributes and relation in targets:
                self.sheets[attributes["name"]] = targets[relation]

    def shared_strings_claim(self) -> tuple[int, int] | None:
        """(entries claimed, bytes held) of the shared texts if the claim cannot be true."""
        if not self.shared_strings:
            return None
        with self.archive.open(self.shared_strings) as stream:
            head = stream.read(4096)
            claim = _SST_COUNT_RE.search(head)
            if claim is None or int(claim.group(1)) <= _PLAUSIBLE_SHARED_STRINGS:
                return None
            size = len(head)
            for chunk in iter(lambda: stream.read(_XML_CHUNK), b""):
                size += len(chunk)
        count = int(claim.group(1))
        return (count, size) if count > size // _MIN_SHARED_STRING_BYTES else None

    def sheet_facts(self, sheet_name: str) -> _SheetFacts | None:
        member = self.sheets.get(sheet_name)
        if member is None:
            return None
        with self.archive.open(member) as stream:
            return _SheetXmlScanner().feed(stream)


def _place_formulas(
    grid: list[list[Any]],
    formulas: dict[tuple[int, int], FormulaWithoutValue | CellError],
    limit: int,
) -> int:
    """Put each marker (formula without a value, error) where calamine left an empty cell.

    Returns the number of rows the markers reach.

    A row that holds only such formulas lies outside calamine's grid; it is added, so that the
    row is reported rather than silently left out.
    """
    bottom = 0
    for (row, column), marker in formulas.items():
        if row >= limit:
            bottom = max(bottom, row + 1)
            continue
        while len(grid) <= row:
            grid.append([])
        cells = grid[row]
        if len(cells) <= column:
            cells.extend([""] * (column + 1 - len(cells)))
        if cells[column] == "" or cells[column] is None:
            cells[column] = marker
            bottom = max(bottom, row + 1)
    return bottom


def _hidden_rows_notice(rows: Sequence[int]) -> str | None:
    if not rows:
        return None
    ranges: list[str] = []
    start = previous = rows[0]
    for row in [*rows[1:], None]:
        if row is not None and row == previous + 1:
            previous = row
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if row is not None:
            start = previous = row
    listed = ", ".join(ranges[:_MAX_LISTED_HIDDEN])
    if len(ranges) > _MAX_LISTED_HIDDEN:
        rest = sum(
            int(r.split("-")[1]) - int(r.split("-")[0]) + 1 if "-" in r else 1
            for r in ranges[_MAX_LISTED_HIDDEN:]
        )
        listed += f" and {rest:,} more"
    if len(rows) == 1:
        return (
            f"Row {listed} is hidden in Excel (filtered or hidden by hand); it is checked and sent "
            "like every other row. Delete it from the sheet if it should not be sent."
        )
    return (
        f"Rows {listed} are hidden in Excel (filtered or hidden by hand); they are checked and "
        "sent like every other row. Delete them from the sheet if they should not be sent."
    )
