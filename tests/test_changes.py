"""What a row changes (changes.decide): plain unit tests of the decision, no I/O."""

from __future__ import annotations

import json

import pytest

from batch_updater.changes import Verdict, decide, exported_state
from batch_updater.tickets import (
    Field,
    TicketState,
    TicketUpdate,
    compare_ticket,
    job_note,
    same_value,
)

TICKET = {
    "TicketNumber": "INCA0000001",
    "TicketState": 1,
    "Priority": "Low",
    "AssignedTo": "corp\\jsmith",
    "TicketDescription": "SSH permits root login",
    "Asset": "RHEL-0001",
}
EXPORTED = {
    Field.TICKET_STATE: "Open",
    Field.PRIORITY: "Low",
    Field.ASSIGNED_TO: "corp\\jsmith",
    Field.TICKET_DESCRIPTION: "SSH permits root login",
}


def update(**fields) -> TicketUpdate:
    return TicketUpdate("INCA0000001", **fields)


def sent(decision) -> dict:
    return json.loads(decision.update.to_json_text())


def test_a_row_asking_for_what_the_ticket_holds_is_unchanged() -> None:
    row = update(
        state=TicketState.OPEN,
        priority="low",  # a priority in another case is the same priority
        assigned_to="corp\\jsmith",
        description="SSH permits root login",
    )
    decision = decide(row, TICKET, EXPORTED)
    assert decision.verdict is Verdict.UNCHANGED and decision.update is None
    assert decision.message == "the ticket already holds these values; nothing was sent"


def test_only_the_fields_that_differ_are_sent_with_the_rows_priority() -> None:
    row = update(
        state=TicketState.REMEDIATION_PERFORMED, priority="Low", assigned_to="corp\\jsmith"
    )
    decision = decide(row, TICKET, EXPORTED)
    assert decision.verdict is Verdict.CHANGE
    assert sent(decision) == {"TicketNumber": "INCA0000001", "TicketState": 2, "Priority": "Low"}


def test_priority_travels_in_every_patch_from_the_ticket_when_the_row_has_none() -> None:
    decision = decide(update(description="Patched"), TICKET)
    assert sent(decision) == {
        "TicketNumber": "INCA0000001",
        "TicketDescription": "Patched",
        "Priority": "Low",
    }


def test_a_changed_priority_is_a_change() -> None:
    decision = decide(update(priority="High"), TICKET)
    assert sent(decision) == {"TicketNumber": "INCA0000001", "Priority": "High"}


def test_camel_case_keys_are_read_like_pascal_case() -> None:
    camel = {key[0].lower() + key[1:]: value for key, value in TICKET.items()}
    assert (
        decide(update(state=TicketState.OPEN, priority="Low"), camel).verdict is Verdict.UNCHANGED
    )


def test_a_field_changed_in_ccs_since_the_export_is_a_conflict_naming_both_values() -> None:
    now = {**TICKET, "AssignedTo": "corp\\mgarcia"}  # someone reassigned it in the console
    row = update(
        state=TicketState.REMEDIATION_PERFORMED, priority="Low", assigned_to="corp\\jsmith"
    )
    decision = decide(row, now, EXPORTED)
    assert decision.verdict is Verdict.CONFLICT and decision.update is None
    assert decision.conflicts == (Field.ASSIGNED_TO,)
    assert decision.message == (
        'changed in CCS since the export: Assigned To was "corp\\jsmith" when exported, is now '
        '"corp\\mgarcia"; not sent (--overwrite-conflicts sends it anyway)'
    )


def test_overwrite_conflicts_sends_and_says_so() -> None:
    now = {**TICKET, "AssignedTo": "corp\\mgarcia"}
    row = update(
        state=TicketState.REMEDIATION_PERFORMED, priority="Low", assigned_to="corp\\jsmith"
    )
    decision = decide(row, now, EXPORTED, overwrite_conflicts=True)
    assert decision.verdict is Verdict.CHANGE
    assert sent(decision) == {
        "TicketNumber": "INCA0000001",
        "TicketState": 2,
        "Priority": "Low",
        "AssignedTo": "corp\\jsmith",
    }
    assert decision.message.startswith("sent over a change made in CCS since the export")


def test_a_change_in_ccs_that_agrees_with_the_row_is_no_conflict() -> None:
    now = {**TICKET, "TicketState": 2}  # someone already did what the row asks
    row = update(state=TicketState.REMEDIATION_PERFORMED, priority="Low")
    assert decide(row, now, EXPORTED).verdict is Verdict.UNCHANGED


