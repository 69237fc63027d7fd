"""What a plan is: the document `batch-update plan` writes, its approval, and what `apply` decides
from them (Terraform's saved plan, for tickets).

A plan holds, for every row of its input, what was decided against the tickets as they were read
(Change, Unchanged, Conflict, Failed, Invalid, Skipped), the exact PATCH body of every change, and
a fingerprint of each ticket's current values (State, Priority, Assigned To, Description). Its
SHA-256 is taken over its canonical JSON without the hash itself, so an edit of the file is
evident; an approval names that SHA-256. `apply` sends the planned bodies only to tickets whose
values still have the planned fingerprint; any other row that the plan holds is not sent.

The hashes make a change evident, not impossible: whoever controls the files can write a new
plan and hash it again. The approver's CCS login is what makes the approver's identity real.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from .changes import FIELD_LABELS, Decision, Verdict, priority_number, shown_value
from .errors import InputError
from .tickets import Field, TicketUpdate, ticket_field

PLAN_FORMAT = "batch-update plan"
APPROVAL_FORMAT = "batch-update approval"
FORMAT_VERSION = 1
# The fields whose current values a plan fingerprints: the ones a row can change.
FINGERPRINTED = (Field.TICKET_STATE, Field.PRIORITY, Field.ASSIGNED_TO, Field.TICKET_DESCRIPTION)


class PlanVerdict(str, Enum):
    """What the plan decided for a row."""

    CHANGE = "Change"
    UNCHANGED = "Unchanged"
    CONFLICT = "Conflict"
    FAILED = "Failed"  # the ticket could not be read (404, 403, or no answer)
    INVALID = "Invalid"
    SKIPPED = "Skipped"  # a blank row

    def __str__(self) -> str:
        return self.value


COUNT_ORDER = tuple(PlanVerdict)


def canonical_json(document: Mapping[str, object]) -> str:
    """The one spelling of a document that its SHA-256 is taken over."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def document_sha256(document: Mapping[str, object], own_key: str) -> str:
    """The SHA-256 of a document's canonical JSON, without the key that holds this hash."""
    body = {key: value for key, value in document.items() if key != own_key}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def item(document: Mapping[str, object], *keys: str) -> str:
    """A value of a document by its keys (`item(plan, "input", "path")`), as text ("" if none)."""
    value: object = document
    for key in keys:
        value = value.get(key, "") if isinstance(value, Mapping) else ""
    return "" if value is None else str(value)


def current_values(ticket: Mapping[str, object]) -> dict[str, object]:
    """The fingerprinted fields of a ticket as the server gave them (keys in the contract's
    spelling, whatever case the server used; a field it did not give is absent)."""
    values: dict[str, object] = {}
    for fld in FINGERPRINTED:
        found, value = ticket_field(ticket, fld.value)
        if found:
            values[fld.value] = value
    return values


def fingerprint(ticket: Mapping[str, object]) -> str:
    """The SHA-256 of a ticket's fingerprinted values exactly as the server gave them: any
    change of State, Priority, Assigned To or Description changes it."""
    return hashlib.sha256(canonical_json(current_values(ticket)).encode("utf-8")).hexdigest()


