"""No import runs back up the layers (issue 22).

kernel (carebed) <- services (gateway, detector, alerting) <- simulators, offline tools (evaluation, benchmarks,
scripts) <- composition root (carebed_app). Each package may import only what its row of ALLOWED names; every
import counts, lazy ones inside functions and those under TYPE_CHECKING too, since each is a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

KERNEL = {"carebed"}
SERVICES = {"gateway", "detector", "alerting"}
OURS = KERNEL | SERVICES | {"simulators", "evaluation", "benchmarks", "scripts", "carebed_app"}

# What each package may import of ours besides itself. Services do not import one another either: they
# talk over MQTT and the shared database, through the kernel's schemas and topics.
ALLOWED: dict[str, set[str]] = {
    "carebed": set(),
    **{service: KERNEL for service in SERVICES},
    "simulators": KERNEL,  # a simulator stands in for homes: it speaks the kernel's schemas and topics only
    "evaluation": KERNEL | SERVICES | {"simulators"},
    # the benchmarks drive the assembled stack (carebed_app's process list and Mosquitto runner)
    "benchmarks": KERNEL | SERVICES | {"simulators", "evaluation", "carebed_app"},
    "scripts": KERNEL | SERVICES | {"simulators", "evaluation", "benchmarks", "carebed_app"},
    "carebed_app": OURS,
}

# `python -m carebed` hands over to the command it used to hold; it imports carebed_app only when executed.
ENTRY_POINTS = {("carebed/__main__.py", "carebed_app")}


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def upward_imports(root: Path) -> list[str]:
    """Every import under `root` that its package's row of ALLOWED does not name, as 'file:line package'."""
    offenders = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            for line, module in _imported(ast.parse(path.read_text(encoding="utf-8"), filename=name)):
                top = module.split(".")[0]
                if top in OURS and top != package and top not in allowed and (name, top) not in ENTRY_POINTS:
                    offenders.append(f"{name}:{line} {module}")
    return offenders


def test_no_import_runs_back_up_the_layers() -> None:
    assert upward_imports(ROOT) == []


def test_every_package_has_a_layer() -> None:
    """A new top-level package must be given its row in ALLOWED, or this test would not look at it."""
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}  # tests may import anything
    assert packages <= set(ALLOWED), packages - set(ALLOWED)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check fails on the layout it replaced: a kernel that runs `carebed up` and a detector that replays."""
    (tmp_path / "carebed").mkdir()
    (tmp_path / "carebed" / "stack.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from alerting.models import User\n"
        "if TYPE_CHECKING:\n"
        "    import gateway.service\n"
        "def run() -> None:\n"
        "    from benchmarks.pipeline import run_pipeline\n",
        encoding="utf-8",
    )
    (tmp_path / "carebed" / "__main__.py").write_text("from carebed_app.cli import main\n", encoding="utf-8")
    (tmp_path / "detector").mkdir()
    (tmp_path / "detector" / "evaluation.py").write_text(
        "import simulators.residents\nfrom alerting import models\nfrom carebed import schemas\n", encoding="utf-8"
    )
    assert upward_imports(tmp_path) == [
        "carebed/stack.py:2 alerting.models",
        "carebed/stack.py:4 gateway.service",
        "carebed/stack.py:6 benchmarks.pipeline",
        "detector/evaluation.py:1 simulators.residents",
        "detector/evaluation.py:2 alerting",
    ]
