"""The distribution: lethe, components and pipelines ship together; only pipelines/, components/ and
lethe.kfp (which `lethe pipeline` and `lethe demo` import when they run) import kfp; nothing edits
sys.path."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lethe.errors import PipelineError

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "src", "components", "pipelines")


def _modules(package_dir: Path, prefix: str) -> list[str]:
    names = []
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = [prefix, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_only_lethe_kfp_imports_kfp_and_nothing_imports_the_benchmarks() -> None:
    kfp_users, benchmark_users = [], []
    for top in ("src", "components", "pipelines"):
        for path in sorted((ROOT / top).rglob("*.py")):
            imported = _imported_modules(path)
            name = path.relative_to(ROOT).as_posix()
            if any(m == "kfp" or m.startswith("kfp.") for m in imported):
                kfp_users.append(name)
            if any(m.startswith(("benchmarks", "pipelines.measure")) for m in imported):
                benchmark_users.append(name)
    library = [name for name in kfp_users if name.startswith("src/")]
    assert library and all(name.startswith("src/lethe/kfp/") for name in library), library
    assert "src/lethe/kfp/__init__.py" not in library and "src/lethe/kfp/summary.py" not in library
    assert benchmark_users == []


@pytest.mark.slow
def test_the_library_never_imports_kfp() -> None:
    modules = [name for name in _modules(ROOT / "src" / "lethe", "lethe")
               if not name.startswith(("lethe.commands.", "lethe.kfp."))]
    modules.append("lethe.kfp.summary")  # the run summary: what the demo prints, without kfp
    assert "lethe.demo" in modules and "lethe.steps" in modules and "lethe.kfp" in modules
    # A fresh interpreter: this test session may already hold kfp. Building the CLI's parser imports
    # every command module: they must import kfp only when they run.
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "import lethe.cli\n"
        "lethe.cli.build_parser()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'kfp' or m.startswith('kfp.'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_nothing_edits_sys_path() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for top in ("src", "components", "pipelines", "benchmarks")
                 for path in sorted((ROOT / top).rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if "sys.path" in line]
    assert offenders == []


def test_a_missing_pipelines_package_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from lethe.demo import DemoOptions, main
    from lethe.kfp.catalog import pipeline

    monkeypatch.setitem(sys.modules, "pipelines", None)  # as if the distribution lacked it
    for load in (lambda: pipeline("scheduled"), lambda: main(DemoOptions())):
        with pytest.raises(PipelineError, match="pipeline definitions are not installed"):
            load()


@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_images_install_the_pipelines_with_the_distribution(dockerfile: str) -> None:
    text = (ROOT / "docker" / dockerfile).read_text()
    assert "PYTHONPATH" not in text
    builder = text.split("\nRUN pip wheel", 1)[0]
    for package in ("src", "components", "pipelines"):
        assert re.search(rf"^COPY {package} ", builder, flags=re.M), f"{package} is not in the wheel"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"!components/", "!pipelines/"} <= set(ignored)


@pytest.mark.slow
def test_the_wheel_ships_lethe_components_and_pipelines(tmp_path: Path) -> None:
    if importlib.util.find_spec("setuptools") is None:  # >= 70.1 builds wheels without `wheel`
        pytest.skip("setuptools is not installed here: no offline wheel build")
    # Built from a copy: an in-tree build writes build/ and *.egg-info into the checkout.
    source = tmp_path / "source"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "compiled")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=skip)
        else:
            shutil.copyfile(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "--disable-pip-version-check", "-w", str(tmp_path / "wheels"), str(source)],
                           capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {path.relative_to(source / top).as_posix()
                for top, package in (("src", "lethe"), (".", "components"), (".", "pipelines"))
                for path in (source / top / package).rglob("*.py")}
    assert {"components/__init__.py", "components/step.py", "pipelines/scheduled.py", "lethe/kfp/local.py",
            "lethe/kfp/scheduler.py", "lethe/cli.py"} <= expected
    assert expected <= names, sorted(expected - names)
    assert "lethe/evaluation/thresholds.yaml" in names
    assert not any(name.startswith(("tests/", "benchmarks/", "src/")) for name in names)
