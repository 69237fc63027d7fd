"""The domain types: the request body and the read-back comparison."""

from __future__ import annotations

from batch_updater.tickets import Outcome, TicketState, TicketUpdate, compare_ticket

UPDATE = TicketUpdate(
    "INCA0000009", TicketState.REMEDIATION_PERFORMED, "Patched", "Medium", "corp\\sysadmin"
)


def test_request_body_uses_the_documented_names_and_leaves_out_unchanged_fields() -> None:
    assert UPDATE.to_json_text() == (
        '{"TicketNumber": "INCA0000009", "TicketState": 2, "TicketDescription": "Patched", '
        '"Priority": "Medium", "AssignedTo": "corp\\\\sysadmin"}'
    )
    assert TicketUpdate("INCA1", priority="Low").to_json() == {
        "TicketNumber": "INCA1",
        "Priority": "Low",
    }
    assert (
        TicketUpdate("INCA1", description="ü").to_json_text()
        == '{"TicketNumber": "INCA1", "TicketDescription": "ü"}'
    )


def test_state_labels() -> None:
    assert TicketState.NOT_APPLICABLE.label == "Not Applicable"
    assert str(Outcome.NOT_SENT) == "Not sent"


def test_compare_ticket_matches_loosely_typed_answers() -> None:
    held = {
        "ticketnumber": "INCA0000009",
        "TicketState": "2",
        "TicketDescription": "Patched",
        "priority": "medium",
        "AssignedTo": "corp\\sysadmin",
    }
    assert compare_ticket(UPDATE, held) == []
    assert compare_ticket(UPDATE, {**held, "TicketState": "Remediation Performed"}) == []


def test_compare_ticket_names_every_difference() -> None:
    held = {"TicketState": 1, "Priority": "Low", "AssignedTo": "corp\\sysadmin"}
    assert compare_ticket(UPDATE, held) == [
        "TicketState is 1, expected 2",
        "TicketDescription is missing from the server's answer",
        'Priority is "Low", expected "Medium"',
    ]
    assert compare_ticket(TicketUpdate("INCA1", assigned_to="x"), {"AssignedTo": None}) == [
        'AssignedTo is null, expected "x"'
    ]
