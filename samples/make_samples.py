"""Regenerate samples/tickets.xlsx and samples/tickets.csv (run from the repository root).

The samples are what `batch-update samples/tickets.xlsx --simulate` sends to the built-in
simulator. Each row is there to show one outcome a real sweep can have; the INTENDED column of
ROWS below says which, and tests/test_samples.py checks every row ends that way.
"""

from __future__ import annotations

import csv
from pathlib import Path

TITLE = "Remediation tickets - November sweep"
SUBTITLE = "Exported from the CCS Remediation workspace; edited by the compliance team"
HEADERS = [
    "Ticket Number",
    "Asset",
    "Standard",
    "State",
    "Priority",
    "Assigned To",
    "Description",
    "Notes",
]

# (intended outcome, cells...). Ticket numbers follow the simulator's store: INCA0000001 to
# INCA0001000 exist; INCA0000990-999 belong to a standard the demo administrator may not touch.
ROWS: list[tuple[str, list[object]]] = [
    (
        "Updated",
        [
            "INCA0000101",
            "WEB-PRD-01",
            "CIS Windows Server 2022",
            2,
            "High",
            "corp\\jsmith",
            "Patched KB5034441 and rebooted",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000102",
            "WEB-PRD-02",
            "CIS Windows Server 2022",
            "Remediation Performed",
            "High",
            "corp\\jsmith",
            "Patched KB5034441 and rebooted",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000103",
            "SQL-PRD-01",
            "CIS SQL Server 2019",
            3,
            "Medium",
            "corp\\akhan",
            "Verified by rescan",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000104",
            "SQL-PRD-02",
            "CIS SQL Server 2019",
            "verified",
            "medium",
            "a.khan@corp.example",
            "Verified by rescan",
            "assignee by e-mail",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000105",
            "DC-01",
            "DISA STIG AD",
            5,
            "Low",
            "",
            "Control not applicable: server decommissioned",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000106",
            "DC-02",
            "DISA STIG AD",
            "Not Applicable",
            "Low",
            "",
            "Decommissioned in October",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000107",
            "APP-UAT-01",
            "PCI DSS 4.0",
            1,
            "High",
            "corp\\mgarcia",
            "Reopened: fix rolled back",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000108",
            "APP-UAT-02",
            "PCI DSS 4.0",
            4,
            "High",
            "corp\\mgarcia",
            "Remediation failed: vendor patch missing",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000109",
            "FS-01",
            "CIS Windows Server 2019",
            2.0,
            "Medium",
            "corp\\jsmith",
            "SMBv1 disabled",
            "state typed as 2.0",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000110",
            "FS-02",
            "CIS Windows Server 2019",
            "2",
            "Medium",
            "corp\\jsmith",
            "SMBv1 disabled",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000111",
            "LNX-WEB-01",
            "CIS RHEL 9",
            "",
            "Low",
            "corp\\tnguyen",
            "",
            "only priority and assignee change",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000112",
            "LNX-WEB-02",
            "CIS RHEL 9",
            "",
            "High",
            "",
            "Escalated: internet facing",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000113",
            "LNX-DB-01",
            "CIS RHEL 9",
            "Remediation performed",
            "Medium",
            "corp\\tnguyen",
            "auditd rules deployed",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000114",
            "LNX-DB-02",
            "CIS RHEL 9",
            2,
            "Medium",
            "corp\\tnguyen",
            "auditd rules deployed",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000115",
            "EXCH-01",
            "CIS Exchange 2019",
            2,
            "High",
            "corp\\jsmith",
            "- TLS 1.0 disabled\n- TLS 1.1 disabled",
            "description starts with a dash",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000116",
            "EXCH-02",
            "CIS Exchange 2019",
            2,
            "High",
            "corp\\jsmith",
            "=Applied the same GPO as EXCH-01",
            "starts with = and stays text",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000117",
            "VPN-01",
            "NIST 800-53 AC-17",
            3,
            "Low",
            "corp\\akhan",
            "MFA enforced for all VPN users",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000118",
            "VPN-02",
            "NIST 800-53 AC-17",
            3,
            "Low",
            "corp\\akhan",
            "MFA enforced for all VPN users",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000119",
            "HR-APP-01",
            "ISO 27001 A.8",
            2,
            "Medium",
            "corp\\mgarcia",
            "Session timeout set to 15 minutes",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000120",
            "HR-APP-02",
            "ISO 27001 A.8",
            2,
            "Medium",
            "corp\\mgarcia",
            "Session timeout set to 15 minutes",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000121",
            "PAY-01",
            "PCI DSS 4.0",
            2,
            "High",
            "corp\\jsmith",
            "Weak ciphers removed (Zürich datacentre)",
            "accented text",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000122",
            "PAY-02",
            "PCI DSS 4.0",
            2,
            "High",
            "corp\\jsmith",
            "Weak ciphers removed",
            "",
        ],
    ),
    (
        "Failed 404",
        [
            "INCA0009999",
            "OLD-SRV-99",
            "CIS Windows Server 2012",
            2,
            "Low",
            "corp\\jsmith",
            "Patched",
            "no such ticket",
        ],
    ),
    (
        "Failed 404",
        [
            "INCA0012345",
            "OLD-SRV-98",
            "CIS Windows Server 2012",
            3,
            "Low",
            "corp\\jsmith",
            "Verified",
            "no such ticket",
        ],
    ),
    (
        "Failed 403",
        [
            "INCA0000993",
            "FIN-ERP-01",
            "SOX Finance (restricted)",
            2,
            "High",
            "corp\\jsmith",
            "Patched",
            "no permission on this standard",
        ],
    ),
    (
        "Failed 403",
        [
            "INCA0000995",
            "FIN-ERP-02",
            "SOX Finance (restricted)",
            2,
            "High",
            "corp\\jsmith",
            "Patched",
            "no permission on this standard",
        ],
    ),
    (
        "Failed 500",
        [
            "INCA0000777",
            "LEGACY-01",
            "CIS Windows Server 2016",
            2,
            "Medium",
            "corp\\akhan",
            "Patched",
            "the server fails on this ticket every time",
        ],
    ),
    (
        "Invalid",
        [
            "INCA0000130",
            "WEB-DEV-01",
            "CIS Windows Server 2022",
            "Done",
            "Low",
            "corp\\jsmith",
            "Patched",
            "not a ticket state",
        ],
    ),
    (
        "Invalid",
        [
            "INCA0000131",
            "WEB-DEV-02",
            "CIS Windows Server 2022",
            2,
            "",
            "corp\\jsmith",
            "Patched",
            "priority missing",
        ],
    ),
    (
        "Invalid",
        [
            "INCA0000132",
            "WEB-DEV-03",
            "CIS Windows Server 2022",
            7,
            "Urgent",
            "corp\\jsmith",
            "Patched",
            "bad state and bad priority",
        ],
    ),
    (
        "Invalid duplicate",
        [
            "INCA0000140",
            "SQL-DEV-01",
            "CIS SQL Server 2019",
            2,
            "Medium",
            "corp\\akhan",
            "Patched",
            "same ticket twice",
        ],
    ),
    ("Skipped", ["", "", "", "", "", "", "", ""]),
    (
        "Invalid duplicate",
        [
            "INCA0000140",
            "SQL-DEV-01",
            "CIS SQL Server 2019",
            3,
            "Medium",
            "corp\\akhan",
            "Verified",
            "same ticket twice",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000141",
            "SQL-DEV-02",
            "CIS SQL Server 2019",
            2,
            "Low",
            "corp\\akhan",
            "Patched",
            "",
        ],
    ),
    (
        "Updated",
        [
            "INCA0000142",
            "SQL-DEV-03",
            "CIS SQL Server 2019",
            2,
            "Low",
            "corp\\akhan",
            "Patched",
            "",
        ],
    ),
    ("Skipped", ["", "", "", "", "", "", "", ""]),
    (
        "Updated",
        [
            "inca0000143",
            "SQL-DEV-04",
            "CIS SQL Server 2019",
            2,
            "Low",
            "corp\\akhan",
            "Patched",
            "lower-case ticket number",
        ],
    ),
]
FIRST_DATA_ROW = 5  # title, subtitle, an empty row, then the header on row 4


