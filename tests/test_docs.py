"""Docs are tests: the README's commands, --help block and exit codes cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from batch_updater.cli import ExitStatus, command

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ci_lines = [
        line.strip() for line in ci.splitlines() if "pytest" in line and not line.startswith("#")
    ]
    assert len(ci_lines) == 1
    assert any(block.strip() == ci_lines[0] for block in code_blocks(README))


def test_readme_starts_with_the_two_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [block.strip() for block in code_blocks(quick_start)]
    assert commands == [
        "python -m pip install . && batch-update samples/tickets.xlsx --simulate",
        'python -m pip install ".[test]" && python -m pytest -q',
    ]


def help_of(*args: str) -> str:
    result = CliRunner().invoke(command, [*args, "--help"], prog_name="batch-update")
    assert result.exit_code == 0, result.output
    return result.output


def test_every_help_block_in_readme_is_the_real_help() -> None:
    # The group's help, then each command's, in the order --help lists the commands.
    tags = re.findall(r"<!-- (help(?::[a-z]+)?):start -->", README)
    assert tags == ["help", *(f"help:{name}" for name in command.commands)]
    for tag in tags:
        block = README.split(f"<!-- {tag}:start -->", 1)[1].split(f"<!-- {tag}:end -->", 1)[0]
        documented = code_blocks(block)[0]
        args = tag.split(":")[1:]
        assert documented.rstrip() == help_of(*args).rstrip(), tag


def test_the_readme_lists_every_command() -> None:
    section = README.split("## Commands", 1)[1].split("\n### ", 1)[0]
    listed = re.findall(r"^\| `batch-update ([a-z]+)", section, flags=re.M)
    assert listed == list(command.commands)


def test_exit_codes_table_matches_the_enum() -> None:
    section = README.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", section, flags=re.M)}
    assert documented == {status.value for status in ExitStatus}


def test_every_config_key_in_the_readme_exists_in_the_example() -> None:
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    section = README.split("## Configuration", 1)[1].split("## Commands", 1)[0]
    keys = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", section))
    assert keys, "the configuration table lists keys"
    for key in keys:
        group, name = key.split(".")
        assert name in (example.get(group) or {}) or f"{name}:" in (
            ROOT / "config.example.yaml"
        ).read_text(encoding="utf-8"), key


def test_the_automatic_concurrency_bounds_are_told_as_they_are() -> None:
    from batch_updater.runner import AUTO_MAX_WORKERS, AUTO_START_WORKERS

    help_text = help_of("run")
    assert f"auto adds workers ({AUTO_START_WORKERS} to {AUTO_MAX_WORKERS})" in help_text
    example = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    assert (
        f"auto starts with {AUTO_START_WORKERS} and adds workers, up to {AUTO_MAX_WORKERS}"
        in example
    )
    assert f"`auto` ({AUTO_START_WORKERS}, more up to {AUTO_MAX_WORKERS} when" in README
