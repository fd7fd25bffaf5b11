"""The book's own tooling: which notebooks the table of contents lists, the repository
URL setting, the Colab set-up cell and the Binder requirements that are derived from it.

    python tests/book.py notebooks   # print the notebooks listed in _toc.yml
    python tests/book.py sync        # rewrite the derived files: Colab cells,
                                     # binder/requirements.txt
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_PACKAGES = ("torch", "torchvision")
COLAB_PACKAGES = (
    "qiskit",
    "qiskit-aer",
    "qiskit-ibm-runtime",
    "qiskit-machine-learning",
    "mlxtend",
    "pylatexenc",
)


def toc_files():
    """Every file in ``_toc.yml`` (root first), as paths relative to the repository
    root, with suffix.
    """
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    files = []
    for name in names:
        matches = [
            ROOT / (name + suffix)
            for suffix in (".ipynb", ".md")
            if (ROOT / (name + suffix)).exists()
        ]
        files.append(matches[0].relative_to(ROOT) if matches else Path(name))
    return files


def toc_notebooks():
    """The notebooks that ``_toc.yml`` lists, in book order."""
    return [f for f in toc_files() if f.suffix == ".ipynb"]


def repository_url():
    """The one setting for the repository's address: ``repository.url`` in
    ``_config.yml``.
    """
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def colab_cell_source(url=None):
    """The first cell of every chapter: on Colab only, fetch the helpers and install
    what Colab lacks.

    Its lines stay within Ruff's line length (the chapters are linted with the same
    settings as the code): the long shell commands continue on a second line with a
    backslash, which IPython joins before running them.
    """
    url = url or repository_url()
    # one grep -e pattern per group of three packages keeps every line short
    groups = [COLAB_PACKAGES[i : i + 3] for i in range(0, len(COLAB_PACKAGES), 3)]
    patterns = "".join(
        f'-e "^({"|".join(re.escape(p) for p in group)})==" \\\n        '
        for group in groups
    )
    return (
        "# On Google Colab only: fetch the book's helpers and install what "
        "Colab lacks\n"
        "# (elsewhere, nothing).\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    !git clone --quiet --depth 1 \\\n"
        f"        {url} /content/book\n"
        f"    !grep -E {patterns}"
        "/content/book/requirements.txt > /tmp/colab-requirements.txt\n"
        "    !pip install --quiet -r /tmp/colab-requirements.txt\n"
        '    sys.path.insert(0, "/content/book")'
    )


def binder_requirements():
    """``binder/requirements.txt``: the same pins, with CPU-only torch builds from
    PyTorch's CPU index.
    """
    lines = [
        "# Generated from ../requirements.txt by `python tests/book.py sync`: "
        "edit that file, not this one.",
        "# Binder has no GPU, so torch and torchvision come as CPU-only builds "
        "of the same versions.",
        f"--extra-index-url {CPU_INDEX}",
    ]
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        lines.append(f"{name}=={version}+cpu" if name in CPU_PACKAGES else line)
    return "\n".join(lines) + "\n"


def sync():
    """Rewrite every derived file from its source; returns the paths it changed."""
    changed = []
    binder = ROOT / "binder" / "requirements.txt"
    if not binder.exists() or binder.read_text() != binder_requirements():
        binder.write_text(binder_requirements())
        changed.append(binder)
    source = colab_cell_source()
    for path in toc_notebooks():
        path = ROOT / path
        notebook = json.loads(path.read_text())
        first = notebook["cells"][0] if notebook["cells"] else None
        if (
            first is not None
            and first["cell_type"] == "code"
            and "google.colab" in "".join(first["source"])
        ):
            if "".join(first["source"]) == source:
                continue
            first["source"] = source.splitlines(keepends=True)
        else:
            notebook["cells"].insert(
                0,
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": "colab-setup",
                    "metadata": {"tags": ["remove-cell"]},
                    "outputs": [],
                    "source": source.splitlines(keepends=True),
                },
            )
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        changed.append(path)
    return changed


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "notebooks":
        print(" ".join(str(p) for p in toc_notebooks()))
    elif command == "sync":
        for path in sync():
            print(f"rewrote {path.relative_to(ROOT)}")
    else:
        sys.exit(__doc__)
