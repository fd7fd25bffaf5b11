"""Notebook hygiene: what every stored chapter must satisfy before nbval even compares
outputs.
"""

import base64
import json
import re
import struct

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
# Code and outputs are shown in a font at which 88 characters (Ruff's line length) fill
# the 740 px content column; a longer output line runs past it.
MAX_OUTPUT_LINE = 88
# Code in the text (a solution in a dropdown) sits in a narrower box: 80 characters fit.
MAX_TEXT_CODE_LINE = 80
# A PNG wider than this is shrunk below 70 % in the 740 px column: its text gets too
# small.
MAX_FIGURE_WIDTH = 1057
SMALL_FONT = re.compile(
    r"(?<![\w.])(fontsize|labelsize|titlesize)\s*=\s*"
    r"""(([0-8](\.\d*)?)\b|["'](xx?-small|small)["'])"""
)


def execute_command(path):
    return f"make execute NOTEBOOKS={path}"


def code_cells(notebook):
    return [c for c in notebook["cells"] if c["cell_type"] == "code"]


def split_text_and_code(markdown):
    """Each line of ``markdown`` with whether it sits in a fenced code block; a fence
    that opens a directive (```{note}, ```{dropdown} ...) holds text, not code, and may
    hold code blocks.
    """
    closing = []  # the fences that close the blocks we are in, innermost last
    for line in markdown.splitlines():
        fence = re.match(r"\s*(`{3,}|:{3,})(.*)", line)
        if (
            fence
            and closing
            and fence.group(1) == closing[-1][0]
            and not fence.group(2)
        ):
            closing.pop()
            yield line, False
        elif closing and closing[-1][1]:
            yield line, True
        else:
            if fence:
                is_code = fence.group(1).startswith("`") and not fence.group(
                    2
                ).startswith("{")
                closing.append((fence.group(1), is_code))
            yield line, False


def code_lines_in_text(markdown):
    return [line for line, code in split_text_and_code(markdown) if code]


def prose(markdown):
    return "\n".join(line for line, code in split_text_and_code(markdown) if not code)


def is_colab_cell(cell):
    return cell["cell_type"] == "code" and "google.colab" in "".join(cell["source"])


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


