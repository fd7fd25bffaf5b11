// The book's own scripts (loaded by _config.yml). No network: everything here is local.

// On a phone, show a figure at no less than 60 % of its stored width (capped at 640 px)
// so that its text stays legible; its container scrolls sideways.
function bookSizeWideFigures() {
  const phone = window.matchMedia("(max-width: 600px)").matches;
  document.querySelectorAll("div.cell_output img, figure img").forEach((img) => {
    const apply = () => {
      const natural = img.naturalWidth;
      const fits = img.parentElement.clientWidth;
      if (phone && natural > fits) {
        img.classList.add("book-wide-figure");
        img.style.width = `${Math.max(fits, Math.min(natural * 0.6, 640))}px`;
      } else {
        img.classList.remove("book-wide-figure");
        img.style.width = "";
      }
    };
    if (img.complete) apply();
    else img.addEventListener("load", apply, { once: true });
  });
}
document.addEventListener("DOMContentLoaded", bookSizeWideFigures);
window.addEventListener("resize", bookSizeWideFigures);

// Search result snippets: leave out math source, code cells and navigation, which read as
// noise in a one-line summary.
// Installed once every script has run: searchtools.js loads after this file.
document.addEventListener("DOMContentLoaded", () => {
  if (typeof Search === "undefined" || !Search.htmlToText) return;
  const original = Search.htmlToText;
  Search.htmlToText = (htmlString, anchor) => {
    const doc = new DOMParser().parseFromString(htmlString, "text/html");
    const noise = "span.math, div.math, div.cell_input, nav, .toctree-wrapper, .bd-toc, "
      + ".onlyprint, .bd-header-article, .bd-sidebar-secondary";
    doc.querySelectorAll(noise).forEach((el) => el.remove());
    return original(doc.documentElement.outerHTML, anchor);
  };
});
