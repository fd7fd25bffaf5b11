"""Sphinx extension: serve MathJax from the built site, so the book's math shows
without a network (a reader who ran `make book` offline sees what an online reader
sees). The files come from the pinned `sphinx-mathjax-offline` package; only those the
pages load are copied, which keeps the site small.
"""

import importlib.util
import shutil
from pathlib import Path

# What tex-chtml.js loads at run time: itself, the TeX extensions that its autoload may
# ask for, the accessibility add-on that its menu enables, and the CHTML web fonts.
NEEDED = (
    "tex-chtml.js",
    "input/tex/extensions",
    "a11y/assistive-mml.js",
    "output/chtml/fonts/woff-v2",
)


def _source():
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "MathJax is served from the site: install the pinned "
            "sphinx-mathjax-offline package (pip install -r requirements.txt)"
        )
    return Path(spec.origin).parent / "static" / "mathjax"


def _copy(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    source, target = _source(), Path(app.outdir, "_static", "mathjax")
    for name in NEEDED:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, dirs_exist_ok=True)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)


def setup(app):
    _source()  # fail early, with the fix, if the files are missing
    app.config.mathjax_path = "mathjax/tex-chtml.js"
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
