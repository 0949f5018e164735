"""DESIGN.md's dependency rule, checked on the source: nothing in core, classical or vlasov
imports torch.nn, train or bench, and core imports no other neuralfactor package."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "neuralfactor"
FORBIDDEN = ("torch.nn", "neuralfactor.train", "neuralfactor.bench")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("package", ["core", "classical", "vlasov"])
def test_low_level_packages_do_not_import_nn_train_or_bench(package):
    files = sorted((SRC / package).rglob("*.py"))
    assert files
    bad = {
        f"{p.relative_to(SRC)}: {name}"
        for p in files
        for name in _imports(p)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, sorted(bad)


def test_core_depends_on_no_other_package():
    bad = {
        f"{p.relative_to(SRC)}: {name}"
        for p in sorted((SRC / "core").rglob("*.py"))
        for name in _imports(p)
        if name.startswith("neuralfactor.") and not name.startswith("neuralfactor.core")
    }
    assert not bad, sorted(bad)
