"""`make execute` stores what changed and nothing else: re-executing an unchanged
chapter
leaves its file byte-identical, so that `git diff` shows only real changes.
"""

import json

import nbformat

from tools.book import ROOT, _final_text, execute, normalise

# A chapter with no run-dependent output (no cell tagged nbval-ignore-output).
STEADY_CHAPTER = ROOT / "chapters" / "01-neurons.ipynb"


def _run_notebook():
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3"},
        "language_info": {"name": "python", "version": "3.11.7"},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
    }
    cell = nbformat.v4.new_code_cell("fit()", id="ch01-00", execution_count=1)
    cell.metadata["execution"] = {"iopub.status.busy": "2026-11-26T03:00:00Z"}
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="a\n\repoch 1"),
        nbformat.v4.new_output("stream", name="stdout", text="\repoch 2\n"),
        nbformat.v4.new_output(
            "display_data",
            data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "abc"},
                "text/plain": "HBox()",
            },
        ),
    ]
    notebook.cells = [cell]
    return json.loads(json.dumps(notebook))


def test_normalise_drops_what_changes_between_runs():
    notebook = normalise(_run_notebook())
    assert notebook["metadata"] == {
        "kernelspec": {"name": "python3", "display_name": "Python 3"},
        "language_info": {"name": "python"},
    }
    cell = notebook["cells"][0]
    assert "execution" not in cell["metadata"]
    assert cell["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "a\nepoch 2\n"}
    ]
    assert normalise(json.loads(json.dumps(notebook))) == notebook  # idempotent


def test_final_text_keeps_what_a_terminal_shows():
    assert _final_text("50%\r100%\n") == "100%\n"
    assert _final_text("ab\x08c\r\n") == "ac\n"
    assert _final_text("one\ntwo\rthree") == "one\nthree"


def test_steady_chapter_has_no_run_dependent_cells():
    cells = json.loads(STEADY_CHAPTER.read_text())["cells"]
    assert not [
        c["id"] for c in cells if "nbval-ignore-output" in c["metadata"].get("tags", [])
    ]


def test_reexecuting_an_unchanged_chapter_changes_no_byte(tmp_path):
    copy = tmp_path / STEADY_CHAPTER.name
    execute(STEADY_CHAPTER, output=copy)
    assert copy.read_bytes() == STEADY_CHAPTER.read_bytes(), (
        f"re-executing {STEADY_CHAPTER.name} changed it: run `make execute "
        f"NOTEBOOKS=chapters/{STEADY_CHAPTER.name}` and commit, or normalise what "
        "varies"
    )
