"""The notebooks' house rules: committed without outputs, one skeleton, one parameters cell of literals.

Running them is nbval's job (`make test` runs `pytest --nbval-lax notebooks`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_the_series_exists_and_is_listed():
    names = [p.stem for p in NOTEBOOKS]
    assert names[:5] == ["01_eda", "02_preprocessing", "03_model", "04_training", "05_error_maps"]
    listing = (NOTEBOOKS[0].parent / "README.md").read_text()
    for name in names:
        assert f"{name}.ipynb" in listing, f"{name} missing from notebooks/README.md"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_or_execution_metadata(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs"
        assert "execution" not in cell.metadata, f"{path.name}: execution metadata committed"
    assert set(notebook.metadata) <= {"kernelspec", "language_info"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_skeleton(path):
    notebook = nbformat.read(path, as_version=4)
    markdown = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    assert re.match(r"# \d\d · ", markdown[0]), "first cell: one H1 title"
    text = "\n".join(markdown)
    for heading in ("## Overview", "## Setup", "## Summary", "## Exercises"):
        assert heading in text, f"{path.name}: missing {heading}"
    assert "<details><summary>Solution</summary>" in text, "solutions hidden in a collapsed block"
    assert "**Next:**" in markdown[-1], "last cell links to the next notebook"
    assert "fast mode" in markdown[0] and "full mode" in markdown[0], "overview states both runtimes"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exactly_one_parameters_cell_of_plain_literals(path):
    notebook = nbformat.read(path, as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for statement in ast.parse(tagged[0].source).body:
        assert isinstance(statement, ast.Assign), "only assignments"
        ast.literal_eval(statement.value)  # raises unless the value is a plain literal


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_habits_the_conventions_warn_against(path):
    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    for pattern in (r"os\.chdir", r"import \*", r"except\s*:", r"plt\.show\(", r"\.\./"):
        assert not re.search(pattern, source), f"{path.name}: {pattern}"


def test_every_figure_a_notebook_saves_is_committed():
    figures = NOTEBOOKS[0].parent / "figures"
    for path in NOTEBOOKS:
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        for name in re.findall(r'save_figure\([^,]+,\s*"([^"]+)"\)', source):
            assert (figures / name).is_file(), f"{path.name} saves {name}: run `make notebooks` and commit it"
