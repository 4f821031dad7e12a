"""The built book, as a reader meets it: every page of _toc.yml in a headless Chromium.

Run after `jupyter-book build .` (the Makefile's `browser` target does both in order). Serves
_build/html on 127.0.0.1, blocks every request that leaves this machine, and on each page checks
status, local assets, console errors, images, MathJax typesetting and internal links. Saves a
full-page screenshot of each page under _build/screenshots/.
"""

import functools
import http.server
import os
import re
import shutil
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
PDF_NAME = "self-attention-tested.pdf"


def toc_pages() -> list[str]:
    """Every file named in _toc.yml, root first, without extension."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


PAGES = toc_pages()
EDITIONS = {"en": "", "zh": "zh/"}  # the Chinese edition is served from zh/ beside the English one
sys.path.insert(0, str(ROOT / "tools"))
from editions import TRANSLATED  # noqa: E402  the pages the Chinese edition has translated

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
LATIN = re.compile(r"[A-Za-z]")


def find_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.cache
def ids_of(path: Path) -> frozenset:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8"))
    return frozenset(parser.ids)


@pytest.fixture(scope="session")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail("_build/html/index.html is missing: build the book first (make build)")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def browser():
    executable = find_chromium()
    if executable is None:
        message = (
            "NO BROWSER: Chromium was not found, so the built book was NOT tested in a browser. "
            "Install it (Debian/Ubuntu: apt-get install chromium) or set CHROMIUM=/path/to/chromium."
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


# Runs in the page: waits for MathJax, forces images to load, and reports what a reader would see.
INSPECT = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const images = [...document.images];
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  const math = [...document.querySelectorAll(".math")];
  const untypeset = math.filter(el => !el.querySelector("mjx-container")).map(el => el.textContent.slice(0, 60));
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (parent.closest("pre, code, script, style, mjx-container, .highlight, textarea")) continue;
    const text = node.textContent;  // leftover TeX delimiters: \( \[ $$ or $...$
    if (/\\\(|\\\[|\$\$|(^|\s)\$[^$\s][^$]*\$/.test(text)) raw.push(text.slice(0, 80));
  }
  return {
    images: images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth})),
    mathCount: math.length,
    untypeset: untypeset,
    rawMath: raw,
    links: [...document.querySelectorAll("a[href]")].map(a => a.href),
    // outputs (tables, figures, text) that stick out of the text column
    overflowing: [...document.querySelectorAll(".cell_output table, .cell_output img, .cell_output pre")]
      .filter(el => {
        const column = el.closest("article, main").getBoundingClientRect().right;
        const box = el.getBoundingClientRect();
        // a wide output may scroll inside its own box; it must not stick out of the column
        return box.right > column + 1;
      })
      .map(el => el.tagName + ": " + (el.textContent || el.src || "").slice(0, 60)),
    text: document.querySelector("main, article, body").innerText,
    hasMathJax: !!window.MathJax,
    mathErrors: [...document.querySelectorAll("mjx-merror, .MathJax_Error")]
      .map(el => (el.getAttribute("data-mjx-error") || el.textContent).slice(0, 80)),
    // every figure a notebook draws: numbered with a caption, and alt text that says something
    figures: [...document.querySelectorAll(".cell_output img")].map(img => ({
      src: (img.currentSrc || img.src).split("/").pop(),
      alt: img.getAttribute("alt") || "",
      caption: img.closest("figure") && img.closest("figure").querySelector("figcaption")
        ? img.closest("figure").querySelector("figcaption").innerText : "",
    })),
    pageWidth: document.documentElement.scrollWidth,
    glued: [...document.querySelectorAll(".pasted-text, .pasted-inline")].map(el => el.textContent.trim()),
    prose: (() => {
      const article = document.querySelector("article") || document.body;
      const copy = article.cloneNode(true);
      copy.querySelectorAll("pre, code, mjx-container, .cell_output, .cell_input, .math, script, style, table")
        .forEach(el => el.remove());
      return copy.textContent;
    })(),
    viewportWidth: window.innerWidth,
  };
}
"""


