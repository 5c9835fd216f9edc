"""Production code does not load the sandbox: no module outside `event_platform/sandbox/` imports
`event_platform.sandbox` when it is imported (a function may, when it is called).

The sandbox registers its own truth check (EVENT_PLATFORM_EXTENSIONS), the demo lives in the sandbox
package, and the CLI loads the sandbox's commands when it builds its parser.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from event_platform_tests.conftest import REPO

PACKAGE = REPO / "event_platform"
SANDBOX = "event_platform.sandbox"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_time_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run when the module is imported: not function bodies, not `if TYPE_CHECKING:`."""
    for statement in body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
            yield from import_time_statements(statement.orelse)
            continue
        yield statement
        for field in ("body", "orelse", "finalbody"):
            yield from import_time_statements(getattr(statement, field, []))
        for handler in getattr(statement, "handlers", []):
            yield from import_time_statements(handler.body)


def imported_at_import_time(source: str, package: str) -> Iterator[str]:
    """The absolute name of every module a module of `package` imports at import time."""
    for statement in import_time_statements(ast.parse(source).body):
        if isinstance(statement, ast.Import):
            yield from (alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            base = package.rsplit(".", statement.level - 1)[0] if statement.level else ""
            module = ".".join(part for part in (base, statement.module or "") if part)
            yield module
            # `from event_platform import sandbox` imports the package too.
            yield from (f"{module}.{alias.name}" for alias in statement.names)


def imports_sandbox(source: str, package: str) -> bool:
    return any(
        name == SANDBOX or name.startswith(f"{SANDBOX}.") for name in imported_at_import_time(source, package)
    )


def file_imports_sandbox(path: Path) -> bool:
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    return imports_sandbox(path.read_text(), package)


def test_no_module_outside_the_sandbox_imports_it_when_imported() -> None:
    outside = [path for path in sorted(PACKAGE.rglob("*.py")) if PACKAGE / "sandbox" not in path.parents]
    importing = sorted(str(path.relative_to(REPO)) for path in outside if file_imports_sandbox(path))
    assert not importing, (
        f"These import {SANDBOX} at import time; import it inside the function that needs it: {importing}"
    )


def test_the_walk_sees_relative_and_nested_imports() -> None:
    """What counts: `from ...sandbox import x` and an import under a module-level `try`, not one in a
    function or under `if TYPE_CHECKING:`."""
    assert file_imports_sandbox(PACKAGE / "sandbox" / "demo.py")
    warehouse = "event_platform.defs.warehouse"
    assert imports_sandbox("from ...sandbox import world\n", warehouse)
    assert imports_sandbox("from event_platform import sandbox\n", warehouse)
    assert imports_sandbox(
        "try:\n    import event_platform.sandbox.world\nexcept ImportError:\n    pass\n", warehouse
    )
    assert imports_sandbox("class C:\n    from event_platform.sandbox import world\n", warehouse)
    assert not imports_sandbox("def f():\n    from event_platform.sandbox import world\n", warehouse)
    assert not imports_sandbox("if TYPE_CHECKING:\n    import event_platform.sandbox\n", warehouse)
    assert not imports_sandbox("from .. import settings\nfrom . import sandbox_checks\n", warehouse)