def test_intro_lists_the_chapters_in_toc_order():
    intro = (ROOT / "intro.md").read_text()
    listed = list(dict.fromkeys(re.findall(r"\{doc\}`([^`]+)`", intro)))
    expected = [f.with_suffix("").as_posix() for f in toc_files()[1:]]
    assert [name for name in listed if name in expected] == expected, (
        "intro.md's chapter list must name every page of _toc.yml, in its order "
        f"(with {{doc}}`...` links): it lists {listed}, _toc.yml has {expected}"
    )


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
            f"{path} was not run top to bottom in one fresh kernel (execution counts "
            f"{counts}): run `{execute_command(path)}`"
        )

    def test_no_errors_unless_expected(self, path):
        for index, cell, output in outputs(load(path)):
            if output["output_type"] == "error":
                assert "raises-exception" in cell["metadata"].get("tags", []), (
                    f"cell {index} ({cell.get('id')}) stored an error; to show a "
                    "deliberate one, catch it and print its type and message"
                )

    def test_no_stderr(self, path):
        for index, _, output in outputs(load(path)):
            assert output.get("name") != "stderr", (
                f"cell {index} stored stderr (silence or fix what prints it, then "
                f"`{execute_command(path)}`): {output_text(output)[:200]!r}"
            )

    def test_no_warnings_in_outputs(self, path):
        for index, _, output in outputs(load(path)):
            assert "Warning:" not in output_text(output), (
                f"cell {index} stored a warning: fix its cause (or catch the one "
                f"the chapter expects), then `{execute_command(path)}`"
            )

    def test_no_absolute_paths(self, path):
        for index, _, output in outputs(load(path)):
            match = ABSOLUTE_PATH.search(output_text(output))
            assert not match, (
                f"cell {index} stored an absolute path near {match.group(0)!r}: "
                "print paths relative to the repository, and show errors as type and "
                "message, not as a traceback"
            )

    def test_first_cell_is_the_colab_setup(self, path):
        first = load(path)["cells"][0]
        assert (
            first["cell_type"] == "code"
            and "".join(first["source"]) == colab_cell_source()
            and "remove-cell" in first["metadata"].get("tags", [])
        ), (
            "the Colab set-up cell is missing or stale (it is generated, never written "
            f"by hand): run `{execute_command(path)}`, which syncs it first"
        )

    def test_chapter_structure(self, path):
        notebook = load(path)
        markdown = "\n".join(
            "".join(c["source"])
            for c in notebook["cells"]
            if c["cell_type"] == "markdown"
        )
        h1 = re.findall(r"(?m)^# \S", prose(markdown))
        assert len(h1) == 1, "a chapter has exactly one H1 title"
        for heading in ("## Learning goals", "## Summary", "## Exercises"):
            assert re.search(rf"(?m)^{heading}\s*$", markdown), (
                f"missing heading {heading!r}"
            )
        assert markdown.count("{dropdown}") >= 2, (
            "at least two exercises with worked solutions in dropdowns"
        )
        figures = sum("image/png" in o.get("data", {}) for _, _, o in outputs(notebook))
        executed = any(c["execution_count"] for c in code_cells(notebook))
        assert executed, f"{path} has no stored outputs: run `{execute_command(path)}`"
        assert figures >= 2, (
            f"a chapter has at least two figures made by its own code, found {figures}"
        )

    def test_cell_ids_follow_the_scheme(self, path):
        name = path.stem
        prefix = "appA" if name.startswith("appendix") else f"ch{name[:2]}"
        ids = [c.get("id") for c in load(path)["cells"]]
        wrong = [
            i
            for i in ids
            if i != "colab-setup" and not re.fullmatch(rf"{prefix}-\w+", i)
        ]
        assert not wrong, (
            f"cell ids in {path} are '{prefix}-NN' (the Colab cell: 'colab-setup'); "
            f"rename {wrong}"
        )
        assert len(ids) == len(set(ids)), f"duplicate cell ids in {path}"

    def test_figures_have_captions_and_alt_text(self, path):
        for index, cell in enumerate(load(path)["cells"]):
            images = [
                o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})
            ]
            if not images:
                continue
            options = cell["metadata"].get("mystnb", {})
            caption = options.get("figure", {}).get("caption", "")
            alt = options.get("image", {}).get("alt", "")
            where = f"cell {index} ({cell.get('id')})"
            assert caption.strip() and len(alt.split()) >= 3, (
                f"{where} makes a figure: give it a caption and an alt text in the "
                "cell "
                'metadata: {"mystnb": {"figure": {"caption": ..., "name": ...}, '
                '"image": {"alt": ...}}}'
            )
            displays = [o for o in cell["outputs"] if o["output_type"] != "stream"]
            assert len(displays) == 1, (
                f"{where} has {len(displays)} displayed outputs besides its figure's; "
                "each would get the caption: end the cell with plt.show()"
            )

    def test_figures_are_legible_in_the_column(self, path):
        for index, cell, output in outputs(load(path)):
            png = output.get("data", {}).get("image/png")
            if png:
                width = struct.unpack(">I", base64.b64decode(png)[16:20])[0]
                assert width <= MAX_FIGURE_WIDTH, (
                    f"cell {index} ({cell.get('id')}): a {width} px wide figure is "
                    "shrunk so much in the 740 px column that its text gets too small: "
                    "use a narrower figsize (at most 9.5 in) or stack its panels"
                )

    def test_no_small_fonts_in_figures(self, path):
        for index, cell in enumerate(code_cells(load(path))):
            match = SMALL_FONT.search("".join(cell["source"]))
            assert not match, (
                f"code cell {index} ({cell.get('id')}) sets {match.group(0)!r}: figure "
                "text below 9 pt is unreadable in the book"
            )

    def test_code_in_the_text_fits_its_box(self, path):
        for index, cell in enumerate(load(path)["cells"]):
            if cell["cell_type"] != "markdown":
                continue
            for line in code_lines_in_text("".join(cell["source"])):
                assert len(line) <= MAX_TEXT_CODE_LINE, (
                    f"markdown cell {index} ({cell.get('id')}) has a "
                    f"{len(line)}-character code line, wider than its box: "
                    f"{line[:60]!r}...; break it"
                )

    def test_output_lines_fit_the_column(self, path):
        for index, cell, output in outputs(load(path)):
            data = output.get("data", {})
            if "text/html" in data or "image/png" in data:
                continue  # the text/plain twin of a table or figure is not shown
            for line in output_text(output).splitlines():
                assert len(line) <= MAX_OUTPUT_LINE, (
                    f"cell {index} ({cell.get('id')}) prints a {len(line)}-character "
                    f"line, wider than the column: {line[:60]!r}...; wrap it or show "
                    "a table (a pandas DataFrame)"
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
        code = [c for c in code_cells(load(path)) if not is_colab_cell(c)]
        first = "".join(code[0]["source"]) if code else ""
        assert re.search(r"(?m)^SEED = seed_everything\(\d*\)$", first), (
            "the chapter's first code cell (after the Colab set-up cell) must seed "
            "everything after it with the line `SEED = seed_everything()` (from "
            "helpers.reproducibility)"
        )

    def test_exercises_are_numbered_in_one_format(self, path):
        markdown = "\n".join(
            "".join(c["source"])
            for c in load(path)["cells"]
            if c["cell_type"] == "markdown"
        )
        chapter = "A" if path.stem.startswith("appendix") else str(int(path.stem[:2]))
        found = re.findall(r"\*\*Exercise ([^*]*)\*\*", markdown)
        numbers = [re.fullmatch(rf"{chapter}\.(\d+) \(.+\)\.", f) for f in found]
        assert found and all(numbers), (
            f"write exercises as **Exercise {chapter}.N (title).**, found {found}"
        )
        assert [int(m.group(1)) for m in numbers] == list(range(1, len(found) + 1))
        numbered = re.findall(r"(?m)^#{2,6} (\d+(\.\d+)+\.?) ", markdown)
        assert not numbered, f"section headings carry no numbers: {numbered}"


def test_helpers_draw_no_small_text():
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        match = SMALL_FONT.search(path.read_text())
        assert not match, (
            f"{path.relative_to(ROOT)} sets {match.group(0)!r}: figure text below 9 pt "
            "is unreadable in the book"
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
