"""batch-update: apply a spreadsheet of changes to CCS remediation tickets, with evidence."""

__version__ = "0.1.0"
