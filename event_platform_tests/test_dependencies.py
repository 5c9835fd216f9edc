"""Every third-party package our code imports is declared in pyproject.toml, where its code needs it.

A package that arrives only through another one's dependencies (starlette through dagster-webserver,
boto3 through dagster-aws) disappears the day that one drops it; declaring it names our reason to keep it.
Product code may rely on `dependencies` only; the sandbox also on the `sandbox` extra; benchmarks and
tests on any extra.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

from event_platform_tests.conftest import REPO

FIRST_PARTY = {"event_platform", "event_platform_tests", "benchmarks"}
SELF = "event-platform"


def normalized(name: str) -> str:
    """A distribution's name as PEP 503 compares names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> tuple[str, list[str]]:
    """`name[extra,...]>=version` → (normalized name, extras)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", requirement)
    assert match, f"Unreadable requirement in pyproject.toml: {requirement!r}"
    extras = [extra.strip() for extra in (match.group(2) or "").split(",") if extra.strip()]
    return normalized(match.group(1)), extras


@cache
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def declared(extras: tuple[str, ...]) -> set[str]:
    """The distributions `dependencies` and the given extras name, following `event-platform[...]`."""
    names: set[str] = set()
    pending = list(project()["dependencies"])
    pending += [req for extra in extras for req in project()["optional-dependencies"][extra]]
    while pending:
        name, own_extras = requirement_name(pending.pop())
        if name == SELF:
            pending += [req for extra in own_extras for req in project()["optional-dependencies"][extra]]
        else:
            names.add(name)
    return names


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    """The top-level name of every absolute import in the file, anywhere in it, with its first line."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name.partition(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0], node.lineno


def undeclared_imports(files: list[Path], allowed: set[str], local: set[str]) -> list[str]:
    """One line per third-party module whose distribution `allowed` does not name: where it is imported."""
    distributions = packages_distributions()
    places: dict[str, dict[str, None]] = {}
    for path in files:
        for module, line in imported_modules(path):
            if module not in sys.stdlib_module_names and module not in FIRST_PARTY | local:
                places.setdefault(module, {})[f"{path.relative_to(REPO)}:{line}"] = None
    problems = []
    for module, where in sorted(places.items()):
        providers = {normalized(dist) for dist in distributions.get(module, [])}
        if not providers & allowed:
            source = ", ".join(sorted(providers)) or "no installed distribution"
            problems.append(f"{module} (from {source}), imported at {', '.join(where)}")
    return problems


def python_files(directory: str) -> list[Path]:
    return sorted((REPO / directory).rglob("*.py"))


def test_product_code_imports_only_runtime_dependencies() -> None:
    sandbox = REPO / "event_platform" / "sandbox"
    product = [path for path in python_files("event_platform") if sandbox not in path.parents]
    problems = undeclared_imports(product, declared(()), local=set())
    assert not problems, "Declare these in pyproject.toml's `dependencies`:\n" + "\n".join(problems)


def test_sandbox_imports_only_runtime_and_sandbox_dependencies() -> None:
    problems = undeclared_imports(python_files("event_platform/sandbox"), declared(("sandbox",)), local=set())
    assert not problems, "Declare these in `dependencies` or the `sandbox` extra:\n" + "\n".join(problems)


def test_benchmarks_and_tests_import_only_declared_dependencies() -> None:
    # The benchmarks run as scripts and import their siblings (`measure`) as top-level modules.
    siblings = {path.stem for path in python_files("benchmarks")}
    files = python_files("benchmarks") + python_files("event_platform_tests")
    problems = undeclared_imports(files, declared(tuple(project()["optional-dependencies"])), siblings)
    assert not problems, "Declare these in `dependencies` or the `dev` extra:\n" + "\n".join(problems)


def test_the_check_reads_what_pyproject_declares() -> None:
    """The walk itself: a dependency is found, a self-reference's extras are followed."""
    assert {"dagster", "sqlalchemy"} <= declared(())
    assert "moto" not in declared(()) and "moto" in declared(("dev",))
    assert requirement_name("uvicorn[standard]>=0.30") == ("uvicorn", ["standard"])
