"""The rendered book as a reader sees it: build it strictly, then open every page in
headless Chromium, offline, with a fresh profile, at 1280x900 (and the chapters at
390x844 too).

Needs Chromium and chromedriver (Debian's `chromium` and `chromium-driver`), which
`make test` installs when it runs as root on Debian or Ubuntu. Screenshots of every page
go to _build/screenshots/.
"""

import functools
import http.server
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import yaml
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from tools.book import ROOT, repository_url, toc_files

SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
DESKTOP, PHONE = (1280, 900), (390, 844)
PAGES = [p.with_suffix(".html").as_posix() for p in toc_files()]
CHAPTERS = [p for p in PAGES if p.startswith("chapters/")]
HOW_TO_GET_CHROMIUM = (
    "the browser test needs Chromium and chromedriver: on Debian or Ubuntu run "
    "`apt-get install chromium chromium-driver` (make test does it when run as root); "
    "elsewhere install Chromium or Chrome and a matching chromedriver and put both on "
    "PATH"
)

# Run in the page after it loads: wait for MathJax, then report what a reader would
# notice. Returns a dict (see the tests below).
INSPECT = """
const done = arguments[arguments.length - 1];
const wait = (window.MathJax && MathJax.startup) ? MathJax.startup.promise
                                                 : Promise.resolve();
wait.then(async () => {
  const article = document.querySelector("article.bd-article");
  const report = {mathErrors: document.querySelectorAll("mjx-merror").length,
                  rawMath: [], brokenImages: [], wide: [], smallFigures: []};
  if (article) {
    const prose = article.cloneNode(true);
    prose.querySelectorAll("pre, code, mjx-container, script, style, div.cell")
         .forEach((el) => el.remove());
    const text = prose.textContent;
    const patterns = [/\\\\\\(/, /\\\\\\[/, /\\\\begin\\{/,
                      /\\$[^$\\s][^$\\n]{0,80}\\$/];
    for (const pattern of patterns) {
      const m = text.match(pattern);
      if (m) report.rawMath.push(text.slice(Math.max(0, m.index - 30), m.index + 50));
    }
    const limit = article.clientWidth + 1;
    const selectors = 'mjx-container[display="true"], table, div.cell_output pre, '
                    + 'div.cell_output .output, figure, div.highlight pre';
    for (const el of article.querySelectorAll(selectors)) {
      const box = el.getBoundingClientRect();
      if (el.scrollWidth > el.clientWidth + 1 || box.width > limit) {
        report.wide.push(`${el.tagName.toLowerCase()}.${el.className}: `
          + `${el.scrollWidth}px in ${el.clientWidth}px: `
          + (el.textContent || el.getAttribute("alt") || "").trim().slice(0, 60));
      }
    }
    for (const img of article.querySelectorAll("div.cell_output img")) {
      if (img.naturalWidth && img.clientWidth / img.naturalWidth < 0.7) {
        report.smallFigures.push(`${img.getAttribute("alt")} shown at `
          + `${Math.round(100 * img.clientWidth / img.naturalWidth)} %`);
      }
    }
  }
  for (const img of document.querySelectorAll("img")) {
    const src = img.currentSrc || img.src;
    try {
      const response = await fetch(src);
      if (!response.ok) report.brokenImages.push(src);
    } catch (error) { report.brokenImages.push(src); }
  }
  const link = (selector) => {
    const a = document.querySelector(selector);
    return a ? a.href : null;
  };
  report.previous = link("a.left-prev");
  report.next = link("a.right-next");
  report.launch = [...document.querySelectorAll("a")].map((a) => a.href)
    .filter((h) => h.includes("mybinder.org") || h.includes("colab.research"));
  done(report);
});
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def site():
    """Build the book strictly (any warning fails) and serve it on localhost."""
    shutil.rmtree(ROOT / "_build", ignore_errors=True)
    build = subprocess.run(
        [Path(sys.executable).parent / "jupyter-book", "build", "."]
        + ["-W", "-n", "--keep-going"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, "the strict book build failed:\n" + (
        build.stdout[-3000:] + build.stderr[-3000:]
    )
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(site):
    chromium, driver = _chromium(), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail(HOW_TO_GET_CHROMIUM, pytrace=False)
    profile = tempfile.mkdtemp(prefix="book-browser-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        # Offline: every host but this machine fails to resolve, so a page that needs
        # the network shows it as an error.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_script_timeout(30)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield chrome
    chrome.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(browser, site, page, size):
    browser.set_window_size(*size)
    browser.get_log("browser")  # forget what earlier pages logged
    browser.get(site + page)
    report = browser.execute_async_script(INSPECT)
    name = page.replace("/", "_").removesuffix(".html")
    browser.save_screenshot(str(SCREENSHOTS / f"{name}-{size[0]}.png"))
    report["errors"] = [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE"
    ]
    return report


def _expected_launch_links(page):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    owner_repo = repository_url().removeprefix("https://github.com/").strip("/")
    branch = config["repository"]["branch"]
    notebook = page.removesuffix(".html") + ".ipynb"
    return {
        "binder": f"https://mybinder.org/v2/gh/{owner_repo}/{branch}"
        f"?urlpath=lab/tree/{notebook}",
        "colab": f"https://colab.research.google.com/github/{owner_repo}/blob/"
        f"{branch}/{notebook}",
    }


def _common_checks(report, page):
    assert not report["errors"], f"{page}: console errors: {report['errors']}"
    assert report["mathErrors"] == 0, f"{page}: MathJax could not typeset a formula"
    assert not report["rawMath"], f"{page}: math left untypeset: {report['rawMath']}"
    assert not report["brokenImages"], f"{page}: images that do not load: " + str(
        report["brokenImages"]
    )


@pytest.mark.parametrize("page", PAGES)
def test_page_at_desktop_width(browser, site, page):
    report = _open(browser, site, page, DESKTOP)
    _common_checks(report, page)
    assert not report["wide"], (
        f"{page}: wider than the 740 px column at 1280 px (break equations with "
        f"aligned, shorten output lines, use a narrower table): {report['wide']}"
    )
    assert not report["smallFigures"], (
        f"{page}: figures shrunk so far that their text is too small (make them "
        f"narrower): {report['smallFigures']}"
    )
    index = PAGES.index(page)
    if index > 0:
        assert report["previous"] == site + PAGES[index - 1], (page, report)
    if index + 1 < len(PAGES):
        assert report["next"] == site + PAGES[index + 1], (page, report)
    if page in CHAPTERS:
        expected = _expected_launch_links(page)
        launch = report["launch"]
        assert any(link == expected["binder"] for link in launch), (page, launch)
        assert any(link == expected["colab"] for link in launch), (page, launch)


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_at_phone_width(browser, site, page):
    _common_checks(_open(browser, site, page, PHONE), page)


def test_search_finds_the_parameter_shift_rule(browser, site):
    browser.set_window_size(*DESKTOP)
    browser.get(site + "search.html?q=parameter-shift")
    try:
        WebDriverWait(browser, 20).until(
            lambda b: b.find_elements("css selector", "#search-results li")
        )
    except TimeoutException:
        pytest.fail("the search page found nothing for 'parameter-shift'")
    try:  # the summaries load one result after another
        WebDriverWait(browser, 20).until(
            lambda b: (
                len(b.find_elements("css selector", "#search-results p.context")) >= 3
            )
        )
    except TimeoutException:
        pytest.fail("the search results show no summaries")
    browser.save_screenshot(str(SCREENSHOTS / "search-1280.png"))
    summaries = [
        p.text
        for p in browser.find_elements("css selector", "#search-results p.context")
    ]
    noisy = [s for s in summaries if re.search(r"\\[(\[a-z]|\bContents\b", s)]
    assert not noisy, f"search summaries show math source or contents lists: {noisy}"
    links = [
        a.get_attribute("href")
        for a in browser.find_elements("css selector", "#search-results li a")
    ]
    assert any("04-parameter-shift" in link for link in links), links
