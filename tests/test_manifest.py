"""The run manifest: written beside the workbook, and a check that notices a one-byte change."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from batch_updater.errors import InputError, OutputError
from batch_updater.manifest import check_manifest, manifest_path, write_manifest
from batch_updater.tickets import RunInfo


@pytest.fixture
def run_files(tmp_path: Path):
    input_file = tmp_path / "tickets.xlsx"
    results = tmp_path / "tickets.results-20261130-031058.xlsx"
    journal = tmp_path / ".batch-update" / "tickets.20261130-031058-ab12.journal.sqlite"
    journal.parent.mkdir()
    for path, content in ((input_file, b"input"), (results, b"results"), (journal, b"journal")):
        path.write_bytes(content)
    run = RunInfo(
        str(input_file),
        hashlib.sha256(b"input").hexdigest(),
        "Tickets",
        "0.1.0",
        "corp\\jsmith on LAPTOP-7",
        datetime(2026, 11, 30, 3, 10, 58, tzinfo=timezone.utc),
        finished=datetime(2026, 11, 30, 3, 11, 9, tzinfo=timezone.utc),
        server_url="https://ccs01.corp.example:12431",
        ccs_user="corp\\svc-ccs",
        settings={"rate": 5.0, "password": "********"},
        python_version="3.11.7",
        run_id="20261130-031058-ab12",
    )
    write_manifest(run, results, files={"input": input_file, "journal": journal})
    return input_file, results, journal


def test_the_manifest_names_the_run_and_hashes_three_files(run_files) -> None:
    _, results, _ = run_files
    data = json.loads(manifest_path(results).read_text(encoding="utf-8"))
    assert manifest_path(results).name == "tickets.results-20261130-031058.manifest.json"
    assert data["run_id"] == "20261130-031058-ab12"
    assert data["ccs_user"] == "corp\\svc-ccs"
    assert data["started"] == "2026-11-30T03:10:58Z"
    assert sorted(data["files"]) == ["input", "journal", "results"]
    assert data["settings"]["password"] == "********"


def test_untouched_files_pass(run_files) -> None:
    _, results, _ = run_files
    checks = check_manifest(results)
    assert [c.role for c in checks] == ["results", "input", "journal"]
    assert all(c.ok for c in checks)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_a_one_byte_change_to_any_file_is_found(run_files, which: int) -> None:
    target = run_files[which]
    data = bytearray(target.read_bytes())
    data[0] ^= 1
    target.write_bytes(bytes(data))
    checks = check_manifest(run_files[1])
    changed = [c for c in checks if not c.ok]
    assert len(changed) == 1
    assert Path(changed[0].path).resolve() == target.resolve()
    assert "has CHANGED" in changed[0].describe()


def test_a_missing_file_and_a_missing_manifest(run_files) -> None:
    input_file, results, _ = run_files
    input_file.unlink()
    assert [c.describe().endswith("is missing") for c in check_manifest(results)] == [
        False,
        True,
        False,
    ]
    manifest_path(results).unlink()
    with pytest.raises(InputError, match="no manifest beside it"):
        check_manifest(results)


def test_the_manifest_is_never_overwritten(run_files) -> None:
    input_file, results, _ = run_files
    run = RunInfo(str(input_file), "", "", "0.1.0", "", datetime.now(timezone.utc))
    with pytest.raises(OutputError, match="will not overwrite"):
        write_manifest(run, results, files={})


def test_the_manifest_itself_can_be_named(run_files) -> None:
    _, results, _ = run_files
    checks = check_manifest(manifest_path(results))
    assert [(c.role, c.ok) for c in checks] == [
        ("results", True),
        ("input", True),
        ("journal", True),
    ]
    assert Path(checks[0].path) == results
    manifest_path(results).unlink()
    with pytest.raises(InputError, match=r"manifest\.json: file not found"):
        check_manifest(manifest_path(results))


def test_an_input_that_changed_during_the_run_is_recorded_as_read(tmp_path: Path) -> None:
    input_file, results = tmp_path / "tickets.xlsx", tmp_path / "tickets.results.xlsx"
    input_file.write_bytes(b"saved again during the run")
    results.write_bytes(b"results")
    read = hashlib.sha256(b"as read").hexdigest()
    run = RunInfo(str(input_file), read, "", "0.1.0", "", datetime.now(timezone.utc))
    write_manifest(run, results, files={"input": input_file})
    entry = json.loads(manifest_path(results).read_text(encoding="utf-8"))["files"]["input"]
    assert entry["sha256"] == read
    assert entry["sha256_at_end"] == hashlib.sha256(b"saved again during the run").hexdigest()
    assert entry["changed_during_run"] is True
    (check,) = [c for c in check_manifest(results) if c.role == "input"]
    assert not check.ok
    assert "rewritten during the run" in check.describe()
