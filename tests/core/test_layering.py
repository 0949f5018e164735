"""DESIGN.md's dependency rule, checked on the source: nothing in core, classical or vlasov
imports torch.nn, train or bench; core imports no other neuralfactor package; nothing outside
cli/ and __main__ imports neuralfactor.cli; no benchmarks/ script imports another."""

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


# -- nothing but the CLI imports the CLI; no benchmark script imports another ------------------
ROOT = SRC.parents[1]
BENCHMARKS = ROOT / "benchmarks"
_IMPORTERS = {
    "import_module",
    "__import__",
    "run_path",
    "run_module",
    "spec_from_file_location",
    "SourceFileLoader",
}


def _all_imports(path: Path, package: str) -> set[str]:
    """Absolute names a file imports: plain and relative imports (resolved against
    ``package``) and the constant first argument of importlib/runpy calls."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[-1] if name in ("spec_from_file_location",) else node.args[0]
            if name in _IMPORTERS and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
    return names


def cli_importers(src: Path) -> list[str]:
    """Files under ``src`` (the neuralfactor package) outside cli/ and __main__.py that import
    neuralfactor.cli."""
    bad = []
    for p in sorted(src.rglob("*.py")):
        rel = p.relative_to(src)
        if rel.parts[0] == "cli" or rel.name == "__main__.py":
            continue
        mod_parts = ("neuralfactor", *rel.with_suffix("").parts)
        package = ".".join(mod_parts if rel.name == "__init__.py" else mod_parts[:-1])
        for name in _all_imports(p, package.removesuffix(".__init__")):
            if name == "neuralfactor.cli" or name.startswith("neuralfactor.cli."):
                bad.append(f"{rel}: {name}")
    return bad


def _benchmark_target(name: str, stems: set[str]) -> str | None:
    """The benchmark script an imported name or path refers to, else None."""
    if "/" in name or "\\" in name or name.endswith(".py"):
        stem = Path(name.replace("\\", "/")).stem
        return stem if stem in stems else None
    parts = name.split(".")
    if parts[0] == "benchmarks" and len(parts) > 1:
        return parts[1]
    return parts[0] if parts[0] in stems else None


def benchmark_cross_imports(bench: Path) -> list[str]:
    """``"script.py: other"`` for each script under ``bench`` that imports another one (by
    module name, through ``benchmarks.``, or by path with importlib/runpy)."""
    stems = {p.stem for p in bench.glob("*.py")}
    bad = set()
    for p in sorted(bench.glob("*.py")):
        for name in _all_imports(p, "benchmarks"):
            target = _benchmark_target(name, stems)
            if target is not None and target != p.stem:
                bad.add(f"{p.name}: {target}")
    return sorted(bad)


def test_only_the_cli_imports_the_cli():
    assert not cli_importers(SRC), cli_importers(SRC)


def test_no_benchmark_script_imports_another():
    assert sorted(BENCHMARKS.glob("*.py"))
    assert not benchmark_cross_imports(BENCHMARKS), benchmark_cross_imports(BENCHMARKS)


@pytest.mark.parametrize(
    "line",
    [
        "from neuralfactor.cli import main",
        "import neuralfactor.cli.simulate",
        "from neuralfactor import cli",
        "from ..cli import main",
        "import importlib; importlib.import_module('neuralfactor.cli.approx')",
    ],
)
def test_a_planted_cli_import_is_found(tmp_path, line):
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "__init__.py").write_text("from neuralfactor.cli import app\n")
    (tmp_path / "__main__.py").write_text("from neuralfactor.cli import main\n")
    (tmp_path / "vlasov").mkdir()
    (tmp_path / "vlasov" / "ok.py").write_text("from neuralfactor.core import lowrank\n")
    assert cli_importers(tmp_path) == []  # cli/ and __main__ may import it
    (tmp_path / "vlasov" / "bad.py").write_text(line + "\n")
    found = cli_importers(tmp_path)
    assert found and {f.split(": ")[0] for f in found} == {str(Path("vlasov") / "bad.py")}, found


@pytest.mark.parametrize(
    "line",
    [
        "import study_a as study",
        "from study_a import ROOT",
        "from benchmarks import study_a",
        "import benchmarks.study_a",
        "import runpy; runpy.run_path('benchmarks/study_a.py')",
        "import importlib; importlib.import_module('study_a')",
    ],
)
def test_a_planted_benchmark_import_is_found(tmp_path, line):
    (tmp_path / "study_a.py").write_text("import numpy\nfrom neuralfactor.io import write_json\n")
    (tmp_path / "recipe_b.py").write_text("import json\n")
    assert benchmark_cross_imports(tmp_path) == []
    (tmp_path / "recipe_b.py").write_text(line + "\n")
    assert benchmark_cross_imports(tmp_path) == ["recipe_b.py: study_a"]
