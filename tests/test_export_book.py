"""Tests of report/export_book.py: the export workbook, read back with openpyxl and with the
project's own reader and validation, as the sweep of an exported sheet reads it."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_updater.errors import OutputError
from batch_updater.exported import (
    AS_EXPORTED_COLUMNS,
    EDITABLE_COLUMNS,
    EXPORT_SHEET,
    TICKETS_SHEET,
    ExportedTicket,
    ExportIdentity,
    rows_sha256,
)
from batch_updater.report import EXPORT_NOTE, PRIORITY_CHOICES_HEADER, write_export
from batch_updater.sheet import read_sheet
from batch_updater.tickets import Field, TicketState
from batch_updater.validate import ValidationRules, plan

PRIORITIES = ("Low", "Medium", "High")
CONTEXT = (("Asset", "Asset"), ("RiskScore", "Risk Score"), ("Standard", "Standard"))
EXPORTED = datetime(2026, 3, 1, 6, 30, 15, tzinfo=timezone.utc)
STATES = '"Open,Remediation Performed,Verified,Failed,Not Applicable"'
KEEP = ". Leave the cell empty to keep the ticket's value as it is."

TICKETS = [
    ExportedTicket(
        "INCA0000001",
        "Open",
        "Low",
        "corp\\jsmith",
        "Patch KB5001 missing",
        (("asset", "srv01"), ("RiskScore", 7), ("Tags", {"b": 1})),
    ),
    ExportedTicket(
        "INCA0000002",
        "Remediation Performed",
        "High",
        "",
        "",
        (("ASSET", "srv02"), ("Standard", "CIS 1.2")),
    ),
    ExportedTicket("0000123", "Verified", "Medium", "corp\\ops", "Done"),
]


def identity(tickets: list[ExportedTicket], **changes: object) -> ExportIdentity:
    facts: dict[str, object] = {
        "server_url": "https://ccs.corp.example",
        "ccs_user": "corp\\ccsadmin",
        "query": (("TicketState", "1"),),
        "exported_at": EXPORTED,
        "count": len(tickets),
        "rows_sha256": rows_sha256(tickets),
        "tool_version": "1.4.0",
        "operator": "jsmith",
        "page_size": 500,
        "requests": 1,
    }
    facts.update(changes)
    return ExportIdentity(**facts)  # type: ignore[arg-type]


def export(
    tmp_path: Path,
    tickets: list[ExportedTicket] = TICKETS,
    *,
    context: tuple[tuple[str, str], ...] = CONTEXT,
    priorities: tuple[str, ...] = PRIORITIES,
    name: str = "export.xlsx",
    **changes: object,
) -> Path:
    path = tmp_path / name
    write_export(
        path,
        tickets,
        identity(tickets, **changes),
        context_headers=context,
        priorities=priorities,
    )
    return path


def rows(path: Path, title: str = TICKETS_SHEET) -> list[list[object]]:
    ws = openpyxl.load_workbook(path)[title]
    return [list(row) for row in ws.iter_rows(values_only=True)]


HEADERS = [
    "Ticket Number",
    "State",
    "Priority",
    "Assigned To",
    "Description",
    "Asset",
    "Risk Score",
    "Standard",
    "Exported State",
    "Exported Priority",
    "Exported Assigned To",
    "Exported Description",
]


def test_headers_in_order_and_the_tickets_sheet_first_and_active(tmp_path: Path) -> None:
    workbook = openpyxl.load_workbook(export(tmp_path))
    assert workbook.sheetnames == [TICKETS_SHEET, EXPORT_SHEET]
    assert workbook.active.title == TICKETS_SHEET
    assert rows(tmp_path / "export.xlsx")[0] == HEADERS
    assert HEADERS[:5] == [header for _, header in EDITABLE_COLUMNS]
    assert HEADERS[-4:] == [header for _, header in AS_EXPORTED_COLUMNS]
    header_cells = next(workbook[TICKETS_SHEET].iter_rows(max_row=1))
    assert all(cell.font.b for cell in header_cells)


def test_values_one_row_per_ticket_in_order(tmp_path: Path) -> None:
    assert rows(export(tmp_path))[1:] == [
        # Context keys are found whatever their case; a key a ticket lacks is an empty cell; a
        # key no header names (Tags) is not written.
        [
            "INCA0000001",
            "Open",
            "Low",
            "corp\\jsmith",
            "Patch KB5001 missing",
            "srv01",
            7,
            None,
            "Open",
            "Low",
            "corp\\jsmith",
            "Patch KB5001 missing",
        ],
        [
            "INCA0000002",
            "Remediation Performed",
            "High",
            None,
            None,
            "srv02",
            None,
            "CIS 1.2",
            "Remediation Performed",
            "High",
            None,
            None,
        ],
        [
            "0000123",
            "Verified",
            "Medium",
            "corp\\ops",
            "Done",
            None,
            None,
            None,
            "Verified",
            "Medium",
            "corp\\ops",
            "Done",
        ],
    ]


def test_ticket_numbers_are_text_cells(tmp_path: Path) -> None:
    ws = openpyxl.load_workbook(export(tmp_path))[TICKETS_SHEET]
    assert [cell.value for cell in ws["A"][1:]] == ["INCA0000001", "INCA0000002", "0000123"]
    assert {cell.data_type for cell in ws["A"]} == {"s"}
    # What is typed into an empty Ticket Number, Assigned To or Description cell stays text.
    formats = {key: dim.number_format for key, dim in ws.column_dimensions.items()}
    assert (formats["A"], formats["D"], formats["E"]) == ("@", "@", "@")
    assert (formats["B"], formats["C"]) == ("General", "General")


def test_a_nested_context_value_is_json_text(tmp_path: Path) -> None:
    tickets = [ExportedTicket("INCA1", "Open", "Low", "", "", (("Tags", {"b": [1, 2]}),))]
    path = export(tmp_path, tickets, context=(("tags", "Tags"),))
    assert rows(path)[1][5] == '{"b": [1, 2]}'


def test_the_as_exported_columns_are_hidden_and_hold_the_exported_values(tmp_path: Path) -> None:
    path = export(tmp_path)
    ws = openpyxl.load_workbook(path)[TICKETS_SHEET]
    hidden = {key for key, dim in ws.column_dimensions.items() if dim.hidden}
    assert hidden == {"I", "J", "K", "L"}
    for row in rows(path)[1:]:
        assert row[8:] == [row[1], row[2], row[3], row[4]]


def test_header_frozen_autofilter_and_widths(tmp_path: Path) -> None:
    ws = openpyxl.load_workbook(export(tmp_path))[TICKETS_SHEET]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:L4"
    widths = {key: dim.width for key, dim in ws.column_dimensions.items()}
    assert set(widths) == set("ABCDEFGHIJKL")
    assert widths["E"] == widths["L"] == 50  # Description is wider
    assert widths["B"] == len("Remediation Performed") + 3  # the longest choice, and the arrow
    assert all(8 <= width <= 40 for key, width in widths.items() if key not in "EL")


def test_widths_are_capped(tmp_path: Path) -> None:
    tickets = [ExportedTicket("INCA1", "Open", "Low", "x" * 300, "y" * 300)]
    ws = openpyxl.load_workbook(export(tmp_path, tickets, context=()))[TICKETS_SHEET]
    assert ws.column_dimensions["D"].width == 40
    assert ws.column_dimensions["E"].width == 80


def test_state_and_priority_have_drop_down_lists_over_the_data_rows(tmp_path: Path) -> None:
    ws = openpyxl.load_workbook(export(tmp_path))[TICKETS_SHEET]
    found = {
        str(dv.sqref): (dv.type, dv.formula1, dv.allow_blank, dv.showErrorMessage, dv.errorStyle)
        for dv in ws.data_validations.dataValidation
    }
    assert found == {
        "B2:B4": ("list", STATES, True, True, "stop"),
        "C2:C4": ("list", '"Low,Medium,High"', True, True, "stop"),
    }
    assert [state.label for state in TicketState] == STATES.strip('"').split(",")
    messages = {
        str(dv.sqref): (dv.errorTitle, dv.error) for dv in ws.data_validations.dataValidation
    }
    assert messages == {
        "B2:B4": (
            "Not a state",
            "Choose a state from the list: Open, Remediation Performed, Verified, Failed, "
            "Not Applicable" + KEEP,
        ),
        "C2:C4": ("Not a priority", "Choose a priority from the list: Low, Medium, High" + KEEP),
    }


def test_priorities_an_inline_list_cannot_hold_are_listed_on_the_export_sheet(
    tmp_path: Path,
) -> None:
    priorities = ("P1, urgent", "P2", "=P3")
    path = export(tmp_path, priorities=priorities)
    workbook = openpyxl.load_workbook(path)
    priority = [
        dv for dv in workbook[TICKETS_SHEET].data_validations.dataValidation if "C" in str(dv.sqref)
    ]
    assert [dv.formula1 for dv in priority] == ["'Export'!$D$4:$D$6"]
    ws = workbook[EXPORT_SHEET]
    assert [ws[f"D{row}"].value for row in range(3, 8)] == [
        PRIORITY_CHOICES_HEADER,
        *priorities,
        None,
    ]
    assert (ws["D6"].data_type, ws["D6"].quotePrefix) == ("s", True)


def test_no_priorities_no_priority_list(tmp_path: Path) -> None:
    ws = openpyxl.load_workbook(export(tmp_path, priorities=()))[TICKETS_SHEET]
    assert [str(dv.sqref) for dv in ws.data_validations.dataValidation] == ["B2:B4"]


def test_the_export_sheet_is_hidden_protected_and_holds_the_identity(tmp_path: Path) -> None:
    path = export(tmp_path)
    ws = openpyxl.load_workbook(path)[EXPORT_SHEET]
    assert ws.sheet_state == "hidden"  # not "veryHidden": Excel's Unhide shows it
    assert ws.protection.sheet is True
    assert ws.protection.password is None
    items = identity(TICKETS).items()
    assert rows(path, EXPORT_SHEET) == [
        [EXPORT_NOTE, None],
        [None, None],
        ["Item", "Value"],
        *[[label, text] for label, text in items],
    ]
    assert EXPORT_NOTE == (
        "Where this sheet came from; batch-update reads it to know what each ticket held at "
        "export time. Do not edit."
    )
    facts = dict(items)
    assert facts["Tickets"] == "3"
    assert facts["SHA-256 of the rows"] == rows_sha256(TICKETS)
    assert facts["Query"] == "TicketState=1"


FORMULA_LIKE = ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1:A2)", "#N/A", "\tx", "=HYPERLINK(1)"]


def test_formula_like_text_stays_text_with_its_exact_value(tmp_path: Path) -> None:
    tickets = [
        ExportedTicket(f"INCA{i}", text, text, text, text, (("Asset", text),))
        for i, text in enumerate(FORMULA_LIKE)
    ]
    path = export(tmp_path, tickets, context=(("Asset", "=Asset"),), operator="=evil")
    workbook = openpyxl.load_workbook(path)
    for ws in workbook.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type not in ("f", "e"), (ws.title, cell.coordinate)
    ws = workbook[TICKETS_SHEET]
    assert ws["F1"].value == "=Asset"
    for row, text in zip(ws.iter_rows(min_row=2), FORMULA_LIKE, strict=True):
        cells = row[1:]
        assert [cell.value for cell in cells] == [text] * len(cells)
        assert all((cell.data_type, cell.quotePrefix) == ("s", True) for cell in cells)
    assert dict(rows(path, EXPORT_SHEET)[3:])["Exported by (OS user)"] == "=evil"
    # The project's reader (calamine) reads the same text back.
    sheet = read_sheet(path, is_header_row=ValidationRules().is_header_row)
    assert [list(row.values[1:]) for row in sheet.rows] == [[text] * 9 for text in FORMULA_LIKE]


def test_text_excel_would_decode_or_drop_survives_the_project_reader(tmp_path: Path) -> None:
    texts = ["_x0041_", "a\rb", "a\r\nb", " ", "x\x01y", "  lead", "\u00a0"]
    tickets = [
        ExportedTicket(f"INCA{i}", "Open", "Low", "corp\\j", text) for i, text in enumerate(texts)
    ]
    path = export(tmp_path, tickets, context=())
    sheet = read_sheet(path, is_header_row=ValidationRules().is_header_row)
    assert [(row.values[4], row.values[8]) for row in sheet.rows] == [(t, t) for t in texts]


# Any text a workbook can hold: every character but lone surrogates and U+FFFE/U+FFFF.
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff"),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(description=TEXT, assigned=TEXT, context=TEXT)
def test_write_then_read_is_the_identity_for_any_text(
    tmp_path: Path, description: str, assigned: str, context: str
) -> None:
    for old in tmp_path.iterdir():
        old.unlink()
    tickets = [ExportedTicket("INCA1", "Open", "Low", assigned, description, (("Asset", context),))]
    path = export(tmp_path, tickets, context=(("Asset", "Asset"),))
    sheet = read_sheet(path, is_header_row=ValidationRules().is_header_row)
    values = sheet.rows[0].values
    assert (values[3], values[4], values[5]) == (assigned, description, context)
    assert (values[8], values[9]) == (assigned, description)


def test_an_empty_export_is_a_valid_workbook_with_the_header_only(tmp_path: Path) -> None:
    path = export(tmp_path, [])
    workbook = openpyxl.load_workbook(path)
    ws = workbook[TICKETS_SHEET]
    assert rows(path) == [HEADERS]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:L1"
    assert list(ws.data_validations.dataValidation) == []  # no data rows to list choices for
    assert dict(rows(path, EXPORT_SHEET)[3:])["Tickets"] == "0"
    sheet = read_sheet(path, is_header_row=ValidationRules().is_header_row)
    assert (sheet.sheet_name, sheet.headers, sheet.rows) == (TICKETS_SHEET, HEADERS, [])
    assert plan(sheet, ValidationRules()).rows == []


def test_read_back_as_an_input_sheet_and_validated(tmp_path: Path) -> None:
    path = export(tmp_path)
    rules = ValidationRules()
    sheet = read_sheet(path, is_header_row=rules.is_header_row)
    # The guess is the visible Tickets sheet, never the hidden Export sheet.
    assert sheet.sheet_name == TICKETS_SHEET
    assert sheet.header_row == 1
    assert sheet.headers == HEADERS
    assert sheet.notices == [
        'Using sheet "Tickets" (named like Tickets; the workbook has 2 sheets: Tickets, '
        "Export (hidden))."
    ]
    assert [row.row_number for row in sheet.rows] == [2, 3, 4]
    assert [row.values[0] for row in sheet.rows] == ["INCA0000001", "INCA0000002", "0000123"]

    result = plan(sheet, rules)
    assert dict(result.columns.fields) == {
        Field.TICKET_NUMBER: 0,
        Field.TICKET_STATE: 1,
        Field.PRIORITY: 2,
        Field.ASSIGNED_TO: 3,
        Field.TICKET_DESCRIPTION: 4,
    }
    # The context columns and the "Exported ..." columns are kept, never refused nor sent.
    assert result.columns.unmapped_headers == tuple(HEADERS[5:])
    assert [row.is_valid for row in result.rows] == [True, True, True]
    assert result.rows[0].update is not None
    assert result.rows[0].update.to_json() == {
        "TicketNumber": "INCA0000001",
        "TicketState": 1,
        "Priority": "Low",
        "AssignedTo": "corp\\jsmith",
        "TicketDescription": "Patch KB5001 missing",
    }


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "export.xlsx"
    path.write_bytes(b"last month's sweep")
    with pytest.raises(OutputError) as error:
        export(tmp_path)
    assert str(error.value) == f"{path} exists already; batch-update will not overwrite it."
    assert path.read_bytes() == b"last month's sweep"


def test_a_write_error_is_an_output_error_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = openpyxl.Workbook.save

    def disk_full(self: openpyxl.Workbook, filename: str) -> None:
        real_save(self, filename)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(openpyxl.Workbook, "save", disk_full)
    with pytest.raises(OutputError) as error:
        export(tmp_path)
    path = tmp_path / "export.xlsx"
    assert str(error.value) == (
        f"Could not write the export workbook {path}: No space left on device."
    )
    assert error.value.tip == (
        f"Check the free space and the permissions of {tmp_path}, or choose another place "
        "with --out."
    )
    assert os.listdir(tmp_path) == []


def test_a_missing_folder_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as error:
        export(tmp_path, name="missing/export.xlsx")
    assert str(error.value) == (
        f"Cannot write {tmp_path / 'missing' / 'export.xlsx'}: the folder "
        f"{tmp_path / 'missing'} does not exist."
    )
