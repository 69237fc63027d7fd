"""The run manifest: a sidecar JSON that ties a results workbook to its input and its journal.

`<results>.manifest.json` records who ran what, where, when and with which settings, and the
SHA-256 of the input file, of the results workbook and of the run journal's copy beside the
workbook (`<results>.journal.sqlite`: the journal itself stays in the per-user state folder, or
the configured journal folder, where a later resume, retry or report finds it). An export
workbook has one too (`build_export_manifest`): the export's identity and the workbook's hash. `check_manifest`
recomputes those hashes later, so an auditor can tell whether the three files are the ones the
run produced. The manifest never holds a password or a token (settings come from
Settings.describe(), which masks the password).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import InputError, OutputError
from .exported import ExportIdentity
from .tickets import RunInfo

MANIFEST_VERSION = 1
# The file a manifest sits beside: a run's results workbook, or an export workbook.
_WORKBOOK_ROLES = ("results", "export")
_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_path(results_path: Path) -> Path:
    """`tickets.results-20261130-031058.xlsx` -> `tickets.results-20261130-031058.manifest.json`."""
    return results_path.with_suffix(".manifest.json")


def journal_copy_path(results_path: Path) -> Path:
    """`tickets.results-20261130-031058.xlsx` -> `tickets.results-20261130-031058.journal.sqlite`:
    the copy of the finished run journal kept beside the workbook as evidence."""
    return results_path.with_suffix(".journal.sqlite")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def build_manifest(
    run: RunInfo, results_path: Path, *, files: dict[str, Path | None]
) -> dict[str, object]:
    """The manifest as a dict; `files` names the input, journal (and any other) files to hash."""
    hashed: dict[str, object] = {
        "results": {"path": str(results_path.resolve()), "sha256": sha256_of(results_path)}
    }
    for role, path in files.items():
        entry = _file_entry(path, _read_as(run, role))
        if entry is not None:
            hashed[role] = entry
    return {
        "manifest_version": MANIFEST_VERSION,
        "tool": "batch-update",
        "tool_version": run.tool_version,
        "python_version": run.python_version,
        "run_id": run.run_id,
        "follows": run.follows or None,
        "operator": run.operator,
        "ccs_user": run.ccs_user,
        "server_url": run.server_url,
        "mode": "dry run" if run.dry_run else "simulated" if run.simulated else "live",
        "started": _iso(run.started),
        "finished": _iso(run.finished),
        "stopped_reason": run.stopped_reason or None,
        "input_sha256_when_read": run.input_sha256,
        "run_journal": run.journal_path or None,
        "plan": {
            key: run.plan.get(key)
            for key in ("file", "sha256", "planned_by", "approved_by", "approval_sha256")
        }
        if run.plan
        else None,
        "settings": dict(run.settings),
        "files": hashed,
    }


def _read_as(run: RunInfo, role: str) -> str:
    """The SHA-256 of a file as the run read it ("" when it was not hashed then): the input's,
    and for an apply the plan file's and the approval's."""
    if role == "input":
        return run.input_sha256
    if run.plan and role in ("plan", "approval"):
        return str(run.plan.get("file_sha256" if role == "plan" else "approval_file_sha256") or "")
    return ""


def _file_entry(path: Path | None, read_as: str) -> dict[str, object] | None:
    """A file of the manifest: its path and SHA-256. The manifest vouches for the file the run
    read: one rewritten since is named as such (and one gone is recorded as read), never passed
    as the same."""
    if path is None:
        return None
    if not Path(path).is_file():
        if not read_as:
            return None
        return {"path": str(Path(path).resolve()), "sha256": read_as, "missing_at_end": True}
    entry: dict[str, object] = {"path": str(Path(path).resolve()), "sha256": sha256_of(Path(path))}
    if read_as and entry["sha256"] != read_as:
        entry = {
            **entry,
            "sha256": read_as,
            "sha256_at_end": entry["sha256"],
            "changed_during_run": True,
        }
    return entry


def build_export_manifest(identity: ExportIdentity, workbook: Path) -> dict[str, object]:
    """The manifest of an export workbook: the export's identity and the workbook's SHA-256."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "tool": "batch-update",
        "kind": "export",
        "tool_version": identity.tool_version,
        "operator": identity.operator,
        "ccs_user": identity.ccs_user,
        "server_url": identity.server_url,
        "mode": "simulated" if identity.simulated else "live",
        "exported_at": _iso(identity.exported_at),
        "query": [list(pair) for pair in identity.query],
        "tickets": identity.count,
        "rows_sha256": identity.rows_sha256,
        "page_size": identity.page_size,
        "search_requests": identity.requests,
        "files": {"export": {"path": str(workbook.resolve()), "sha256": sha256_of(workbook)}},
    }


