"""Package-level contracts: exports, docstrings, dependencies, the command line."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import segkit as sk
from segkit.__main__ import main

ROOT = Path(__file__).parent.parent


def test_exported_members_are_sorted_and_exist() -> None:
    """``segkit.__all__`` is sorted and every name in it exists."""
    assert list(sk.__all__) == sorted(sk.__all__)
    for name in sk.__all__:
        assert hasattr(sk, name), name


@pytest.mark.parametrize("name", [n for n in sk.__all__ if n != "__version__"])
def test_public_names_have_docstrings_with_examples(name: str) -> None:
    """Every public name has a docstring with a runnable example (pytest runs it)."""
    doc = inspect.getdoc(getattr(sk, name)) or ""
    assert ">>>" in doc, f"segkit.{name} has no example in its docstring"


def test_core_dependencies_are_exactly_the_four() -> None:
    """The core depends only on attrs, pyroaring, python-dateutil and typing-extensions."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = sorted(d.split(">")[0].split("=")[0].strip() for d in project["dependencies"])
    assert names == ["attrs", "pyroaring", "python-dateutil", "typing-extensions"]


def test_importing_segkit_pulls_in_no_optional_library() -> None:
    """``import segkit`` loads none of the optional interop libraries."""
    code = (
        "import sys, segkit, segkit.datasets; "
        "print(sorted(m for m in ('pandas', 'polars', 'pyarrow', 'duckdb', 'matplotlib', 'tqdm',"
        " 'numpy', 'hypothesis', 'pytest') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_eval_or_exec_in_the_library() -> None:
    """The library source never calls eval or exec."""
    for path in (ROOT / "src" / "segkit").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "eval(" not in text.replace("_eval(", ""), path
        assert "exec(" not in text, path


def test_check_prints_the_canonical_form(capsys: pytest.CaptureFixture[str]) -> None:
    """``check`` prints the canonical text and exits 0 for a valid rule."""
    assert main(["check", "age>=18  and country=='FR'"]) == 0
    assert capsys.readouterr().out == 'age >= 18 and country = "FR"\n'


def test_check_prints_every_error(capsys: pytest.CaptureFixture[str]) -> None:
    """``check`` prints each error with its caret and exits 1."""
    assert main(["check", "age >= and x"]) == 1
    assert capsys.readouterr().out == (
        "RuleSyntaxError: expected a value after '>=', found 'and' (line 1, column 8)\n"
        "  age >= and x\n"
        "         ^^^\n"
        "RuleSyntaxError: expected an operator after 'x' (line 1, column 13)\n"
        "  age >= and x\n"
        "              ^\n"
    )


def test_check_with_a_schema_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``check --schema`` type-checks against a schema in its JSON form."""
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(sk.Schema(attributes={"country": "string"}).to_dict()))
    assert main(["check", 'contry = "FR"', "--schema", str(schema_file)]) == 1
    assert capsys.readouterr().out == (
        "UnknownAttributeError: unknown attribute 'contry' (line 1, column 1)\n"
        '  contry = "FR"\n'
        "  ^^^^^^\n"
        "  hint: did you mean 'country'?\n"
    )
    assert main(["check", "x", "--schema", str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().out.startswith("cannot read schema ")


def test_module_entry_point_runs() -> None:
    """``python -m segkit --help`` lists the commands."""
    out = subprocess.run(
        [sys.executable, "-m", "segkit", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in out.stdout
    assert "check" in out.stdout
