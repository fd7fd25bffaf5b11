"""Sphinx extension for the book's site (listed in _config.yml):

- MathJax is served from the built site, not a CDN, so a reader who built the book
  offline sees the math as an online reader does. The files come from the pinned
  `sphinx-mathjax-offline` package; only those the pages load are copied.
- Bibliography labels read like the citations in the text ("Crooks, 2019"), not as
  alpha codes ("Cro19").
- The pages carry no Thebe scripts: the book launches Binder and Colab instead, and
  sphinx-thebe 0.3.1 writes its configuration into every page twice.
"""

import importlib.util
import shutil
from pathlib import Path

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle

# What tex-chtml.js loads at run time: itself, the TeX extensions that its autoload may
# ask for, the accessibility add-on that its menu enables, and the CHTML web fonts.
MATHJAX_FILES = (
    "tex-chtml.js",
    "input/tex/extensions",
    "a11y/assistive-mml.js",
    "output/chtml/fonts/woff-v2",
)


def _mathjax_source():
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "MathJax is served from the site: install the pinned "
            "sphinx-mathjax-offline package (pip install -r requirements.txt)"
        )
    return Path(spec.origin).parent / "static" / "mathjax"


def _copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    source, target = _mathjax_source(), Path(app.outdir, "_static", "mathjax")
    for name in MATHJAX_FILES:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, dirs_exist_ok=True)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)


class AuthorYearLabels(BaseLabelStyle):
    """Labels such as "Crooks, 2019", "Schuld and Petruccione, 2021", "McClean et al.,
    2018"."""

    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [" ".join(p.last_names).strip("{}") for p in people]
            if not names:
                who = entry.fields.get("organization", entry.key)
            elif len(names) == 1:
                who = names[0]
            elif len(names) == 2:
                who = f"{names[0]} and {names[1]}"
            else:
                who = f"{names[0]} et al."
            yield f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "book-author-year"


def _drop_thebe(app, pagename, templatename, context, doctree):
    for key in ("script_files", "css_files"):
        files = context.get(key, [])
        files[:] = [
            f
            for f in files
            if "thebe" not in str(f).lower()
            and "thebe" not in str(getattr(f, "attributes", {}).get("body", "")).lower()
        ]


def setup(app):
    _mathjax_source()  # fail early, with the fix, if the files are missing
    app.config.mathjax_path = "mathjax/tex-chtml.js"
    app.connect("build-finished", _copy_mathjax)
    app.connect("html-page-context", _drop_thebe)
    register_plugin("pybtex.style.labels", "book-author-year", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "book-author-year", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
