"""The tour notebook (docs/notebooks/tour.ipynb) runs top to bottom and prints what it says.

The notebook is executed with nbclient in a fresh ``python3`` kernel (the test
environment's ipykernel), as a new user would run it. Cells whose output is checked
carry a tag in their metadata (``"tags": ["segment-sizes"]``), so the checks find them
whatever cells are added around them. Needs the ``notebook`` extra (part of ``test``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "notebooks" / "tour.ipynb"
#: Seconds any one cell may take before the run fails.
CELL_TIMEOUT = 120


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The notebook after a full run, in a scratch working directory."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path_factory.mktemp("tour"))}},
    )
    client.execute()
    return notebook


def _cell(notebook: Any, tag: str) -> Any:
    """The one code cell tagged ``tag``."""
    found = [c for c in notebook.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(found) == 1, f"{len(found)} cells tagged {tag!r}"
    return found[0]


def _stdout(notebook: Any, tag: str) -> str:
    """What the tagged cell printed."""
    outputs = _cell(notebook, tag).outputs
    return "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")


def _result(notebook: Any, tag: str) -> str:
    """The text form of the tagged cell's value (its last expression)."""
    outputs = [o for o in _cell(notebook, tag).outputs if o.output_type == "execute_result"]
    assert len(outputs) == 1
    text: str = outputs[0].data["text/plain"]
    return text


def test_notebook_is_saved_without_outputs() -> None:
    """The committed notebook is clean: no outputs, no execution counts, valid nbformat."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert len(code) >= 10
    assert [c.outputs for c in code] == [[] for _ in code]
    assert {c.execution_count for c in code} == {None}
    assert notebook.metadata.kernelspec.name == "python3"


def test_notebook_links_point_to_existing_pages() -> None:
    """Every relative link in the notebook's markdown names a file of the docs."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert "../examples/cdnow.md" in links
    for link in links:
        assert (NOTEBOOK.parent / link).resolve().is_file(), link


def test_every_cell_runs_without_error(executed: Any) -> None:
    """The whole notebook runs; no cell has an error output, and every code cell ran."""
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [o for c in code for o in c.outputs if o.output_type == "error"] == []
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))


def test_data_cell_shows_the_dataset(executed: Any) -> None:
    """The first cell builds the synthetic data set the tour describes."""
    assert _result(executed, "data") == (
        "Dataset(<1000 profiles>, <7089 events>, now=2024-06-30T12:00:00+00:00)"
    )


def test_segment_sizes(executed: Any) -> None:
    """Attribute, behavioural and segment-of-segment rules with their member counts."""
    assert _stdout(executed, "segment-sizes") == (
        "big_spenders       45  sum(purchase.amount in last 90d) > 200\n"
        "cart_abandoners    48  did cart_abandoned in last 30d\n"
        'paying            201  plan in ["pro", "enterprise"]\n'
        'vip_targets        10  in segment "paying" and in segment "big_spenders"'
        ' and not in segment "cart_abandoners"\n'
    )


def test_rule_error_is_shown_with_a_caret(executed: Any) -> None:
    """A misspelt attribute prints the message, the caret and the suggestion."""
    assert _stdout(executed, "rule-error") == (
        "unknown attribute 'contry' (line 1, column 1)\n"
        '  contry = "FR"\n'
        "  ^^^^^^\n"
        "  hint: did you mean 'country'?\n"
    )


def test_explain(executed: Any) -> None:
    """explain shows which clause of the segment-of-segments rule failed."""
    assert _stdout(executed, "explain") == (
        'no   in segment "paying" and in segment "big_spenders" and not in segment "cart_abandoners"\n'
        '  yes  in segment "paying"\n'
        '  no   in segment "big_spenders"\n'
        '  yes  not in segment "cart_abandoners"\n'
    )


def test_incremental_upsert_reports_the_membership_change(executed: Any) -> None:
    """Upgrading a big spender to pro enters it in paying and in the dependent vip_targets."""
    assert _stdout(executed, "upsert-change") == "c-000056 free\n"
    assert _result(executed, "upsert-change") == (
        "MembershipChange(entered={'paying': ['c-000056'], 'vip_targets': ['c-000056']}, exited={})"
    )


def test_overlap_counts_the_change(executed: Any) -> None:
    """The overlap report, run after the upsert, counts 202 paying profiles."""
    first_line = _result(executed, "overlap").splitlines()[0]
    assert first_line == (
        "OverlapReport: 3 segments (paying: 202, big_spenders: 45, cart_abandoners: 48),"
        " 277 profiles in any"
    )


def test_split_is_balanced(executed: Any) -> None:
    """The split's sample-ratio check passes and its rule selects the test group."""
    assert _stdout(executed, "split-check") == (
        'balanced: True p = 1.0\nbucket("tour-1") in 5000..9999\n'
    )


def test_funnel(executed: Any) -> None:
    """The funnel report and its per-segment conversions."""
    assert _result(executed, "funnel").splitlines()[0] == (
        "FunnelReport: 875 entered, total conversion 22.2%, cumulative 22.2%"
    )
    assert _stdout(executed, "funnel-segments") == (
        "all      875 entered, 22.2% purchased\npaying   182 entered, 25.3% purchased\n"
    )


def test_compare(executed: Any) -> None:
    """The KPI comparison lists the three segments with their sizes."""
    rows = _result(executed, "compare").splitlines()
    assert rows[0] == "Comparison of 3 segments (95% confidence)"
    assert [row.split()[:2] for row in rows[2:]] == [
        ["paying", "202"],
        ["big_spenders", "45"],
        ["cart_abandoners", "48"],
    ]


def test_charts_are_drawn(executed: Any) -> None:
    """With matplotlib installed (extra plot), the chart cell displays two PNG figures."""
    pytest.importorskip("matplotlib")
    outputs = _cell(executed, "charts").outputs
    assert [o.output_type for o in outputs] == ["display_data", "display_data"]
    assert all(o.data["image/png"] for o in outputs)
    assert [o.data["text/plain"] for o in outputs] == [
        "<Figure size 600x355 with 3 Axes>",
        "<Figure size 620x400 with 1 Axes>",
    ]