def now_iso(moment: datetime | None = None) -> str:
    return (
        (moment or datetime.now(timezone.utc))
        .astimezone(timezone.utc)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def parse_iso(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# -- a plan as apply reads it -------------------------------------------------------------------


@dataclass(frozen=True)
class PlanRow:
    """One row of a plan: what was decided, what is sent, and what the ticket held."""

    row: int
    ticket: str
    verdict: PlanVerdict
    body: TicketUpdate | None  # the exact PATCH of a change
    current: Mapping[str, object] | None  # the fingerprinted values when planned
    fingerprint: str | None
    message: str
    status: int | None = None


@dataclass(frozen=True)
class Plan:
    """A plan file read and checked: the document, its SHA-256 and its rows by row number."""

    path: Path
    document: Mapping[str, object]
    sha256: str
    rows: Mapping[int, PlanRow]

    def text(self, *keys: str) -> str:
        return item(self.document, *keys)

    @property
    def requires_approval(self) -> bool:
        """Made under plan.require_approval: applied only approved, whatever config applies it."""
        settings = self.document.get("settings")
        return isinstance(settings, Mapping) and settings.get("require_approval") is True

    @property
    def ccs_account(self) -> str:
        return self.text("ccs_account")

    @property
    def planner(self) -> str:
        """'corp\\ccsadmin (ops on ops-laptop)': the CCS account and who made the plan where."""
        return f"{self.ccs_account} ({self.text('planner', 'os_user')} on {self.text('planner', 'host')})"

    @property
    def expires_at(self) -> datetime | None:
        return parse_iso(self.document.get("expires_at"))

    @property
    def simulated(self) -> bool:
        return self.document.get("simulated") is True

    def count(self, verdict: PlanVerdict) -> int:
        return sum(1 for row in self.rows.values() if row.verdict is verdict)


def plan_from_text(path: Path, text: str) -> Plan:
    """The plan a file holds, refused with a message that says what is wrong with it."""
    name = path.name
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{name} is not a batch-update plan (it is not JSON).") from exc
    if not isinstance(document, dict) or document.get("format") != PLAN_FORMAT:
        raise InputError(
            f"{name} is not a batch-update plan.",
            tip="Give the .plan-....json file that batch-update plan wrote.",
        )
    if document.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{name} is a plan of format {document.get('format_version')!r}; this version of "
            f"batch-update reads format {FORMAT_VERSION}.",
            tip="Make the plan again with this version (batch-update plan FILE).",
        )
    recorded = document.get("plan_sha256")
    actual = document_sha256(document, "plan_sha256")
    if recorded != actual:
        raise InputError(
            f"{name} has been changed since it was made: its SHA-256 is {actual[:16]}..., the plan "
            f"records {str(recorded)[:16]}.... A changed plan is not what was approved; nothing "
            "was sent.",
            tip="Make a new plan (batch-update plan FILE) and have it approved again.",
        )
    try:
        rows = {row.row: row for row in (_planned_row(item) for item in document["rows"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{name} is not a readable batch-update plan ({exc}).") from exc
    return Plan(path, document, actual, rows)


def _planned_row(item: Mapping[str, object]) -> PlanRow:
    body = item.get("body")
    update = TicketUpdate.from_json_text(json.dumps(body)) if isinstance(body, dict) else None
    verdict = PlanVerdict(item["verdict"])
    if verdict is PlanVerdict.CHANGE and update is None:
        raise ValueError(f"row {item.get('row')} is a change without a PATCH body")
    current = item.get("current")
    status = item.get("status")
    return PlanRow(
        row=int(item["row"]),  # type: ignore[call-overload]
        ticket=str(item.get("ticket") or ""),
        verdict=verdict,
        body=update,
        current=current if isinstance(current, dict) else None,
        fingerprint=str(item["fingerprint"]) if item.get("fingerprint") else None,
        message=str(item.get("message") or ""),
        status=status if isinstance(status, int) else None,
    )


def read_plan(path: Path) -> Plan:
    """The plan file at path, read and checked (its own SHA-256)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"{path.name}: file not found ({path}).") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name} cannot be read: {exc}.") from exc
    return plan_from_text(path, text)


def check_expiry(plan: Plan, *, continuing: str = "") -> None:
    """Refuse an expired plan: the tickets may have moved since it was made (a resume or retry
    of its apply too: `continuing` names the run)."""
    expires = plan.expires_at
    if expires is None or expires > datetime.now(timezone.utc):
        return
    what = (
        f"run {continuing} applied it; it cannot be continued"
        if continuing
        else "the tickets may have moved since"
    )
    raise InputError(
        f"{plan.path.name} expired at {plan.text('expires_at')} (made {plan.text('made_at')}): "
        f"{what}. Nothing was sent.",
        tip="Make a new plan (batch-update plan FILE) of what is still to change, and have it "
        "approved; plan.expiry_days sets how long a plan stays valid.",
    )


def decide_planned(planned: PlanRow, ticket: Mapping[str, object]) -> Decision:
    """What `apply` does with a row, from the plan and the ticket's values read now.

    The planned body is sent only if the ticket still has the planned fingerprint; a ticket
    that moved since the plan is a Conflict (naming what moved), and so is one the plan could
    not read. A row the plan does not change stays as planned: nothing is sent.
    """
    if planned.fingerprint is None:
        return Decision(
            Verdict.CONFLICT,
            None,
            "the ticket could not be read when the plan was made"
            + (f" ({planned.message})" if planned.message else "")
            + "; the plan holds no change for it; nothing was sent",
        )
    if fingerprint(ticket) != planned.fingerprint:
        return Decision(
            Verdict.CONFLICT,
            None,
            f"changed in CCS since the plan: {moved(planned.current or {}, ticket)}; not sent "
            "(make a new plan to change it)",
        )
    if planned.verdict is PlanVerdict.CHANGE:
        return Decision(Verdict.CHANGE, planned.body, planned.message)
    if planned.verdict is PlanVerdict.UNCHANGED:
        return Decision(
            Verdict.UNCHANGED, None, "the ticket already holds these values; nothing was sent"
        )
    return Decision(Verdict.CONFLICT, None, planned.message or "a Conflict in the plan; not sent")


def moved(planned: Mapping[str, object], ticket: Mapping[str, object]) -> str:
    """What changed between the values a plan recorded and the ticket's now, in words."""
    now = current_values(ticket)
    said = [
        f"{FIELD_LABELS[fld]} was {shown_value(fld, planned.get(fld.value))} when planned, is now "
        f"{shown_value(fld, now.get(fld.value))}"
        for fld in FINGERPRINTED
        if canonical_json({"v": planned.get(fld.value)})
        != canonical_json({"v": now.get(fld.value)})
    ]
    return "; ".join(said) or "its values differ from the plan's"


def check_against_rows(plan: Plan, updates: Mapping[int, TicketUpdate | None]) -> None:
    """Refuse a plan whose changes are not the sheet's rows as validation reads them now (by row
    number): a body for another ticket, or with a value the row does not ask for, is an edit of
    the plan, whatever its SHA-256 says. Priority may be the ticket's when the row has none."""
    for number, planned in sorted(plan.rows.items()):
        if planned.verdict is not PlanVerdict.CHANGE or planned.body is None:
            continue
        row = updates.get(number)
        body = planned.body
        problem = ""
        if row is None:
            problem = "the sheet's row is not a valid change"
        elif ticket_key(body.ticket_number) != ticket_key(row.ticket_number):
            problem = (
                f"its PATCH is for {body.ticket_number}, the row's ticket is {row.ticket_number}"
            )
        else:
            for name, value in json.loads(body.to_json_text()).items():
                asked = json.loads(row.to_json_text()).get(name)
                if name == "Priority" and row.priority is None:
                    asked = (planned.current or {}).get("Priority")
                if name != "TicketNumber" and asked != value:
                    problem = f"its PATCH sends {name} {value!r}, the row asks {asked!r}"
                    break
        if problem:
            raise InputError(
                f"{plan.path.name}, row {number}: {problem}. The plan's changes are not the "
                "sheet's: the plan was edited. Nothing was sent.",
                tip="Make a new plan (batch-update plan FILE) and have it approved.",
            )


def ticket_key(number: str) -> str:
    return number.strip().upper()


# -- files ----------------------------------------------------------------------------------------


def document_text(document: Mapping[str, object], own_key: str) -> tuple[str, str]:
    """A plan's or an approval's file text, with its own SHA-256 under own_key; and that hash."""
    sha = document_sha256(document, own_key)
    return json.dumps({**document, own_key: sha}, indent=2, ensure_ascii=False) + "\n", sha


def approval_path(plan_path: Path) -> Path:
    """`tickets.plan-20261203-204000.json` -> `tickets.plan-20261203-204000.approval.json`."""
    return plan_path.with_suffix(".approval.json")


@dataclass(frozen=True)
class Approval:
    """An approval (or a rejection) of one plan, read and checked."""

    path: Path
    document: Mapping[str, object]
    sha256: str

    @property
    def approved(self) -> bool:
        return self.document.get("decision") == "approved"

    @property
    def approver(self) -> str:
        """'corp\\auditor (jane on audit-pc)': the CCS account and who decided where."""
        doc = self.document
        who = doc.get("approver") if isinstance(doc.get("approver"), Mapping) else {}
        assert isinstance(who, Mapping)
        return f"{doc.get('ccs_account', '')} ({who.get('os_user', '')} on {who.get('host', '')})"

    @property
    def reason(self) -> str:
        return str(self.document.get("reason") or "")

    @property
    def at(self) -> str:
        return str(self.document.get("decided_at") or "")


def read_approval(plan: Plan) -> Approval | None:
    """The approval beside a plan, checked: its own SHA-256 and the plan it names; None if
    there is none."""
    path = approval_path(plan.path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name} cannot be read: {exc}.") from exc
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict) or document.get("format") != APPROVAL_FORMAT:
        raise InputError(f"{path.name} is not a batch-update approval.")
    actual = document_sha256(document, "approval_sha256")
    if document.get("approval_sha256") != actual:
        raise InputError(
            f"{path.name} has been changed since it was written (its SHA-256 does not match); "
            "it is not the approval that was given. Nothing was sent.",
            tip="Have the plan approved again: remove the changed file and run batch-update "
            f"approve {plan.path.name}.",
        )
    if document.get("plan_sha256") != plan.sha256:
        raise InputError(
            f"{path.name} approves another plan (SHA-256 {str(document.get('plan_sha256'))[:16]}"
            f"...), not {plan.path.name} ({plan.sha256[:16]}...). Nothing was sent.",
            tip=f"Have this plan approved: batch-update approve {plan.path.name}.",
        )
    return Approval(path, document, actual)


def same_account(a: str, b: str) -> bool:
    """Whether two CCS account names may be one account (the approver is not the planner):
    case-insensitive; `corp\\x`, `corp.local\\x` and `x@corp.local` are one; and a name without
    a domain is taken as the same as that name in any domain (when in doubt, the same)."""

    def parts(name: str) -> tuple[str, str]:
        name = name.strip().casefold()
        if "\\" in name:
            domain, _, user = name.partition("\\")
        elif "@" in name:
            user, _, domain = name.partition("@")
        else:
            domain, user = "", name
        return domain.split(".")[0], user

    (domain_a, user_a), (domain_b, user_b) = parts(a), parts(b)
    return user_a == user_b and (not domain_a or not domain_b or domain_a == domain_b)


def change_lines(
    update: TicketUpdate, ticket: Mapping[str, object], priorities: Sequence[str] = ()
) -> list[dict[str, str]]:
    """Each field a PATCH changes as {field, current, new}, in words (Priority only if it
    changes: the vendor makes every PATCH carry it). `priorities`: as for `changes.decide`."""
    lines = []
    sent = json.loads(update.to_json_text())
    for fld in FINGERPRINTED:
        if fld.value not in sent:
            continue
        found, held = ticket_field(ticket, fld.value)
        new = sent[fld.value]
        if fld is Field.PRIORITY and found and _same_priority(held, new, priorities):
            continue
        lines.append(
            {
                "field": FIELD_LABELS[fld],
                "current": shown_value(fld, held) if found else "(not given)",
                "new": shown_value(fld, new),
            }
        )
    return lines


def _same_priority(held: object, new: object, priorities: Sequence[str]) -> bool:
    if str(held).strip().casefold() == str(new).strip().casefold():
        return True
    return bool(priorities) and priority_number(held, priorities) == new


# -- a plan as a run records it ---------------------------------------------------------------


def plan_record(
    plan: Plan,
    approval: Approval | None,
    *,
    file_sha256: str = "",
    approval_file_sha256: str = "",
) -> dict[str, object]:
    """What a run that applies a plan records of it (RunInfo.plan, the journal): who planned
    and who approved, and both documents, so that a resume or a retry applies the same plan;
    the SHA-256 of the plan file and of the approval file as they were read (the manifest
    vouches for those bytes, not for whatever is there at the end)."""
    if approval is None:
        approved = "not approved (plan.require_approval is off)"
    elif approval.approved:
        approved = f"{approval.approver} at {approval.at}"
    else:
        approved = f"REJECTED by {approval.approver} at {approval.at}: {approval.reason}"
    return {
        "file": plan.path.name,
        "path": str(plan.path.resolve()),
        "sha256": plan.sha256,
        "planned_by": f"{plan.planner} at {plan.text('made_at')}",
        "approved_by": approved,
        "approved": approval is not None and approval.approved,
        "approval_file": str(approval.path.resolve()) if approval is not None else "",
        "approval_sha256": approval.sha256 if approval is not None else "",
        "file_sha256": file_sha256,
        "approval_file_sha256": approval_file_sha256,
        "document": dict(plan.document),
    }


def plan_of_record(record: Mapping[str, object]) -> Plan:
    """The plan a run recorded, checked again (its own SHA-256): a resume or a retry applies
    exactly it."""
    document = record.get("document")
    path = Path(str(record.get("path") or "plan.json"))
    if not isinstance(document, Mapping):
        raise InputError(f"The run's record of {path.name} holds no plan.")
    return plan_from_text(path, json.dumps(document, ensure_ascii=False))


def record_text(record: Mapping[str, object] | None, key: str) -> str:
    value = record.get(key) if record is not None else None
    return "" if value is None else str(value)
