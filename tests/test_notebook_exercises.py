"""Every exercise solution runs in fast mode, after its notebook's own cells, as a student would
run it (the solutions are in the notebooks' collapsed `<details>` blocks)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTION = re.compile(r"<summary>Solution</summary>.*?```python\n(.*?)```", re.S)


def solutions(notebook) -> list[str]:
    """The Python code of every solution block in a notebook's markdown cells."""
    return [match.group(1) for cell in notebook.cells if cell.cell_type == "markdown"
            for match in SOLUTION.finditer(cell.source)]


def test_every_notebook_has_solutions():
    import nbformat

    assert NOTEBOOKS
    for path in NOTEBOOKS:
        assert solutions(nbformat.read(path, as_version=4)), f"{path.name}: no solution block"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_exercise_solutions_run_in_fast_mode(path, monkeypatch, tmp_path_factory):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("CAE_KERAS_FAST", "1")
    if not os.environ.get("CAE_KERAS_CACHE"):  # `make test` shares one cache with the notebooks
        monkeypatch.setenv("CAE_KERAS_CACHE", str(tmp_path_factory.getbasetemp() / "workshop_cache"))
    notebook = nbformat.read(path, as_version=4)
    code = solutions(notebook)
    notebook.cells = [cell for cell in notebook.cells if cell.cell_type == "code"] + [
        nbformat.v4.new_code_cell(source) for source in code]
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if one fails
    printed = [output.get("text", "") for cell in notebook.cells[-len(code):] for output in cell.get("outputs", [])]
    assert any(text.strip() for text in printed), f"{path.name}: the solutions printed nothing"
