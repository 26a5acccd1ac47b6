"""Every tutorial in docs/tutorials runs from a clean kernel without a cell error, within its budget,
and its committed .ipynb is the executed form of its .py."""
import time
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="the tutorials need the docs extra: pip install -e '.[docs]' (jupytext)")
pytest.importorskip("nbclient", reason="the tutorials need the docs extra: pip install -e '.[docs]' (nbclient)")
pytest.importorskip("ipykernel", reason="the tutorials need the docs extra: pip install -e '.[docs]' (ipykernel)")
from nbclient import NotebookClient  # noqa: E402

TUTORIALS = Path(__file__).resolve().parent.parent / "docs" / "tutorials"
SOURCES = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
BUDGET_S = 120  # each tutorial must run offline in under 2 minutes on 2 cores


def _code(nb):
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_there_are_tutorials():
    assert len(SOURCES) >= 2


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_tutorial_runs_from_a_clean_kernel_within_its_budget(source):
    nb = jupytext.read(source)
    start = time.perf_counter()
    NotebookClient(nb, timeout=BUDGET_S, kernel_name="python3",
                   resources={"metadata": {"path": str(TUTORIALS)}}).execute()  # raises on any cell error
    seconds = time.perf_counter() - start
    assert seconds < BUDGET_S, f"{source.name} took {seconds:.0f} s, over its {BUDGET_S} s budget"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_committed_notebook_is_the_executed_py(source):
    import nbformat
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.exists(), f"run python docs/tutorials/build.py {source.stem}"
    committed = nbformat.read(ipynb, as_version=4)
    assert _code(committed) == _code(jupytext.read(source)), f"{ipynb.name} is stale: rebuild it"
    code_cells = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code_cells), f"{ipynb.name} was not executed"
    assert not any(o.get("output_type") == "error" for c in code_cells for o in c.outputs)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_tutorial_says_what_it_teaches_and_which_files_it_reads(source):
    first = jupytext.read(source).cells[0]
    assert first.cell_type == "markdown"
    assert "What you will learn" in first.source and "Source files read" in first.source
    assert "minicnn/" in first.source
