"""The environment is declared once: pinned requirements, Binder derived from them, CI
running the README.
"""

import ast
import importlib.metadata
import json
import re
import sys

from tools.book import ROOT, binder_requirements

REQUIREMENTS = [
    line.strip()
    for line in (ROOT / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.strip().startswith("#")
]
PINNED = {
    re.split(r"[=<>!~\[]", line)[0].lower().replace("_", "-") for line in REQUIREMENTS
}
CODE_FOLDERS = ("helpers", "tools", "tests", "benchmarks")
# The repository's own modules: its packages and every module that a script or test
# in one of its folders can import by name.
LOCAL = set(CODE_FOLDERS) | {
    path.stem for folder in CODE_FOLDERS for path in (ROOT / folder).glob("*.py")
}


def test_every_requirement_is_pinned_exactly():
    loose = [
        line
        for line in REQUIREMENTS
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", line)
    ]
    assert not loose, f"pin exact versions: {loose}"


def test_binder_requirements_are_derived_from_the_pins():
    stored = (ROOT / "binder" / "requirements.txt").read_text()
    assert stored == binder_requirements(), (
        "binder/requirements.txt is stale: run `python tools/book.py sync`"
    )


def test_binder_gets_cpu_only_torch():
    text = (ROOT / "binder" / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    assert re.search(r"(?m)^torch==[\d.]+\+cpu$", text)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"(?m)^(make \w+)\s+#", readme)
    assert commands[:2] == ["make book", "make test"], (
        "the README states the two commands first"
    )
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ci[-1].strip() == "make test"


def _python_lines(source):
    """The lines of ``source`` that are Python: not IPython's ``!`` and ``%`` commands,
    nor the lines such a command continues on after a trailing backslash."""
    continued = False
    for line in source.splitlines():
        escaped = continued or line.lstrip().startswith(("!", "%"))
        if not escaped:
            yield line
        continued = escaped and line.rstrip().endswith("\\")


def _imported_modules(source):
    source = "\n".join(_python_lines(source))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def _sources():
    for folder in CODE_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            yield path, path.read_text()
    for path in (ROOT / "chapters").glob("*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        yield (
            path,
            "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"),
        )


def test_everything_imported_is_pinned():
    distributions = importlib.metadata.packages_distributions()
    unpinned = set()
    for path, source in _sources():
        for module in _imported_modules(source):
            if module in sys.stdlib_module_names or module in LOCAL:
                continue
            names = {
                d.lower().replace("_", "-") for d in distributions.get(module, [module])
            }
            if not names & PINNED:
                unpinned.add(f"{module} ({path.relative_to(ROOT)})")
    assert not unpinned, (
        f"imported but not pinned in requirements.txt: {sorted(unpinned)}"
    )
