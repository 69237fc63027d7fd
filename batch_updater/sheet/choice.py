"""Which sheet of a workbook is read: the one asked for by name, or a guess, and why."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

from python_calamine import SheetMetadata, SheetTypeEnum, SheetVisibleEnum

from ..errors import InputError
from ..tickets import count_text


def _sheet_listing(metas: Sequence[SheetMetadata]) -> str:
    """The workbook's sheets by name, each hidden one marked, for messages."""
    return ", ".join(
        meta.name + ("" if meta.visible == SheetVisibleEnum.Visible else " (hidden)")
        for meta in metas
    )


def _asked_sheet(
    file_name: str, metas: Sequence[SheetMetadata], sheet_name: str, listing: str
) -> tuple[SheetMetadata, str]:
    """The sheet asked for by name, and the reason shown for it; a missing one is an error."""
    meta = _find_sheet(metas, sheet_name)
    if meta is None:
        close = difflib.get_close_matches(sheet_name, [m.name for m in metas], n=1)
        raise InputError(
            f'{file_name}: no sheet named "{sheet_name}"; the workbook has '
            f"{count_text(len(metas), 'sheet')}: {listing}.",
            tip=f'did you mean "{close[0]}"?' if close else None,
        )
    reason = "as asked"
    if meta.visible != SheetVisibleEnum.Visible:
        reason += "; it is hidden in the workbook"
    return meta, reason


def _guess_sheet(
    metas: Sequence[SheetMetadata], has_header: Callable[[str], bool]
) -> tuple[SheetMetadata, str, list[str]]:
    """The sheet to read when none was asked for, the reason shown for it, and the sheets
    probed for a header that had none.

    `has_header` tells whether the sheet of that name has a header row near its top.
    """
    visible = _candidate_sheets(metas)
    named = [m for m in visible if "ticket" in _squash(m.name)]
    if named:
        return named[0], "named like Tickets", []
    meta, reason = visible[0], "the first visible sheet"
    others_checked: list[str] = []
    # A Readme or cover sheet often comes first; prefer a sheet that has the data.
    for candidate in visible:
        if has_header(candidate.name):
            if candidate is not visible[0]:
                meta, reason = candidate, "the first sheet with a ticket-number column"
            break
        others_checked.append(candidate.name)
    return meta, reason, others_checked


def _candidate_sheets(metas: Sequence[SheetMetadata]) -> list[SheetMetadata]:
    """The sheets a guess chooses among: the visible worksheets, else any worksheet, else all."""
    return (
        [
            m
            for m in metas
            if m.visible == SheetVisibleEnum.Visible and m.typ == SheetTypeEnum.WorkSheet
        ]
        or [m for m in metas if m.typ == SheetTypeEnum.WorkSheet]
        or list(metas)
    )


def _find_sheet(metas: Sequence[SheetMetadata], wanted: str) -> SheetMetadata | None:
    """The sheet named `wanted`: exactly if one is, else ignoring case and outer spaces."""
    for meta in metas:
        if meta.name == wanted:
            return meta
    folded = wanted.strip().casefold()
    for meta in metas:
        if meta.name.strip().casefold() == folded:
            return meta
    return None


def _squash(text: str) -> str:
    """The text casefolded, with only its letters and digits, for names like "Tickets"."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())
