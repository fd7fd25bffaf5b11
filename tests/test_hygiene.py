"""Notebook hygiene: what every stored chapter must satisfy before nbval even compares
outputs.
"""

import json
import re

import pytest

from tools.book import ROOT, colab_cell_source, toc_files, toc_notebooks

ON_DISK = sorted(p.relative_to(ROOT) for p in (ROOT / "chapters").glob("*.ipynb"))
NOTEBOOKS = sorted(set(ON_DISK) | set(toc_notebooks()))
ABSOLUTE_PATH = re.compile(
    r"(?<![\w.])(/(home|root|tmp|work|Users|usr|opt|var|private)/|[A-Za-z]:\\\\)"
)
MAX_BYTES = 1_000_000
# Code that needs an IBM Quantum account: shown, never run (chapter 8).
HARDWARE_CODE = re.compile(r"QiskitRuntimeService|\b(Session|Batch)\(")
# The build (myst-nb, nbclient) skips cells tagged skip-execution; nbval, nbval-skip.
NEVER_RUN_TAGS = ("skip-execution", "nbval-skip")


def load(path):
    return json.loads((ROOT / path).read_text())


def outputs(notebook):
    for index, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            yield index, cell, output


def never_run(cell):
    """Whether both the build and nbval skip this cell."""
    tags = cell["metadata"].get("tags", [])
    return all(tag in tags for tag in NEVER_RUN_TAGS)


def output_text(output):
    parts = [output.get("text", "")] + [
        output.get("data", {}).get("text/plain", ""),
        output.get("evalue", ""),
    ]
    return "".join("".join(p) if isinstance(p, list) else p for p in parts)


def test_toc_and_chapters_folder_agree():
    assert ON_DISK == sorted(toc_notebooks()), (
        "every notebook in chapters/ must be in _toc.yml and vice versa"
    )


def test_toc_entries_exist():
    missing = [str(f) for f in toc_files() if not (ROOT / f).exists()]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
class TestNotebook:
    def test_size(self, path):
        assert (ROOT / path).stat().st_size <= MAX_BYTES, (
            f"{path} is over 1 MB: shrink its figures"
        )

    def test_kernel(self, path):
        assert load(path)["metadata"]["kernelspec"]["name"] == "python3"

    def test_execution_counts_run_one_to_n(self, path):
        code = [
            c
            for c in load(path)["cells"]
            if c["cell_type"] == "code" and not never_run(c)
        ]
        counts = [c["execution_count"] for c in code]
        assert counts == list(range(1, len(code) + 1)), (
            f"re-execute {path} top to bottom: counts are {counts}"
        )

    def test_no_errors_unless_expected(self, path):
        for index, cell, output in outputs(load(path)):
            if output["output_type"] == "error":
                assert "raises-exception" in cell["metadata"].get("tags", []), (
                    f"cell {index} stored an error"
                )

    def test_no_stderr(self, path):
        for index, _, output in outputs(load(path)):
            assert output.get("name") != "stderr", (
                f"cell {index} stored stderr: {output_text(output)[:200]!r}"
            )

    def test_no_warnings_in_outputs(self, path):
        for index, _, output in outputs(load(path)):
            assert "Warning:" not in output_text(output), (
                f"cell {index} stored a warning"
            )

    def test_no_absolute_paths(self, path):
        for index, _, output in outputs(load(path)):
            match = ABSOLUTE_PATH.search(output_text(output))
            assert not match, (
                f"cell {index} stored an absolute path near {match.group(0)!r}"
            )

    def test_first_cell_is_the_colab_setup(self, path):
        first = load(path)["cells"][0]
        assert (
            first["cell_type"] == "code"
            and "".join(first["source"]) == colab_cell_source()
        ), (
            "the Colab cell is missing or stale: run `python tools/book.py sync`, "
            "then `make execute`"
        )
        assert "remove-cell" in first["metadata"].get("tags", [])

    def test_chapter_structure(self, path):
        notebook = load(path)
        markdown = "\n".join(
            "".join(c["source"])
            for c in notebook["cells"]
            if c["cell_type"] == "markdown"
        )
        h1 = re.findall(r"(?m)^# \S", markdown)
        assert len(h1) == 1, "a chapter has exactly one H1 title"
        for heading in ("## Learning goals", "## Summary", "## Exercises"):
            assert re.search(rf"(?m)^{heading}\s*$", markdown), (
                f"missing heading {heading!r}"
            )
        assert markdown.count("{dropdown}") >= 2, (
            "at least two exercises with worked solutions in dropdowns"
        )
        figures = sum("image/png" in o.get("data", {}) for _, _, o in outputs(notebook))
        assert figures >= 2, (
            f"a chapter has at least two figures made by its own code, found {figures}"
        )

    def test_hardware_cells_are_never_executed(self, path):
        """Every cell that would talk to IBM Quantum hardware, and every cell tagged to
        be skipped, carries both skip tags, has never run and stores no output."""
        for index, cell in enumerate(load(path)["cells"]):
            if cell["cell_type"] != "code":
                continue
            tags = cell["metadata"].get("tags", [])
            touches_hardware = HARDWARE_CODE.search("".join(cell["source"]))
            if touches_hardware or any(tag in tags for tag in NEVER_RUN_TAGS):
                assert never_run(cell), (
                    f"cell {index} needs both tags {NEVER_RUN_TAGS}, has {tags}"
                )
                assert cell["execution_count"] is None and not cell["outputs"], (
                    f"cell {index} must never run, but it was executed"
                )

    def test_seeded_first(self, path):
        code = [c for c in load(path)["cells"] if c["cell_type"] == "code"]
        assert "seed_everything(" in "".join(code[1]["source"]), (
            "the first cell after set-up seeds everything"
        )


def test_chapter_8_shows_its_hardware_code_unexecuted():
    cells = load("chapters/08-shots-noise-hardware.ipynb")["cells"]
    hardware = [
        c
        for c in cells
        if c["cell_type"] == "code" and HARDWARE_CODE.search("".join(c["source"]))
    ]
    assert len(hardware) >= 3, "the chapter's hardware cells are missing"
    assert all(never_run(c) and c["execution_count"] is None for c in hardware)