def intended_outcomes() -> dict[int, str]:
    """Excel row number -> the outcome the sample intends for that row."""
    return {FIRST_DATA_ROW + i: intended for i, (intended, _) in enumerate(ROWS)}


def write_xlsx(path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "Tickets"
    ws.append([TITLE])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([SUBTITLE])
    ws.append([])
    ws.append(HEADERS)
    for cell in ws[4]:
        cell.font = Font(bold=True)
    for _, cells in ROWS:
        ws.append([None if c == "" else c for c in cells])
    # openpyxl stores a str starting with "=" as a formula; in Excel the user typed it as text.
    for cell in ws["G"]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
    widths = [14, 14, 28, 24, 10, 22, 44, 36]
    for letter, width in zip("ABCDEFGH", widths):
        ws.column_dimensions[letter].width = width
    readme = wb.create_sheet("Read me")
    readme.append(["Edit State, Priority, Assigned To and Description on the Tickets sheet."])
    readme.append(["An empty cell leaves that field as it is in CCS."])
    wb.save(path)


def write_csv(path: Path) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([TITLE])
        writer.writerow([SUBTITLE])
        writer.writerow([])
        writer.writerow(HEADERS)
        for _, cells in ROWS:
            writer.writerow(cells)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    write_xlsx(here / "tickets.xlsx")
    write_csv(here / "tickets.csv")
    print(f"wrote {len(ROWS)} rows to samples/tickets.xlsx and samples/tickets.csv")
