"""Tests of validate.py: header matching, every row rule and its exact message, duplicates, blanks.

Sheets are built in memory (tickets.Sheet), so each test shows the cells it judges; one test goes
through read_sheet() to check the two halves fit. A hypothesis test proves that no cell value
makes validation raise.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_updater.errors import ConfigError, InputError
from batch_updater.report import (
    BEFORE_COLUMNS,
    COLLISION_SUFFIX,
    RESULT_COLUMNS,
    ROLLBACK_HEADERS,
    VERIFICATION_COLUMN,
)
from batch_updater.settings import load_settings
from batch_updater.sheet import read_sheet
from batch_updater.tickets import Field, Problem, Sheet, SheetRow, TicketState, TicketUpdate
from batch_updater.validate import (
    ColumnMap,
    PriorityFormat,
    ValidationRules,
    format_problem,
    is_header_row,
    looks_like_field,
    make_header_matcher,
    map_columns,
    normalize_header,
    plan,
    plan_rows,
    rules_from_settings,
    sheet_location,
    validate_row,
)

HEADERS = ["Ticket Number", "State", "Priority", "Assigned To", "Description", "Asset"]
RULES = ValidationRules()


def make_sheet(
    rows: list[tuple[object, ...]],
    headers: list[str] | None = None,
    *,
    path: str = "tickets.xlsx",
    sheet_name: str = "Changes",
    first_row: int = 2,
) -> Sheet:
    return Sheet(
        path=path,
        sheet_name=sheet_name,
        header_row=first_row - 1,
        headers=list(headers or HEADERS),
        rows=[SheetRow(first_row + i, values) for i, values in enumerate(rows)],
    )


def judge(
    values: tuple[object, ...], rules: ValidationRules = RULES, headers: list[str] | None = None
):
    """The PlannedRow of one row (at row 2), judged alone."""
    sheet = make_sheet([values], headers)
    return plan(sheet, rules).rows[0]


def problems(
    values: tuple[object, ...], rules: ValidationRules = RULES, headers: list[str] | None = None
) -> list[str]:
    return [str(p) for p in judge(values, rules, headers).problems]


def row(
    ticket: object = "INCA0000009",
    state: object = None,
    priority: object = "Low",
    assigned: object = None,
    description: object = None,
    asset: object = None,
) -> tuple[object, ...]:
    return (ticket, state, priority, assigned, description, asset)


NOTHING_TO_CHANGE = (
    "nothing to change: fill in Priority (CCS requires it) and any of State, Assigned To, "
    "Description."
)
STATE_HELP = (
    "use 1-5 or a name: 1 Open, 2 Remediation Performed, 3 Verified, 4 Failed, 5 Not Applicable."
)

# --- headers -----------------------------------------------------------------------------------


def test_normalize_header() -> None:
    assert normalize_header("  Ticket_No. ") == "ticketno"
    assert normalize_header("TICKET #") == "ticket"
    assert normalize_header(2024) == "2024"


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Ticket Number", Field.TICKET_NUMBER),
        ("ticket #", Field.TICKET_NUMBER),
        ("TicketNumber", Field.TICKET_NUMBER),
        ("Ticket No.", Field.TICKET_NUMBER),
        ("ticket_id", Field.TICKET_NUMBER),
        ("TICKET", Field.TICKET_NUMBER),
        ("State", Field.TICKET_STATE),
        ("status", Field.TICKET_STATE),
        ("Ticket State", Field.TICKET_STATE),
        ("Ticket-Status", Field.TICKET_STATE),
        ("Assigned To", Field.ASSIGNED_TO),
        ("assignee", Field.ASSIGNED_TO),
        ("Assigned", Field.ASSIGNED_TO),
        ("AssignedTo", Field.ASSIGNED_TO),
        ("Description", Field.TICKET_DESCRIPTION),
        ("Ticket Description", Field.TICKET_DESCRIPTION),
        ("TicketDescription", Field.TICKET_DESCRIPTION),
        ("Priority", Field.PRIORITY),
        ("Ticket Priority", Field.PRIORITY),
        ("Tickets", None),
        ("Asset", None),
    ],
)
def test_header_aliases(header: str, field: Field | None) -> None:
    assert RULES.field_for(header) is field


def test_is_header_row() -> None:
    assert is_header_row([None, "Asset", " Ticket # "])
    assert not is_header_row(["Tickets to close in March", None, 3])
    assert not is_header_row([])


def test_config_mapping_wins_over_aliases() -> None:
    rules = ValidationRules(
        column_mapping={"Ref": Field.TICKET_NUMBER, "Ticket": "TicketDescription"}
    )
    matcher = make_header_matcher(rules)
    assert matcher(["REF", "Other"])
    assert not matcher(["Ticket"])  # mapped to the description instead
    assert rules.field_for("ticket") is Field.TICKET_DESCRIPTION


def test_config_mapping_accepts_field_names_in_any_spelling() -> None:
    rules = ValidationRules(
        column_mapping={"A": "ticket_state", "B": "Assigned To", "C": "PRIORITY"}
    )
    assert dict(rules.column_mapping) == {
        "A": Field.TICKET_STATE,
        "B": Field.ASSIGNED_TO,
        "C": Field.PRIORITY,
    }


def test_config_mapping_with_an_unknown_field() -> None:
    with pytest.raises(ConfigError) as caught:
        ValidationRules(column_mapping={"Ref": "Nope"})
    assert str(caught.value) == (
        'columns: "Ref": "Nope" is not a ticket field; use one of TicketNumber, TicketState, '
        "TicketDescription, Priority, AssignedTo"
    )


def test_map_columns() -> None:
    columns = map_columns(["Asset", "Ticket #", "Status", "Priority", "Notes"], RULES)
    assert dict(columns.fields) == {
        Field.TICKET_NUMBER: 1,
        Field.TICKET_STATE: 2,
        Field.PRIORITY: 3,
    }
    assert columns.header(Field.TICKET_STATE) == "Status"
    assert columns.index(Field.ASSIGNED_TO) is None and columns.header(Field.ASSIGNED_TO) is None
    assert columns.unmapped_headers == ("Asset", "Notes")
    assert columns.letters == ("A", "B", "C", "D", "E")


def test_two_columns_for_one_field() -> None:
    with pytest.raises(InputError) as caught:
        map_columns(["Ticket", "State", "Priority", "Status"], RULES, letters=["B", "C", "D", "F"])
    assert str(caught.value) == (
        'columns "State" (column C) and "Status" (column F) both feed TicketState; '
        "only one column can."
    )
    assert caught.value.tip == (
        "rename or delete the one not meant for CCS, or say in the config which one to send, "
        'e.g. columns: {"State": TicketState}.'
    )


def test_duplicated_header_text_in_a_sheet() -> None:
    sheet = make_sheet([("INCA1", "Low", "High")], ["Ticket", "Priority", "Priority"])
    with pytest.raises(InputError) as caught:
        plan(sheet, RULES)
    assert str(caught.value) == (
        'tickets.xlsx, sheet "Changes": columns "Priority" (column B) and "Priority" (column C) '
        "both feed Priority; only one column can."
    )
    assert caught.value.tip == 'keep one "Priority" column: delete or rename the other.'


def test_three_columns_for_one_field() -> None:
    with pytest.raises(
        InputError,
        match=r'^columns "State" \(column A\), "Status" \(column B\) and '
        r'"Ticket State" \(column C\) all feed TicketState',
    ):
        map_columns(["State", "Status", "Ticket State"], RULES)


def test_config_mapping_settles_two_look_alike_columns() -> None:
    # The CCS export's own "Status" column next to the team's "New State": the config says which.
    rules = ValidationRules(column_mapping={"New State": Field.TICKET_STATE})
    columns = map_columns(["Ticket", "Status", "New State", "Priority"], rules)
    assert columns.index(Field.TICKET_STATE) == 2
    assert columns.unmapped_headers == ("Status",)


def test_letters_come_from_the_sheet_reader(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    ws = book.active
    ws["B2"], ws["D2"], ws["E2"] = "Ticket", "State", "Status"
    ws["B3"], ws["D3"], ws["E3"] = "INCA1", 2, 3
    book.save(tmp_path / "t.xlsx")
    sheet = read_sheet(tmp_path / "t.xlsx", is_header_row=RULES.is_header_row)
    with pytest.raises(InputError) as caught:
        plan(sheet, RULES)
    assert str(caught.value) == (
        't.xlsx, sheet "Sheet": columns "State" (column D) and "Status" (column E) both feed '
        "TicketState; only one column can."
    )


def test_sheet_without_a_ticket_column() -> None:
    with pytest.raises(InputError) as caught:
        plan(make_sheet([("a", "Low")], ["Asset", "Priority"]), RULES)
    assert str(caught.value) == (
        'tickets.xlsx, sheet "Changes": no ticket-number column; '
        'the headers are: "Asset", "Priority".'
    )


def test_sheet_without_a_priority_column() -> None:
    with pytest.raises(InputError) as caught:
        plan(make_sheet([("INCA1", 2)], ["Ticket", "State"]), RULES)
    assert str(caught.value) == (
        'tickets.xlsx, sheet "Changes": no Priority column; CCS requires a priority on every '
        "update (one of Low, Medium, High)."
    )
    assert caught.value.tip == (
        'add a "Priority" column, or map your header in the config '
        '(columns: {"Your header": Priority}).'
    )


def test_unmapped_columns_notice() -> None:
    sheet = make_sheet(
        [("INCA1", "Low", "srv", "CIS", "x")], ["Ticket", "Priority", "Asset", "Standard", "Notes"]
    )
    assert plan(sheet, RULES).notices == [
        "Columns not sent to CCS (kept in the results workbook): Asset, Standard, Notes."
    ]
    assert plan(make_sheet([("INCA1", "Low")], ["Ticket", "Priority"]), RULES).notices == []


# --- headers that read like a field --------------------------------------------------------------

# The kinds of header the rule tells apart.
FIELD, CHANGE, CONTEXT = "field", "change-like", "context"
STATE, PRIO, ASSIGN, DESC = (
    Field.TICKET_STATE,
    Field.PRIORITY,
    Field.ASSIGNED_TO,
    Field.TICKET_DESCRIPTION,
)
LABELS = {STATE: "State", PRIO: "Priority", ASSIGN: "Assigned To", DESC: "Description"}

HEADER_KINDS: list[tuple[str, str, Field | None]] = [
    # recognised: an alias, in any case and punctuation
    ("State", FIELD, STATE),
    ("status", FIELD, STATE),
    ("Ticket Status", FIELD, STATE),
    ("ASSIGNEE", FIELD, ASSIGN),
    ("Assigned_To", FIELD, ASSIGN),
    ("Ticket Priority", FIELD, PRIO),
    ("Description", FIELD, DESC),
    ("TicketDescription", FIELD, DESC),
    ("Ticket #", FIELD, Field.TICKET_NUMBER),
    # a field's word in the team's own wording: refused until the config says what it is
    ("Target Status", CHANGE, STATE),
    ("New State", CHANGE, STATE),
    ("Status (new)", CHANGE, STATE),
    ("TargetStatus", CHANGE, STATE),
    ("new_status", CHANGE, STATE),
    ("Set Status To", CHANGE, STATE),
    ("Remediation State", CHANGE, STATE),
    ("Status Reason", CHANGE, STATE),
    ("Desired Priority", CHANGE, PRIO),
    ("PRIORITY LEVEL", CHANGE, PRIO),
    ("Prio", CHANGE, PRIO),
    ("Assignee (new)", CHANGE, ASSIGN),
    ("New Assignee", CHANGE, ASSIGN),
    ("Assign to", CHANGE, ASSIGN),
    ("Assignment Group", CHANGE, ASSIGN),
    ("Owner", CHANGE, ASSIGN),
    ("Ticket Owner", CHANGE, ASSIGN),
    ("Change Comment", CHANGE, DESC),
    ("Comments", CHANGE, DESC),
    ("Desc", CHANGE, DESC),
    ("Remediation Description", CHANGE, DESC),
    ("Description\n(what was done)", CHANGE, DESC),
    # context: no field's word
    ("Asset", CONTEXT, None),
    ("Standard", CONTEXT, None),
    ("Notes", CONTEXT, None),
    ("Ticket Name?", CONTEXT, None),
    ("Created", CONTEXT, None),
    ("Statement", CONTEXT, None),  # a word that only starts like one
    ("Estate", CONTEXT, None),
    ("Descriptor", CONTEXT, None),
    ("Column F", CONTEXT, None),  # what the reader calls a column without a header
    # context: a field's word, with a word that says the column holds something else
    ("Status Date", CONTEXT, None),
    ("Date Assigned", CONTEXT, None),
    ("Assigned By", CONTEXT, None),
    ("State Changed At", CONTEXT, None),
    ("Days in Status", CONTEXT, None),
    ("Previous Owner", CONTEXT, None),
    ("Priority (old)", CONTEXT, None),
    ("Old Priority", CONTEXT, None),
    ("Original Description", CONTEXT, None),
    ("Last Status", CONTEXT, None),
    ("Current Status", CONTEXT, None),
    ("Status (as exported)", CONTEXT, None),
    ("From State", CONTEXT, None),
    ("Asset Owner", CONTEXT, None),
    ("Business Owner", CONTEXT, None),
    ("Compliance Status", CONTEXT, None),
    ("Check Description", CONTEXT, None),
    ("Standard Description", CONTEXT, None),
    ("Risk Priority", CONTEXT, None),
    # context: the columns batch-update writes itself, so that its results can be input again
    ("Before: State", CONTEXT, None),
    ("Before: Priority", CONTEXT, None),
    ("Before: Assigned To", CONTEXT, None),
    ("Before: Description", CONTEXT, None),
    ("Before: Description (batch-update)", CONTEXT, None),
    ("HTTP Status", CONTEXT, None),
    ("HTTP Status (batch-update 2)", CONTEXT, None),
    ("Outcome", CONTEXT, None),
    ("Message", CONTEXT, None),
    ("Verification", CONTEXT, None),
    ("Rolls back row", CONTEXT, None),
]


def _with_column(header: str) -> Sheet:
    value = {STATE: 2, PRIO: "Low"}.get(looks_like_field(header), "x")  # type: ignore[arg-type]
    return make_sheet([("INCA1", "High", value)], ["Ticket Number", "Priority", header])


@pytest.mark.parametrize(("header", "kind", "field"), HEADER_KINDS, ids=repr)
def test_which_headers_read_like_a_field(header: str, kind: str, field: Field | None) -> None:
    recognised = RULES.field_for(header)
    looks = looks_like_field(header)
    if kind == FIELD:
        assert (recognised, looks) == (field, looks)
        return
    assert recognised is None
    assert looks is field
    sheet = _with_column(header)
    if kind == CONTEXT:
        assert plan(sheet, RULES).notices == [
            f"Columns not sent to CCS (kept in the results workbook): {header}."
        ]
        return
    with pytest.raises(InputError) as caught:
        plan(sheet, RULES)
    shown = header.replace("\n", "\\n")
    assert caught.value.message == (
        f'tickets.xlsx, sheet "Changes": column C "{shown}" looks like a ticket field (State, '
        "Priority, Assigned To, Description), but batch-update does not know this header, so "
        "its values would not be sent. Say in the config what it is."
    )
    quoted = json.dumps(header, ensure_ascii=False)
    # The sheet has its Priority column: the tip suggests ignore for a second one.
    line = f"{quoted}: {LABELS[field]}"  # type: ignore[index]
    if field is PRIO:
        line = f'{quoted}: ignore  # Priority comes from column B "Priority"'
    assert caught.value.tip == (
        "add these lines to the config file (under columns: if it has one already); write the "
        "field a column feeds, or ignore for a column that is only context (it is kept in the "
        f"results workbook and never sent):\ncolumns:\n  {line}"
    )


def test_the_rule_table_covers_every_kind_and_field() -> None:
    kinds = {(kind, field) for _, kind, field in HEADER_KINDS}
    assert {(CHANGE, f) for f in LABELS} <= kinds
    assert len([h for h, kind, _ in HEADER_KINDS if kind == CONTEXT]) >= 30


def _tip_config(tmp_path: Path, tip: str, *, flip: bool = False) -> ValidationRules:
    """The rules after pasting the tip's YAML into a config file (each choice flipped, if asked:
    the field for ignore, ignore for the field)."""
    lines = tip[tip.index("\ncolumns:") + 1 :].splitlines()
    if flip:
        for number, line in enumerate(lines[1:], start=1):
            key, _, value = line.partition(": ")
            field = looks_like_field(json.loads(key.strip()))
            assert field is not None
            choice = LABELS[field] if value.startswith("ignore") else "ignore"
            lines[number] = f"{key}: {choice}"
    (tmp_path / "batch-update.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rules_from_settings(load_settings(env={}, cwd=tmp_path))


@pytest.mark.parametrize("header", [h for h, kind, _ in HEADER_KINDS if kind == CHANGE], ids=repr)
@pytest.mark.parametrize("flip", [False, True], ids=["as given", "the other choice"])
def test_the_tips_config_lines_settle_the_column(tmp_path: Path, header: str, flip: bool) -> None:
    sheet = _with_column(header)
    with pytest.raises(InputError) as caught:
        plan(sheet, RULES)
    tip = caught.value.tip or ""
    field = looks_like_field(header)
    # The sheet has a Priority column already, so the tip says ignore for another one.
    send = (field is not PRIO) != flip

    planned = plan(sheet, _tip_config(tmp_path, tip, flip=flip))
    assert planned.valid_count == 1
    if send:
        assert planned.columns.header(field) == header  # type: ignore[arg-type]
        assert planned.notices == ([] if field is not PRIO else [
            "Columns not sent to CCS (kept in the results workbook): Priority."
        ])  # fmt: skip
    else:
        assert planned.columns.header(field) != header  # type: ignore[arg-type]
        assert planned.notices == [
            f"Columns not sent to CCS (kept in the results workbook): {header}."
        ]


def test_every_column_batch_update_writes_is_context_or_a_field() -> None:
    """A results or rollback workbook is input again without a config (e.g. a rollback)."""
    own = [*RESULT_COLUMNS, *BEFORE_COLUMNS, VERIFICATION_COLUMN]
    # The results' own columns get a suffix when the input has a column of that name already.
    suffixed = [f"{name} ({COLLISION_SUFFIX})" for name in own] + [
        f"{name} ({COLLISION_SUFFIX} 2)" for name in own
    ]
    for header in [*own, *suffixed, *ROLLBACK_HEADERS]:
        assert RULES.field_for(header) is not None or looks_like_field(header) is None, header
    headers = ["Ticket Number", "State", "Priority", "Assigned To", "Description", "Notes"]
    results = make_sheet(
        [("INCA1", 2, "High", "u", "d", "n", *(["x"] * len(own)))], [*headers, *own]
    )
    planned = plan(results, RULES)
    assert planned.valid_count == 1
    assert planned.columns.unmapped_headers == ("Notes", *own)


def test_all_such_columns_are_named_at_once_and_a_taken_field_gets_ignore() -> None:
    sheet = make_sheet(
        [("INCA1", 2, "High", "a", "b", "c", "d")],
        [
            "Ticket Number", "State", "Priority", "Target Status", "Assignee (new)",
            'Owner "B"', "Notes",
        ],
    )  # fmt: skip
    with pytest.raises(InputError) as caught:
        plan(sheet, RULES)
    assert caught.value.message == (
        'tickets.xlsx, sheet "Changes": column D "Target Status", column E "Assignee (new)" and '
        'column F "Owner "B"" look like ticket fields (State, Priority, Assigned To, '
        "Description), but batch-update does not know these headers, so their values would not "
        "be sent. Say in the config what each one is."
    )
    assert (caught.value.tip or "").splitlines()[1:] == [
        "columns:",
        '  "Target Status": ignore  # State comes from column B "State"',
        '  "Assignee (new)": Assigned To',
        '  "Owner \\"B\\"": ignore  # Assigned To comes from column E "Assignee (new)"',
    ]


def test_an_alias_the_config_outranks_is_not_refused() -> None:
    # "Status" is recognised; the config chose "New State" for the state, so it is context.
    rules = ValidationRules(column_mapping={"New State": Field.TICKET_STATE})
    sheet = make_sheet([("INCA1", 3, 2, "High")], ["Ticket", "Status", "New State", "Priority"])
    assert plan(sheet, rules).valid_rows[0].update.state is TicketState.REMEDIATION_PERFORMED


def test_ignore_in_the_config_makes_even_an_alias_context() -> None:
    rules = ValidationRules(ignored_columns=("status",))
    sheet = make_sheet([("INCA1", 3, "High")], ["Ticket", "Status", "Priority"])
    planned = plan(sheet, rules)
    assert planned.columns.index(Field.TICKET_STATE) is None
    assert planned.valid_rows[0].update.state is None
    assert planned.notices == ["Columns not sent to CCS (kept in the results workbook): Status."]
    assert not rules.is_header_row(["Ticket Status"]) and rules.field_for("STATUS") is None


# --- a valid row -------------------------------------------------------------------------------


def test_valid_row_becomes_an_update() -> None:
    planned = judge(
        row("  INCA0000009 ", 2, "medium", " corp\\jsmith ", "  Patched,\nrebooted  ", "srv01")
    )
    assert planned.is_valid and planned.problems == () and not planned.blank
    assert planned.update == TicketUpdate(
        ticket_number="INCA0000009",
        state=TicketState.REMEDIATION_PERFORMED,
        description="Patched,\nrebooted",
        priority="Medium",
        assigned_to="corp\\jsmith",
    )
    assert planned.update.to_json() == {
        "TicketNumber": "INCA0000009",
        "TicketState": 2,
        "TicketDescription": "Patched,\nrebooted",
        "Priority": "Medium",
        "AssignedTo": "corp\\jsmith",
    }


def test_empty_cells_are_not_sent() -> None:
    update = judge(row(state=None, priority="Low", assigned="   ", description=" \n ")).update
    assert update is not None
    assert update.to_json() == {"TicketNumber": "INCA0000009", "Priority": "Low"}


def test_numeric_ticket_number_becomes_text() -> None:
    assert judge(row(ticket=12345)).update.ticket_number == "12345"
    assert judge(row(ticket=12345.0)).update.ticket_number == "12345"


def test_email_assignee() -> None:
    assert judge(row(assigned="j.smith@corp.example")).update.assigned_to == "j.smith@corp.example"


# --- ticket number -------------------------------------------------------------------------------


def test_ticket_number_missing() -> None:
    assert problems(row(ticket=None)) == [
        'column "Ticket Number": no ticket number; fill in the number shown in the CCS '
        "Remediation workspace, e.g. INCA0000009."
    ]
    assert problems(row(ticket="  ")) == problems(row(ticket=None))


@pytest.mark.parametrize(
    ("ticket", "what"),
    [
        ("INCA 0000009", "a space"),
        ("INCA\t0000009", "a tab"),
        ("INCA\n0000009", "a line break"),
        ("INCA\u00a00000009", "a non-breaking space"),
        ("IN CA\u00a00000009", "a space and a non-breaking space"),
        ("INCA\u20030000009", "U+2003 (EM SPACE)"),
    ],
)
def test_ticket_number_with_white_space_inside(ticket: str, what: str) -> None:
    shown = ticket.replace("\t", "\\t").replace("\n", "\\n")
    assert problems(row(ticket=ticket)) == [
        f'column "Ticket Number": "{shown}" contains {what}; a ticket number is one word without '
        "spaces, e.g. INCA0000009."
    ]


def test_ticket_number_with_a_cyrillic_look_alike() -> None:
    assert problems(row(ticket="\u0406NCA0000009")) == [
        'column "Ticket Number": "\u0406NCA0000009" contains "\u0406" (CYRILLIC CAPITAL LETTER '
        "BYELORUSSIAN-UKRAINIAN I), which is not a plain letter or digit; retype it."
    ]


def test_ticket_number_with_full_width_digits() -> None:
    assert problems(row(ticket="INCA000000\uff19\uff10")) == [
        'column "Ticket Number": "INCA000000\uff19\uff10" contains "\uff19" (FULLWIDTH DIGIT NINE) '
        'and "\uff10" (FULLWIDTH DIGIT ZERO), which are not plain letters or digits; retype it.'
    ]


def test_ticket_number_with_an_invisible_character() -> None:
    assert problems(row(ticket="INCA\u200b0000009")) == [
        'column "Ticket Number": "INCA<U+200B>0000009" contains U+200B (ZERO WIDTH SPACE), '
        "which is not a plain letter or digit; retype it."
    ]


def test_ticket_number_with_many_odd_characters() -> None:
    assert problems(row(ticket="\u00e9\u00e8\u00ea\u00eb")) == [
        'column "Ticket Number": "\u00e9\u00e8\u00ea\u00eb" contains '
        '"\u00e9" (LATIN SMALL LETTER E WITH ACUTE), '
        '"\u00e8" (LATIN SMALL LETTER E WITH GRAVE), '
        '"\u00ea" (LATIN SMALL LETTER E WITH CIRCUMFLEX) '
        "and 1 more, which are not plain letters or digits; retype it."
    ]


def test_ticket_pattern() -> None:
    rules = ValidationRules(ticket_pattern=r"INCA\d{7}")
    assert judge(row(ticket="INCA0000009"), rules).is_valid
    assert problems(row(ticket="INCA000009"), rules) == [
        'column "Ticket Number": "INCA000009" does not match the ticket-number pattern INCA\\d{7} '
        "(setting ticket_pattern)."
    ]
    # The whole number must match, not just its start.
    assert not judge(row(ticket="INCA00000091"), rules).is_valid


def test_bad_ticket_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        ValidationRules(ticket_pattern=r"INCA(\d")
    assert str(caught.value) == (
        "ticket_pattern: INCA(\\d is not a valid regular expression (missing ), unterminated "
        "subpattern at position 4); use e.g. INCA\\d{7}"
    )


# --- state -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "state"),
    [
        (1, TicketState.OPEN),
        (2.0, TicketState.REMEDIATION_PERFORMED),
        ("3", TicketState.VERIFIED),
        (" 4 ", TicketState.FAILED),
        ("5.0", TicketState.NOT_APPLICABLE),
        ("remediation performed", TicketState.REMEDIATION_PERFORMED),
        ("  Remediation   Performed ", TicketState.REMEDIATION_PERFORMED),
        ("Not applicable", TicketState.NOT_APPLICABLE),
        ("NOT_APPLICABLE", TicketState.NOT_APPLICABLE),
        ("open", TicketState.OPEN),
        ("2 Remediation Performed", TicketState.REMEDIATION_PERFORMED),
        ("3 - Verified", TicketState.VERIFIED),
    ],
)
def test_state_accepted(cell: object, state: TicketState) -> None:
    update = judge(row(state=cell)).update
    assert update is not None and update.state is state
    assert update.to_json()["TicketState"] == state.value


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("Done", "Done"),
        (0, "0"),
        (6, "6"),
        (2.5, "2.5"),
        ("-1", "-1"),
        (True, "TRUE"),
        ("3 Failed", "3 Failed"),  # the number and the name disagree
        ("\uff12", "\uff12"),  # a full-width 2
        (datetime.date(2024, 1, 2), "2024-01-02"),
    ],
)
def test_state_refused(cell: object, shown: str) -> None:
    assert problems(row(state=cell)) == [
        f'column "State": "{shown}" is not a ticket state; {STATE_HELP}'
    ]


# --- priority ----------------------------------------------------------------------------------


def test_priority_names_case_insensitive_sent_in_the_lists_spelling() -> None:
    assert judge(row(priority="HIGH")).update.priority == "High"
    assert judge(row(priority=" medium ")).update.priority == "Medium"
    assert judge(row(priority="Low")).update.priority == "Low"


def test_priority_refused() -> None:
    assert problems(row(priority="urgentt")) == [
        'column "Priority": "urgentt" is not a priority; use one of Low, Medium, High.'
    ]
    assert problems(row(priority=2)) == [
        'column "Priority": "2" is not a priority; use one of Low, Medium, High.'
    ]


def test_priority_required() -> None:
    assert problems(row(state=2, priority=None)) == [
        'column "Priority": Priority is required by CCS; use one of Low, Medium, High.'
    ]


def test_priority_from_a_configured_list() -> None:
    rules = ValidationRules(priorities=("P1", "P2", "P3", "P4"))
    assert judge(row(priority="p3"), rules).update.priority == "P3"
    assert problems(row(priority="Low"), rules) == [
        'column "Priority": "Low" is not a priority; use one of P1, P2, P3, P4.'
    ]


@pytest.mark.parametrize(
    ("cell", "sent"), [(1, 1), (3.0, 3), (" 2 ", 2), ("2.0", 2), ("high", 3), ("Low", 1)]
)
def test_priority_integer_format(cell: object, sent: int) -> None:
    rules = ValidationRules(priority_format="integer")
    assert rules.priority_format is PriorityFormat.INTEGER
    update = judge(row(priority=cell), rules).update
    assert update is not None and update.priority == sent and type(update.priority) is int


@pytest.mark.parametrize("cell", [0, 4, 1.5, "urgent", True])
def test_priority_integer_format_refused(cell: object) -> None:
    rules = ValidationRules(priority_format=PriorityFormat.INTEGER)
    shown = {True: "TRUE"}.get(cell, str(cell)) if cell is True else str(cell)
    assert problems(row(priority=cell), rules) == [
        f'column "Priority": "{shown}" is not a priority; '
        "use 1-3 or a name: 1 Low, 2 Medium, 3 High."
    ]
    assert problems(row(state=1, priority=None), rules) == [
        'column "Priority": Priority is required by CCS; '
        "use 1-3 or a name: 1 Low, 2 Medium, 3 High."
    ]


def test_bad_rules_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r'^priority_format: "roman" is not a priority format'):
        ValidationRules(priority_format="roman")
    with pytest.raises(ConfigError, match=r"^priorities: give at least one priority name"):
        ValidationRules(priorities=())
    with pytest.raises(
        ConfigError, match=r"^description_max_length: 0 is not a positive whole number"
    ):
        ValidationRules(description_max_length=0)


# --- description and assignee ---------------------------------------------------------------------


def test_description_kept_as_written_inside() -> None:
    text = "Line one\n\n  indented line two\t(tab)"
    assert judge(row(description=f"\n  {text}  \n")).update.description == text


def test_description_length_limit() -> None:
    rules = ValidationRules(description_max_length=10)
    assert judge(row(description="x" * 10), rules).is_valid
    # Surrounding white space does not count against the limit.
    assert judge(row(description="  " + "x" * 10 + "  "), rules).is_valid
    assert problems(row(description="x" * 4012)) == [
        'column "Description": the description is 4,012 characters long; the limit is 4,000 '
        "(setting description_max_length)."
    ]


@pytest.mark.parametrize(
    ("cell", "text"),
    [
        (datetime.datetime(2024, 3, 1), "2024-03-01"),
        (datetime.datetime(2024, 3, 1, 14, 30), "2024-03-01 14:30:00"),
        (datetime.date(2024, 3, 1), "2024-03-01"),
        (datetime.time(14, 30), "14:30:00"),
        (datetime.timedelta(hours=5), "5:00:00"),
        (42, "42"),
        (2.5, "2.5"),
        (False, "FALSE"),
    ],
)
def test_non_text_cells_in_text_columns(cell: object, text: str) -> None:
    update = judge(row(assigned=cell, description=cell)).update
    assert update.description == text and update.assigned_to == text


# --- whole rows ----------------------------------------------------------------------------------


def test_nothing_to_change() -> None:
    assert problems(row(priority=None, asset="srv01")) == [NOTHING_TO_CHANGE]


def test_nothing_to_change_names_only_the_columns_the_sheet_has() -> None:
    headers = ["Ticket #", "Ticket Priority", "Notes"]
    assert problems(("INCA1", None, "x"), headers=headers) == [
        "nothing to change: fill in Ticket Priority (CCS requires it)."
    ]


def test_row_with_only_a_note() -> None:
    assert problems(row(ticket=None, priority=None, asset="see above")) == [
        'column "Ticket Number": no ticket number; fill in the number shown in the CCS '
        "Remediation workspace, e.g. INCA0000009.",
        NOTHING_TO_CHANGE,
    ]


def test_every_problem_of_a_row_at_once_in_column_order() -> None:
    headers = ["Priority", "Ticket Number", "State", "Description"]
    rules = ValidationRules(description_max_length=3)
    assert problems(("urgent", "IN CA1", "Done", "long"), rules, headers) == [
        'column "Priority": "urgent" is not a priority; use one of Low, Medium, High.',
        'column "Ticket Number": "IN CA1" contains a space; a ticket number is one word without '
        "spaces, e.g. INCA0000009.",
        f'column "State": "Done" is not a ticket state; {STATE_HELP}',
        'column "Description": the description is 4 characters long; the limit is 3 '
        "(setting description_max_length).",
    ]


def test_blank_rows() -> None:
    sheet = make_sheet([(None,) * 6, (None, "  ", "\t", None, "\n", None), row()])
    rows = plan(sheet, RULES).rows
    assert [(r.row_number, r.blank, r.problems, r.update is None) for r in rows[:2]] == [
        (2, True, (), True),
        (3, True, (), True),
    ]
    assert not rows[0].is_valid and rows[2].is_valid
    assert plan(sheet, RULES).counts()["blank"] == 2


def test_a_row_with_zero_is_not_blank() -> None:
    planned = judge((None, 0, None, None, None, None))
    assert not planned.blank and not planned.is_valid


def test_rows_shorter_or_longer_than_the_headers() -> None:
    sheet = make_sheet([("INCA1", 2, "Low"), ("INCA2", 2, "Low", None, None, None, "extra")])
    assert [r.is_valid for r in plan(sheet, RULES).rows] == [True, True]


# --- duplicates -----------------------------------------------------------------------------------


def test_duplicate_ticket_numbers() -> None:
    sheet = make_sheet(
        [
            row("INCA0000009", 2),
            row("INCA0000001", 2),
            row(" inca0000009 ", 3),
            row("INCA0000009", priority="bogus"),
            row(None, 2),
        ],
        first_row=12,
    )
    rows = plan(sheet, RULES).rows
    assert [str(p) for p in rows[0].problems] == [
        "ticket INCA0000009 also appears in rows 14, 15; keep one row per ticket."
    ]
    assert rows[0].update is None and not rows[0].is_valid
    assert rows[1].is_valid
    assert [str(p) for p in rows[2].problems] == [
        "ticket inca0000009 also appears in rows 12, 15; keep one row per ticket."
    ]
    assert [str(p) for p in rows[3].problems] == [
        'column "Priority": "bogus" is not a priority; use one of Low, Medium, High.',
        "ticket INCA0000009 also appears in rows 12, 14; keep one row per ticket.",
    ]
    assert "also appears" not in " ".join(str(p) for p in rows[4].problems)


def test_duplicate_rows_listed_at_most_ten() -> None:
    sheet = make_sheet([row("INCA1") for _ in range(13)])
    message = str(plan(sheet, RULES).rows[0].problems[0])
    assert message == (
        "ticket INCA1 also appears in rows 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 2 more; "
        "keep one row per ticket."
    )
    assert str(plan(make_sheet([row("A1"), row("A1")]), RULES).rows[0].problems[0]) == (
        "ticket A1 also appears in row 3; keep one row per ticket."
    )


# --- messages ----------------------------------------------------------------------------------


def test_format_problem_workbook_and_csv() -> None:
    problem = Problem("Priority", '"urgentt" is not a priority; use one of Low, Medium, High.')
    workbook = make_sheet([], path="C:/data/tickets.xlsx", sheet_name="Changes")
    assert format_problem(workbook, 14, problem) == (
        'tickets.xlsx, sheet "Changes", row 14, column "Priority": "urgentt" is not a priority; '
        "use one of Low, Medium, High."
    )
    text = make_sheet([], path="tickets.csv", sheet_name="")
    assert format_problem(text, 14, problem) == (
        'tickets.csv, row 14, column "Priority": "urgentt" is not a priority; '
        "use one of Low, Medium, High."
    )
    row_level = Problem(None, "ticket A1 also appears in row 3; keep one row per ticket.")
    assert format_problem(text, 2, row_level) == (
        "tickets.csv, row 2: ticket A1 also appears in row 3; keep one row per ticket."
    )
    assert sheet_location(workbook) == 'tickets.xlsx, sheet "Changes"'


def test_long_and_control_character_values_are_shown_safely() -> None:
    value = "Done\r\n" + "x" * 100
    [message] = problems(row(state=value))
    assert message == (
        'column "State": "Done\\r\\n' + "x" * 49 + f'..." is not a ticket state; {STATE_HELP}'
    )


# --- plan, settings and the reader together -------------------------------------------------------


def test_plan_counts_and_helpers() -> None:
    sheet = make_sheet([row("A1"), row("A2", priority=None, state=2), (None,) * 6, row("A3")])
    result = plan_rows(sheet, RULES)
    assert result.counts() == {"valid": 2, "invalid": 1, "blank": 1, "total": 4}
    assert (result.valid_count, result.invalid_count, result.blank_count, result.problem_count) == (
        2,
        1,
        1,
        1,
    )
    assert [r.row_number for r in result.valid_rows] == [2, 5]
    assert [r.row_number for r in result.invalid_rows] == [3]
    assert isinstance(result.columns, ColumnMap)


def test_validate_row_alone() -> None:
    columns = map_columns(HEADERS, RULES)
    planned = validate_row(SheetRow(7, row("INCA1", "Verified")), columns, RULES)
    assert planned.row_number == 7 and planned.update.state is TicketState.VERIFIED


def test_rules_from_settings() -> None:
    from batch_updater.settings import Settings

    settings = Settings(
        priorities=("P1", "P2"),
        priority_format=PriorityFormat.INTEGER,
        description_max_length=99,
        ticket_pattern=r"INCA\d+",
        column_mapping={"Ref": Field.TICKET_NUMBER},
    )
    rules = rules_from_settings(settings)
    assert rules == ValidationRules(
        priorities=("P1", "P2"),
        priority_format=PriorityFormat.INTEGER,
        description_max_length=99,
        ticket_pattern=r"INCA\d+",
        column_mapping={"Ref": Field.TICKET_NUMBER},
    )
    assert rules.is_header_row(["ref"])


def test_read_and_plan_a_workbook_end_to_end(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Changes"
    ws["A1"] = "Sweep of March"
    headers = ["Ticket #", "Status", "Priority", "Assignee", "Asset"]
    for column, header in zip("BCDEF", headers, strict=True):
        ws[f"{column}3"] = header
    ws.append([None, "INCA0000001", 2, "High", "corp\\jsmith", "srv01"])  # row 4
    ws.append([])  # row 5
    ws.append([None, "INCA0000002", "Verified", "urgentt", None, "srv02"])  # row 6
    book.save(tmp_path / "tickets.xlsx")
    sheet = read_sheet(tmp_path / "tickets.xlsx", is_header_row=RULES.is_header_row)
    result = plan(sheet, RULES)
    assert [(r.row_number, r.is_valid, r.blank) for r in result.rows] == [
        (4, True, False),
        (5, False, True),
        (6, False, False),
    ]
    assert result.rows[0].update.to_json() == {
        "TicketNumber": "INCA0000001",
        "TicketState": 2,
        "Priority": "High",
        "AssignedTo": "corp\\jsmith",
    }
    assert [format_problem(sheet, 6, p) for p in result.rows[2].problems] == [
        'tickets.xlsx, sheet "Changes", row 6, column "Priority": "urgentt" is not a priority; '
        "use one of Low, Medium, High."
    ]


# --- never raises ------------------------------------------------------------------------------

cells = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.sampled_from(
        ["", " ", "2", "2.0", "Open", "low", "INCA0000009", "\u0406NCA1", "\x00", "\ud800"]
    ),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.lists(cells, min_size=0, max_size=8).map(tuple), max_size=12),
    integer=st.booleans(),
    limit=st.integers(min_value=1, max_value=50),
)
def test_plan_never_raises_on_any_cell_values(
    rows: list[tuple[object, ...]], integer: bool, limit: int
) -> None:
    rules = ValidationRules(
        priority_format="integer" if integer else "name",
        description_max_length=limit,
        ticket_pattern=r"INCA\d+",
    )
    result = plan(make_sheet(rows), rules)
    assert [r.row_number for r in result.rows] == list(range(2, 2 + len(rows)))
    for planned in result.rows:
        assert planned.blank or planned.is_valid or planned.problems
        assert not (planned.blank and planned.problems)
        for problem in planned.problems:
            assert "could not be checked" not in problem.message
            assert format_problem(make_sheet([]), planned.row_number, problem)
        if planned.update is not None:
            assert planned.update.to_json_text()


def test_an_invalid_row_keeps_its_ticket_number_as_written() -> None:
    sheet = make_sheet(
        [
            row(state="Done"),
            row(ticket=" INCA 0000010 "),
            row(ticket="INCA0000011"),
            row(ticket="inca0000011"),
        ]
    )
    planned = plan(sheet, RULES).rows
    assert [p.ticket_number for p in planned] == [
        "INCA0000009",
        "INCA 0000010",
        "INCA0000011",
        "inca0000011",
    ]
    assert all(not p.is_valid for p in planned)


def test_a_text_row_with_more_fields_than_the_header_is_invalid_and_says_why(
    tmp_path: Path,
) -> None:
    (tmp_path / "tickets.csv").write_text(
        "Ticket Number,State,Priority,Description\n"
        "INCA0000001,2,High,Patched\n"
        "INCA0000002,2,High,Patched, rebooted\n"
        'INCA0000003,2,High,"Patched, rebooted"\n',
        encoding="utf-8",
    )
    sheet = read_sheet(tmp_path / "tickets.csv", is_header_row=RULES.is_header_row)
    planned = plan(sheet, RULES)
    assert [row.is_valid for row in planned.rows] == [True, False, True]
    (problem,) = planned.rows[1].problems
    assert format_problem(sheet, 3, problem) == (
        "tickets.csv, row 3: has 1 more field than the header, past its last column "
        '"Description": the values after a delimiter inside a value are in the wrong columns. '
        'Put double quotes around a value that holds the delimiter, e.g. "Patched, rebooted"; '
        "nothing of this row is sent."
    )