def write_export_manifest(identity: ExportIdentity, workbook: Path) -> Path:
    """Write `<export>.manifest.json` beside an export workbook (never over an existing file)."""
    return _write_json(manifest_path(workbook), build_export_manifest(identity, workbook))


def _write_json(target: Path, data: dict[str, object]) -> Path:
    try:
        with open(target, "x", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
    except FileExistsError as exc:
        raise OutputError(f"{target} exists already; batch-update will not overwrite it.") from exc
    except OSError as exc:
        raise OutputError(f"Could not write the manifest {target}: {exc.strerror or exc}.") from exc
    return target


def write_manifest(
    run: RunInfo, results_path: Path, *, files: dict[str, Path | None], target: Path | None = None
) -> Path:
    """Write `<results>.manifest.json` beside the workbook (never over an existing file)."""
    target = target or manifest_path(results_path)
    return _write_json(target, build_manifest(run, results_path, files=files))


@dataclass(frozen=True)
class FileCheck:
    """One file of a manifest, checked again: its role, where it is, and what was found."""

    role: str
    path: str
    expected: str
    found: str | None  # None: the file is missing
    changed_during_run: bool = False  # the input was rewritten while the run was going on

    @property
    def ok(self) -> bool:
        return self.found == self.expected

    def describe(self) -> str:
        if self.found is None:
            return f"{self.role}: {self.path} is missing"
        if self.ok:
            return f"{self.role}: {self.path} is unchanged (SHA-256 {self.expected[:16]}...)"
        if self.changed_during_run:
            return (
                f"{self.role}: {self.path} has CHANGED: it was rewritten during the run (SHA-256 "
                f"now {self.found[:16]}..., the run read {self.expected[:16]}...)"
            )
        return (
            f"{self.role}: {self.path} has CHANGED (SHA-256 now {self.found[:16]}..., "
            f"the manifest records {self.expected[:16]}...)"
        )


def check_manifest(results_path: Path) -> list[FileCheck]:
    """Recompute the hashes a results workbook's manifest records; one FileCheck per file.

    The workbook is looked for where it is now (it may have been moved or sent on); the input and
    the journal where the run recorded them, else beside the workbook under the same name.
    """
    given_manifest = results_path.name.casefold().endswith(".manifest.json")
    path = results_path if given_manifest else manifest_path(results_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if given_manifest:
            # The manifest was named: its workbook is the one beside it, under the name it records.
            workbook = files.get("results") or files["export"]
            results_path = path.parent / Path(workbook["path"]).name
    except FileNotFoundError as exc:
        if given_manifest:
            raise InputError(f"{path.name}: file not found ({path}).") from exc
        raise InputError(
            f"{results_path.name}: no manifest beside it ({path.name} is missing).",
            tip="The manifest is written next to the results workbook at the end of a live run; "
            "keep the two together.",
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path.name} is not a batch-update manifest (unreadable JSON).") from exc
    checks = []
    for role, entry in files.items():
        recorded = Path(entry["path"])
        if role in _WORKBOOK_ROLES:
            candidate = results_path
        elif recorded.is_file():
            candidate = recorded
        else:
            candidate = results_path.parent / recorded.name
        found = sha256_of(candidate) if candidate.is_file() else None
        checks.append(
            FileCheck(
                role, str(candidate), entry["sha256"], found, bool(entry.get("changed_during_run"))
            )
        )
    return checks