# Test output and bookkeeping a reader must never see on a page.
MARKERS = re.compile(r"NBVAL_|\bclaim: [^\n]*\b(?:True|False)\b|<= ?[0-9.]+ met\b|\bnoqa\b|Traceback \(most recent")
PATH_ALT = re.compile(r"(^$|\.(png|svg|jpe?g)$|_images/|/)")


def open_page(browser, server, page_name, width):
    """The page at a given viewport width, with every request that leaves the machine blocked."""
    origin = urlsplit(server).netloc
    record = {"failed": [], "external": [], "console": []}
    page = browser.new_page(viewport={"width": width, "height": 900})

    def guard(route):
        if urlsplit(route.request.url).netloc == origin or route.request.url.startswith("data:"):
            route.continue_()
        else:
            record["external"].append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.on("requestfailed", lambda r: record["failed"].append(f"{r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and record["failed"].append(f"{r.url} (HTTP {r.status})"))
    page.on("console", lambda m: m.type == "error" and record["console"].append(m.text))
    page.on("pageerror", lambda e: record["console"].append(str(e)))
    response = page.goto(f"{server}/{page_name}.html", wait_until="load")
    assert response is not None and response.status == 200, f"{page_name}: HTTP {response and response.status}"
    return page, record


@functools.cache
def inspected(server, browser, edition, page_name, width):
    """What a reader of one edition sees on one page at one width (each page is opened once)."""
    page, record = open_page(browser, server, EDITIONS[edition] + page_name, width)
    info = page.evaluate(INSPECT)
    folder = SHOTS / edition / str(width)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{page_name.replace('/', '__')}.png"), full_page=True)
    page.close()
    return info, record


@pytest.mark.parametrize("edition", list(EDITIONS))
@pytest.mark.parametrize("page_name", PAGES)
def test_page(page_name, edition, server, browser):
    path = HTML / f"{EDITIONS[edition]}{page_name}.html"
    assert path.exists(), f"{page_name} is in _toc.yml but {path.relative_to(ROOT)} was not built"
    origin = urlsplit(server).netloc
    info, record = inspected(server, browser, edition, page_name, 1280)
    phone_info, phone_record = inspected(server, browser, edition, page_name, 390)
    failed = record["failed"] + phone_record["failed"]
    external = record["external"] + phone_record["external"]
    console_errors = record["console"] + phone_record["console"]

    assert not external, f"{page_name}: requests leave this machine (the book must work offline): {external}"
    local_failures = [f for f in failed if urlsplit(f.split(" ")[0]).netloc == origin]
    assert not local_failures, f"{page_name}: local assets failed to load: {local_failures}"
    assert not console_errors, f"{page_name}: JavaScript console errors: {console_errors}"
    broken = [img["src"] for img in info["images"] if img["width"] == 0]
    assert not broken, f"{page_name}: images that did not decode: {broken}"
    if info["mathCount"]:
        assert info["hasMathJax"], f"{page_name}: has math but MathJax did not load"
    assert not info["untypeset"], f"{page_name}: math left untypeset by MathJax: {info['untypeset'][:5]}"
    assert not info["rawMath"], f"{page_name}: raw TeX in the page text: {info['rawMath'][:5]}"
    assert not info["mathErrors"], f"{page_name}: MathJax errors (Math input error): {info['mathErrors'][:5]}"

    assert not info["overflowing"], f"{page_name}: outputs wider than the page: {info['overflowing'][:5]}"
    assert phone_info["pageWidth"] <= phone_info["viewportWidth"], (
        f"{page_name}: at 390 px the page is {phone_info['pageWidth']} px wide and scrolls sideways"
    )
    markers = sorted(set(MARKERS.findall(info["text"])))
    assert not markers, f"{page_name}: test output or markers visible on the page: {markers}"
    uncaptioned = [f["src"] for f in info["figures"] if not f["caption"].strip()]
    assert not uncaptioned, f"{page_name}: figures without a number and caption: {uncaptioned}"
    bad_alt = [f"{f['src']} (alt {f['alt']!r})" for f in info["figures"] if PATH_ALT.search(f["alt"])]
    assert not bad_alt, f"{page_name}: figures whose alt text is empty or a path: {bad_alt}"

    bad_links = []
    for link in info["links"]:
        target = urlsplit(link)
        if target.netloc != origin:
            continue
        file = HTML / unquote(target.path).lstrip("/")
        if file.is_dir():
            file = file / "index.html"
        if not file.exists():
            bad_links.append(f"{link} (no such file)")
        elif target.fragment and file.suffix == ".html" and unquote(target.fragment) not in ids_of(file):
            bad_links.append(f"{link} (no such anchor)")
    assert not bad_links, f"{page_name}: internal links that do not resolve: {bad_links}"

    site = urljoin(f"{server}/", EDITIONS[edition])
    other = {"en": "zh", "zh": "en"}[edition]
    assert urljoin(urljoin(f"{server}/", EDITIONS[other]), f"{page_name}.html") in info["links"], (
        f"{page_name}: no link to the same page in the other edition"
    )
    assert urljoin(site, PDF_NAME) in info["links"] or not page_name.startswith("chapters/"), (
        f"{page_name}: no download link to the PDF"
    )
    if page_name.startswith("chapters/"):
        notebook = urljoin(site, f"_sources/{page_name}.ipynb")
        assert notebook in info["links"], f"{page_name}: no download link to its .ipynb"
        for ref in ("notation.html", "glossary.html"):
            assert urljoin(site, ref) in info["links"], f"{page_name}: no link to {ref}"
        mentions_figure = re.search(r"\b(figure|plot|heatmap)s?\b", info["text"], re.IGNORECASE)
        real_images = [img for img in info["images"] if img["width"] > 0 and "_images/" in img["src"]]
        if mentions_figure and edition == "en":
            assert real_images, f"{page_name}: the text refers to a figure but the page shows none"
    # The bibliography's entries are the cited works' own (English) titles: only its heading is prose.
    if edition == "zh" and page_name in TRANSLATED and page_name != "bibliography":
        cjk, latin = len(CJK.findall(info["prose"])), len(LATIN.findall(info["prose"]))
        share = cjk / max(1, cjk + latin)
        assert share >= 0.5, f"{page_name}: the Chinese page's prose is {share:.0%} Chinese characters"
    if edition == "zh":
        english, _ = inspected(server, browser, "en", page_name, 1280)
        assert sorted(info["glued"]) == sorted(english["glued"]), (
            f"{page_name}: the glued values differ between the editions: "
            f"{sorted(set(info['glued']) ^ set(english['glued']))[:8]}"
        )
        assert all(value for value in info["glued"]), f"{page_name}: an empty glued value on the Chinese page"


SIDEBAR = """() => {
  const dialog = document.querySelector("dialog#pst-primary-sidebar-modal");
  const sidebar = document.querySelector("#pst-primary-sidebar");
  const holder = dialog && dialog.open ? dialog : sidebar;
  const links = [...holder.querySelectorAll("nav a.reference")].filter(a => a.getBoundingClientRect().width > 0);
  return {open: !!(dialog && dialog.open), hidden: getComputedStyle(sidebar).visibility === "hidden",
          chapters: links.map(a => a.textContent.trim())};
}"""


@pytest.mark.parametrize("edition", list(EDITIONS))
@pytest.mark.parametrize("width", [1280, 390])
def test_navigation_opens_and_closes_the_chapter_list(width, edition, server, browser):
    page, _ = open_page(browser, server, EDITIONS[edition] + PAGES[1], width)
    before = page.evaluate(SIDEBAR)
    toggles = page.locator(".primary-toggle")
    assert toggles.count() == 1, f"{toggles.count()} ☰ buttons: a hidden copy would take the click"
    assert page.locator("input.search-input, .search-button-field").count() <= 1, "more than one search box"
    toggles.first.click()
    page.wait_for_timeout(500)
    after = page.evaluate(SIDEBAR)
    page.close()
    if width >= 992:  # desktop: the sidebar is shown, and the button hides it
        assert before["chapters"] and not before["hidden"], "the chapter list is not shown on a desktop"
        assert after["hidden"], "the ☰ button did not hide the sidebar on a desktop"
    else:  # phone: the sidebar is hidden, and the button opens it with every chapter listed
        assert after["open"], "the ☰ button did not open the chapter list on a phone"
        assert len(after["chapters"]) >= len(PAGES) - 1, f"chapter list on a phone: {after['chapters']}"


@pytest.mark.parametrize("edition", list(EDITIONS))
def test_the_pdf_has_every_chapter(edition):
    from pypdf import PdfReader

    pdf = HTML / EDITIONS[edition] / PDF_NAME
    assert pdf.exists(), f"{pdf.relative_to(ROOT)} is missing: `make pdf` prints the book"
    reader = PdfReader(pdf)
    bookmarks = [item.title for item in reader.outline]
    assert len(bookmarks) == len(PAGES), f"the PDF has {len(bookmarks)} bookmarks for {len(PAGES)} pages"
    text = "\n".join(page.extract_text() for page in reader.pages)
    for page_name, bookmark in zip(PAGES, bookmarks, strict=True):
        title = bookmark.split(". ", 1)[-1]
        # the PDF's text has a space where the font changes (softmax：... reads back as softmax ：...)
        assert title and re.sub(r"\s+", "", title.split()[0]) in re.sub(r"\s+", "", text), (
            f"{page_name}: its title {bookmark!r} is not in the PDF")
    numbered = [b for b in bookmarks if re.match(r"\d+\. ", b)]
    assert len(numbered) == sum(p.startswith("chapters/") for p in PAGES), f"unnumbered chapters: {bookmarks}"
    assert "Math input error" not in text


def test_landing_page_shows_a_picture_and_the_commands(server, browser):
    page, _ = open_page(browser, server, PAGES[0], 1280)
    info = page.evaluate(INSPECT)
    page.close()
    pictures = [img for img in info["images"] if "_images/" in img["src"] and img["width"] > 0]
    assert pictures, "no picture on the landing page"
    for command in ("make book", "make test"):
        assert command in info["text"], f"the landing page does not give `{command}`"
    assert urljoin(f"{server}/", "self-attention-tested-source.tar.gz") in info["links"], "no link to the source"
    assert (HTML / "self-attention-tested-source.tar.gz").exists()


EXPLORER_PAGES = ["chapters/09_pretrained_attention", "chapters/11_translation"]


@pytest.mark.parametrize("page_name", EXPLORER_PAGES)
def test_the_attention_explorer_answers_a_hover(page_name, server, browser):
    page, record = open_page(browser, server, page_name, 1280)
    explorer = page.locator(".attention-explorer.ae-ready").first
    assert explorer.count() == 1, f"{page_name}: no attention explorer was built"
    queries, keys = explorer.locator(".ae-q"), explorer.locator(".ae-k")

    def key_shades():  # the background of every key token: the weights of the hovered query
        return keys.evaluate_all("ts => ts.map(t => t.style.backgroundColor)")

    before = key_shades()
    shades = []
    for index in (0, queries.count() - 1):
        queries.nth(index).hover()
        shades.append(key_shades())
    page.close()
    assert any(shades[0]) and any(shades[1]), f"{page_name}: hovering a query highlights no key"
    assert shades[0] != shades[1] and shades[0] != before, f"{page_name}: the highlighted weights do not change"
    assert not record["external"], f"{page_name}: the explorer reached outside the page's server: {record['external']}"


@pytest.mark.parametrize("word", ["梯度", "softmax"])
def test_the_chinese_search_finds_chinese_and_latin_words(word, server, browser):
    # Sphinx indexes the words of Chinese prose only with jieba (tools/zh_edition.py): without it
    # 梯度 (gradient), in the text of many pages and the title of none, finds no page
    page = browser.new_page()
    page.goto(f"{server}/zh/search.html?q={word}")
    page.wait_for_selector("#search-results ul.search li", timeout=20_000)
    found = page.locator("#search-results ul.search li").count()
    page.close()
    assert found >= 3, f"searching the Chinese edition for {word!r} found {found} pages"
