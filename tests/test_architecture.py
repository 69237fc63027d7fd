"""docs/architecture.md stays true: the imports of every module are those its table names.

The code's imports are read with ast (at any depth: a function-level import counts too), so a
new dependency between modules, or a library used in a second module, fails here until the map
is changed with it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "batch_updater"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# Not in sys.stdlib_module_names' spirit of "no dependency": the table names it like a library.
COUNTED_STDLIB = {"sqlite3"}
OPTIONAL = {"keyring"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    # A subpackage (sim/, journal/) is one unit in the map.
    if len(parts) > 1 or (parts and (PACKAGE / parts[0]).is_dir()):
        return parts[0]
    return ".".join(parts) or "__init__"


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(package modules, libraries) that the file imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = list(path.relative_to(PACKAGE).parts[:-1])
    modules: set[str] = set()
    libraries: set[str] = set()

    def package_module(dotted: str) -> None:
        modules.add(dotted.split(".")[0])

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                if node.module:
                    package_module(".".join([*base, node.module]))
                else:
                    for alias in node.names:
                        package_module(".".join([*base, alias.name]))
                continue
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "batch_updater":
                package_module(name.split(".", 1)[1] if "." in name else "__init__")
            elif top in COUNTED_STDLIB or top not in sys.stdlib_module_names:
                libraries.add(top)
    return modules, libraries


def actual_imports() -> dict[str, tuple[set[str], set[str]]]:
    found: dict[str, tuple[set[str], set[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        modules, libraries = _imports(path)
        into = found.setdefault(name, (set(), set()))
        into[0].update(modules - {name, "__init__", "__version__"})
        into[1].update(libraries)
    found.pop("__init__", None)
    return found


def documented_imports() -> dict[str, tuple[set[str], set[str]]]:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    table = text.split("### Imports, as checked", 1)[1]
    rows: dict[str, tuple[set[str], set[str]]] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        modules = set(re.findall(r"`([\w.]+)`", cells[1]))
        libraries = {word for word in re.findall(r"[\w]+", cells[2]) if word != "optional"}
        rows[name] = (modules, libraries)
    return rows


def test_every_module_is_on_the_map() -> None:
    assert set(documented_imports()) == set(actual_imports())


def test_every_import_is_on_the_map() -> None:
    documented = documented_imports()
    for name, (modules, libraries) in actual_imports().items():
        allowed_modules, allowed_libraries = documented[name]
        assert modules <= allowed_modules, f"{name} imports {sorted(modules - allowed_modules)}"
        assert libraries <= allowed_libraries, (
            f"{name} imports {sorted(libraries - allowed_libraries)}"
        )


def test_the_map_names_no_import_that_is_not_there() -> None:
    # A row that allows more than the module uses would let a new dependency in unnoticed.
    actual = actual_imports()
    for name, (modules, libraries) in documented_imports().items():
        assert modules == actual[name][0], (
            f"{name}: the map names {sorted(modules ^ actual[name][0])}"
        )
        assert libraries == actual[name][1], (
            f"{name}: the map names {sorted(libraries ^ actual[name][1])}"
        )


def test_nothing_imports_the_cli_and_the_simulator_imports_nothing_of_the_client() -> None:
    actual = actual_imports()
    assert not [name for name, (modules, _) in actual.items() if "cli" in modules]
    assert actual["sim"][0] == set()


def test_each_library_lives_in_one_client_module() -> None:
    owners: dict[str, list[str]] = {}
    for name, (_, libraries) in actual_imports().items():
        if name != "sim":
            for library in libraries:
                owners.setdefault(library, []).append(name)
    assert {lib: mods for lib, mods in owners.items() if len(mods) > 1} == {}


def test_the_cli_touches_no_http_excel_or_sqlite_library() -> None:
    _, libraries = actual_imports()["cli"]
    assert not libraries & {"requests", "openpyxl", "python_calamine", "sqlite3"}
    assert libraries - OPTIONAL <= {"click", "tqdm"}


def test_the_help_imports_no_http_excel_or_yaml_library() -> None:
    # --help must stay quick: the heavy libraries are imported where a command uses them
    # (sqlite3, a C module of the standard library, is cheap and may be).
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from batch_updater.cli import command; "
        "CliRunner().invoke(command, ['run', '--help']); "
        "print(sorted(m for m in ('requests', 'openpyxl', 'python_calamine', 'yaml', 'tqdm') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]", done.stdout
