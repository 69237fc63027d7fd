"""The results workbook (and CSV) that goes to the auditors.

One sheet "Results" repeats every input column exactly as read and adds what became of each row;
a sheet "Summary" says who ran what, where, when, with which input, and reconciles the counts; a
sheet "Legend" explains the columns and outcomes, so that the workbook explains itself.

Every value passes `safe_text()` on its way out, and text a spreadsheet could take for a formula
is written as a text cell with Excel's quote-prefix style: no cell is ever a formula (OWASP CSV
injection), and the value stays exactly the original (a rollback or a re-used workbook sends what
was there). Only the CSV, which has no cell types, gets the OWASP apostrophe (`csv_text()`). Files are written to a
temporary file beside the target and moved into place at the end; an existing file is never
overwritten and the input is never written to. openpyxl is imported in this package and nowhere else.

Modules: `cells` (safe_text, csv_text, text cells), `layout` (columns, meanings, row values),
`paths` (names, checks, atomic moves), `results` (write_results), `summary` (Summary, Run,
Legend), `rollback_book` (the rollback workbook), `export_book` (the export workbook: the tickets
a Search returned, to edit for a sweep).
"""

from .cells import (
    EXCEL_CELL_LIMIT,
    FORMULA_TRIGGERS,
    REPLACEMENT_CHARACTER,
    SENT_AT_FORMAT,
    TRUNCATION_MARKER,
    csv_text,
    safe_text,
)
from .compare_book import write_comparison
from .export_book import (
    EXPORT_ITEM_HEADERS,
    EXPORT_NOTE,
    PRIORITY_CHOICES_HEADER,
    write_export,
)
from .layout import (
    BEFORE_COLUMNS,
    COLLISION_SUFFIX,
    COLUMN_MEANINGS,
    LEGEND_SHEET,
    OUTCOME_COLOURS,
    OUTCOME_MEANINGS,
    OUTCOME_ORDER,
    RESULT_COLUMNS,
    RESULTS_SHEET,
    RUN_SHEET,
    SAFETY_NOTE,
    SUMMARY_SHEET,
    TITLE,
    VERIFICATION_COLUMN,
    evidence_columns,
    result_headers,
)
from .paths import check_output_path, default_results_path, free_path, write_atomically
from .plan_book import plan_sha256_in, write_plan_book
from .results import write_results
from .rollback_book import ROLLBACK_HEADERS, default_rollback_path, rollback_rows, write_rollback

__all__ = [
    "BEFORE_COLUMNS",
    "COLLISION_SUFFIX",
    "COLUMN_MEANINGS",
    "EXCEL_CELL_LIMIT",
    "EXPORT_ITEM_HEADERS",
    "EXPORT_NOTE",
    "FORMULA_TRIGGERS",
    "LEGEND_SHEET",
    "OUTCOME_COLOURS",
    "OUTCOME_MEANINGS",
    "OUTCOME_ORDER",
    "PRIORITY_CHOICES_HEADER",
    "REPLACEMENT_CHARACTER",
    "RESULTS_SHEET",
    "RESULT_COLUMNS",
    "ROLLBACK_HEADERS",
    "RUN_SHEET",
    "SAFETY_NOTE",
    "SENT_AT_FORMAT",
    "SUMMARY_SHEET",
    "TITLE",
    "TRUNCATION_MARKER",
    "VERIFICATION_COLUMN",
    "check_output_path",
    "csv_text",
    "default_results_path",
    "default_rollback_path",
    "evidence_columns",
    "free_path",
    "plan_sha256_in",
    "result_headers",
    "rollback_rows",
    "safe_text",
    "write_atomically",
    "write_comparison",
    "write_export",
    "write_plan_book",
    "write_results",
    "write_rollback",
]