def test_a_state_changed_since_the_export_is_a_conflict_by_its_name() -> None:
    now = {**TICKET, "TicketState": 5}
    decision = decide(
        update(state=TicketState.REMEDIATION_PERFORMED, priority="Low"), now, EXPORTED
    )
    assert decision.verdict is Verdict.CONFLICT
    assert 'State was "Open" when exported, is now "Not Applicable"' in decision.message


def test_without_exported_values_a_hand_made_row_never_conflicts() -> None:
    now = {**TICKET, "AssignedTo": "corp\\mgarcia"}
    decision = decide(update(assigned_to="corp\\jsmith", priority="Low"), now)
    assert decision.verdict is Verdict.CHANGE


def test_state_3_or_4_where_2_is_asked_is_the_verification_jobs_doing() -> None:
    for state in (3, 4):
        now = {**TICKET, "TicketState": state}
        row = update(state=TicketState.REMEDIATION_PERFORMED, priority="Low")
        # A hand-made row asking 2 of a ticket at 3 or 4 is a re-remediation: sent again (which
        # starts the verification job again). Only the read-back takes 3 or 4 for the 2 sent.
        decision = decide(row, now)
        assert decision.verdict is Verdict.CHANGE
        assert sent(decision) == {
            "TicketNumber": "INCA0000001",
            "TicketState": 2,
            "Priority": "Low",
        }
        assert compare_ticket(row, now) == []
    assert job_note(row, {**TICKET, "TicketState": 3}).startswith("verified by CCS")
    assert job_note(row, {**TICKET, "TicketState": 4}).startswith("failed verification")
    assert job_note(update(state=TicketState.OPEN), {**TICKET, "TicketState": 3}) == ""


def test_a_field_missing_from_the_answer_is_sent() -> None:
    partial = {"TicketNumber": "INCA0000001", "Priority": "Low"}
    decision = decide(update(description="Patched", priority="Low"), partial)
    assert sent(decision)["TicketDescription"] == "Patched"


@pytest.mark.parametrize(
    ("text", "state"),
    [("Open", 1), ("remediation performed", 2), ("3", 3), ("", None), ("x", None)],
)
def test_exported_states_by_name_or_number(text: str, state: int | None) -> None:
    assert exported_state(text) == state


def test_a_2_asked_of_a_ticket_at_3_or_4_since_the_export_is_a_conflict() -> None:
    for state, label in ((3, "Verified"), (4, "Failed")):
        now = {**TICKET, "TicketState": state}
        row = update(state=TicketState.REMEDIATION_PERFORMED, priority="Low")
        decision = decide(row, now, EXPORTED)  # exported "Open": the ticket changed since
        assert decision.verdict is Verdict.CONFLICT and decision.update is None
        assert decision.conflicts == (Field.TICKET_STATE,)
        assert f'State was "Open" when exported, is now "{label}"' in decision.message
        assert decide(row, now, EXPORTED, overwrite_conflicts=True).verdict is Verdict.CHANGE


@pytest.mark.parametrize(
    ("fld", "key", "held"),
    [
        (Field.TICKET_DESCRIPTION, "TicketDescription", "  SSH permits root login "),
        (Field.TICKET_DESCRIPTION, "TicketDescription", "SSH permits root login\n"),
        (Field.TICKET_DESCRIPTION, "TicketDescription", "\tSSH permits root login\r\n"),
        (Field.ASSIGNED_TO, "AssignedTo", " corp\\jsmith "),
        (Field.ASSIGNED_TO, "AssignedTo", "corp\\jsmith\n"),
    ],
)
def test_surrounding_white_space_the_ticket_holds_is_no_change(
    fld: Field, key: str, held: str
) -> None:
    now = {**TICKET, key: held}
    # The row's values as validation leaves them (trimmed), e.g. an untouched exported row.
    row = update(
        state=TicketState.OPEN,
        priority="Low",
        assigned_to="corp\\jsmith",
        description="SSH permits root login",
    )
    exported = {**EXPORTED, fld: held}
    assert decide(row, now, exported).verdict is Verdict.UNCHANGED
    assert decide(row, now).verdict is Verdict.UNCHANGED
    # Another field changed: the one with white space is still not sent.
    other = {**TICKET, key: held, "Priority": "High"}
    decision = decide(row, other)
    assert decision.verdict is Verdict.CHANGE
    assert sent(decision) == {"TicketNumber": "INCA0000001", "Priority": "Low"}


