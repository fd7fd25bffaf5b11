"""The book's own tooling: which notebooks the table of contents lists, the repository
URL setting, the Colab set-up cell and the Binder requirements that are derived from it,
and executing a chapter so that its stored file changes only where its outputs do.

    python tools/book.py notebooks      # print the notebooks listed in _toc.yml
    python tools/book.py sync           # rewrite the derived files: Colab cells,
                                        # binder/requirements.txt
    python tools/book.py execute NB...  # run notebooks in place, then normalise them
    python tools/book.py normalise NB...  # only normalise (drop volatile metadata)

`make execute` and `make execute NOTEBOOKS=chapters/NN-name.ipynb` call these.
"""

import json
import re
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Notebook-level metadata that describes the notebook, not the run that produced it.
KEPT_NOTEBOOK_METADATA = ("kernelspec",)
# Carriage returns and backspaces redraw a line (a progress line): keep what a reader
# would finally see, as nbval does before it compares.
_BACKSPACE = re.compile("[^\n]\x08")
_OVERWRITTEN = re.compile(r"(?m)^[^\n]*\r(?!\n)")
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
        "# Generated from ../requirements.txt by `python tools/book.py sync`: "
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
        _write(notebook, path)
        changed.append(path)
    return changed


def _final_text(text):
    """What a terminal shows after ``text``'s carriage returns and backspaces."""
    previous = None
    while previous != text:
        previous, text = text, _BACKSPACE.sub("", text)
    return _OVERWRITTEN.sub("", text.replace("\r\n", "\n"))


def normalise(notebook):
    """Drop what changes from run to run without the outputs changing: execution
    timestamps, widget state, the interpreter's patch version; merge each cell's
    consecutive stream outputs and resolve its carriage returns. Returns ``notebook``.
    """
    notebook["metadata"] = {
        key: notebook["metadata"][key]
        for key in KEPT_NOTEBOOK_METADATA
        if key in notebook["metadata"]
    }
    notebook["metadata"]["language_info"] = {"name": "python"}
    for cell in notebook["cells"]:
        cell["metadata"].pop("execution", None)
        if cell["cell_type"] != "code":
            continue
        merged = []
        for output in cell["outputs"]:
            if (
                output["output_type"] == "display_data"
                and set(output["data"])
                <= {
                    "application/vnd.jupyter.widget-view+json",
                    "text/plain",
                }
                and "application/vnd.jupyter.widget-view+json" in output["data"]
            ):
                continue  # a widget whose state the file would not keep anyway
            previous = merged[-1] if merged else None
            if (
                output["output_type"] == "stream"
                and previous is not None
                and previous["output_type"] == "stream"
                and previous["name"] == output["name"]
            ):
                previous["text"] = "".join(previous["text"]) + "".join(output["text"])
            else:
                merged.append(output)
        for output in merged:
            if output["output_type"] == "stream":
                output["text"] = _final_text("".join(output["text"]))
        cell["outputs"] = merged
    return notebook


def _write(notebook, path):
    import nbformat

    path.write_text(nbformat.writes(nbformat.from_dict(notebook)) + "\n")


def execute(path, timeout=600, output=None):
    """Run ``path`` top to bottom in a fresh kernel (its folder as working directory),
    store the outputs and normalise the file (written to ``output`` if given).
    """
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    path = Path(path).resolve()
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as sockets:
        # IPC sockets: the kernel does not warn that TCP is unencrypted.
        manager = KernelManager(
            kernel_name="python3", transport="ipc", ip=str(Path(sockets, "kernel"))
        )
        client = NotebookClient(
            notebook,
            km=manager,
            timeout=timeout,
            resources={"metadata": {"path": str(path.parent)}},
        )
        try:
            client.execute()
        finally:
            if manager.has_kernel:  # the client leaves a kernel it did not start
                manager.shutdown_kernel(now=False)
    _write(normalise(notebook), Path(output) if output else path)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "notebooks":
        print(" ".join(str(p) for p in toc_notebooks()))
    elif command == "sync":
        for path in sync():
            print(f"rewrote {path.relative_to(ROOT)}")
    elif command in ("execute", "normalise") and len(sys.argv) > 2:
        for name in sys.argv[2:]:
            path = Path(name)
            if command == "execute":
                print(f"executing {name}", flush=True)
                execute(path)
            else:
                notebook = json.loads(path.read_text())
                _write(normalise(notebook), path)
    else:
        sys.exit(__doc__)