@pytest.mark.parametrize(
    ("key", "held", "wanted"),
    [
        ("TicketDescription", "SSH  permits root login", "SSH permits root login"),  # inner
        ("TicketDescription", "ssh permits root login", "SSH permits root login"),  # case
        ("AssignedTo", "corp\\JSmith", "corp\\jsmith"),  # Assigned To's case counts
        ("AssignedTo", "corp\\j smith", "corp\\jsmith"),
        # A value asked for with its white space (a rollback's, sent exactly) must match exactly.
        ("TicketDescription", "SSH permits root login", " SSH permits root login"),
    ],
)
def test_inner_white_space_and_case_are_still_changes(key: str, held: str, wanted: str) -> None:
    now = {**TICKET, key: held}
    fields = {"description": wanted} if key == "TicketDescription" else {"assigned_to": wanted}
    decision = decide(update(priority="Low", **fields), now)
    assert decision.verdict is Verdict.CHANGE
    assert sent(decision)[key] == wanted


@pytest.mark.parametrize(
    ("key", "exported", "held", "inner"),
    [
        (
            "TicketDescription",
            "  SSH permits root login ",
            "SSH permits root login",
            "SSH  permits root login",
        ),
        (
            "TicketDescription",
            "SSH permits root login",
            "SSH permits root login\n",
            "SSH permits\nroot login",
        ),
        ("AssignedTo", "corp\\jsmith", "  corp\\jsmith", "corp\\j smith"),
    ],
)
def test_surrounding_white_space_since_the_export_is_no_conflict(
    key: str, exported: str, held: str, inner: str
) -> None:
    fld = Field(key)
    fields = {"description": "Patched"} if key == "TicketDescription" else {"assigned_to": "x"}
    row = update(priority="Low", **fields)
    decision = decide(row, {**TICKET, key: held}, {**EXPORTED, fld: exported})
    assert decision.verdict is Verdict.CHANGE and decision.conflicts == ()
    # Inner white space changed since the export is a change made in CCS: a conflict.
    changed = decide(row, {**TICKET, key: inner}, {**EXPORTED, fld: exported})
    assert changed.verdict is Verdict.CONFLICT and changed.conflicts == (fld,)


VALUES = (None, "x", 2.5, "Open", "3", 3, "", " 2 ", True, [1], {"a": 1})


@pytest.mark.parametrize("name", [fld.value for fld in Field])
def test_same_value_never_raises(name: str) -> None:
    for sent_value in VALUES:
        for held_value in VALUES:
            assert isinstance(same_value(name, sent_value, held_value), bool)


@pytest.mark.parametrize(
    ("sent_value", "held_value", "same"),
    [
        (3, "3", True),
        ("3", 3, True),
        ("Open", 1, True),
        (1, "open", True),
        (2, "Remediation Performed", True),
        (2, 3, False),
        (None, 3, False),
        (3, None, False),
        ("x", 3, False),
        (2.5, 2, False),
        (2.5, "2.5", True),  # not a state: compared as text
        ("x", "X", True),
    ],
)
def test_same_value_of_a_state(sent_value: object, held_value: object, same: bool) -> None:
    assert same_value("TicketState", sent_value, held_value) is same


def test_an_empty_or_odd_exported_state_does_not_raise() -> None:
    row = update(state=TicketState.NOT_APPLICABLE, priority="Low")
    for odd in (None, "", "x", 2.5):
        decision = decide(row, TICKET, {**EXPORTED, Field.TICKET_STATE: odd})
        assert decision.verdict is Verdict.CONFLICT  # not what the ticket holds: safe, not sent


def test_a_priority_sent_as_a_number_is_the_servers_name_at_that_place() -> None:
    names = ("Low", "Medium", "High")
    # priority_format: integer; the server answers with the name.
    same = decide(update(priority=1), TICKET, priorities=names)
    assert same.verdict is Verdict.UNCHANGED
    raised = decide(update(priority=3), TICKET, priorities=names)
    assert sent(raised) == {"TicketNumber": "INCA0000001", "Priority": 3}
    exported = {Field.PRIORITY: "Low"}
    moved = decide(update(priority=3), {**TICKET, "Priority": "Medium"}, exported, priorities=names)
    assert moved.verdict is Verdict.CONFLICT
    # Without the names, a number is not a name: the row is sent.
    assert decide(update(priority=1), TICKET).verdict is Verdict.CHANGE
