"""Print the built book to one PDF: every page of _toc.yml in headless Chromium, joined in order.

    .venv/bin/python tools/print_book.py            # after the build; `make book` runs it
    .venv/bin/python tools/print_book.py zh         # the Chinese edition (_build/html/zh)

Serves _build/html on 127.0.0.1 (nothing leaves the machine), opens each page, waits for MathJax,
opens the exercise solutions, numbers the chapter's title as the sidebar does ("3. Why divide by
√d"), prints it to PDF with the page number and the book's title in the footer, and joins a cover
with the table of contents and all pages into _build/html/self-attention-tested.pdf, with one
bookmark per page. The PDF is what a reader downloads from every page's download menu. The
Chinese edition's PDF is printed the same way from _build/html/zh, with WenQuanYi Zen Hei (or
any installed font with Chinese glyphs) for the Chinese text.
"""

import functools
import html
import http.server
import io
import shutil
import sys
import threading
from pathlib import Path

import yaml
from playwright.sync_api import sync_playwright
from pypdf import PdfReader, PdfWriter

ROOT = Path(__file__).resolve().parents[1]
EDITIONS = {  # folder of the built edition, title, the cover's sentence, the contents heading
    "en": (ROOT / "_build" / "html", "Self-attention, tested",
           "A book that teaches self-attention with code that is tested on every change. "
           "Every number in it is recomputed by the notebooks beside it.", "Contents"),
    "zh": (ROOT / "_build" / "html" / "zh", "自注意力，经过检验",
           "一本用每次修改都经过测试的代码讲解自注意力的书。书中的每个数字都由旁边的笔记本重新计算。", "目录"),
}
PDF_NAME = "self-attention-tested.pdf"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def toc_entries() -> list[tuple[str, str]]:
    """(page, number) for every page of _toc.yml in reading order; number is "" when unnumbered."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    entries, chapter = [(toc["root"], "")], 0
    for part in toc["parts"]:
        for item in part["chapters"]:
            if part.get("numbered"):
                chapter += 1
            entries.append((item["file"], str(chapter) if part.get("numbered") else ""))
    return entries


PREPARE = r"""
async (number) => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  document.querySelectorAll("details").forEach(d => { if (d.closest(".cell_input") === null) d.open = true; });
  const images = [...document.images];
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  const h1 = document.querySelector("article h1, main h1");
  if (h1 && number) { h1.insertAdjacentText("afterbegin", number + ". "); }
  return h1 ? h1.textContent.replace("#", "").trim() : document.title;
}
"""

FOOTER = ("<div style='font-size:8px;width:100%;padding:0 12mm;display:flex;justify-content:space-between;"
          "color:#555;font-family:sans-serif'><span>{title}</span><span class='pageNumber'></span></div>")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(html_dir: Path):
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def cover(titles: list[tuple[str, str]], title: str, sentence: str, contents: str) -> str:
    rows = "".join(f"<li>{html.escape(t)}</li>" for _, t in titles[1:])
    return ("<html><body style='font-family:sans-serif;margin:30mm 20mm'>"
            f"<h1 style='font-size:32px'>{html.escape(title)}</h1><p>{html.escape(sentence)}</p>"
            f"<h2>{contents}</h2><ol style='list-style:none;padding:0;line-height:1.6'>{rows}</ol></body></html>")


def main(edition: str = "en") -> int:
    html_dir, title, sentence, contents = EDITIONS[edition]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not (html_dir / "index.html").exists() or chromium is None:
        print(f"print_book: needs the built book ({html_dir.relative_to(ROOT)}) and Chromium", file=sys.stderr)
        return 1
    httpd, url = serve(html_dir)
    printed, titles = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(url) else r.abort())
        for name, number in toc_entries():
            page.goto(f"{url}/{name}.html", wait_until="load")
            titles.append((name, page.evaluate(PREPARE, number)))
            printed.append(page.pdf(format="A4", print_background=True, display_header_footer=True,
                                    header_template="<span></span>", footer_template=FOOTER.format(title=title),
                                    margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"}))
        page.set_content(cover(titles, title, sentence, contents))
        front = page.pdf(format="A4")
        browser.close()
    httpd.shutdown()
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(front)))
    for (_, title), data in zip(titles, printed, strict=True):
        start = len(writer.pages)
        writer.append(PdfReader(io.BytesIO(data)))
        writer.add_outline_item(title=title, page_number=start)
    writer.add_metadata({"/Title": title})
    out = html_dir / PDF_NAME
    with out.open("wb") as f:
        writer.write(f)
    print(f"print_book: {len(writer.pages)} pages, {len(titles)} chapters and pages -> {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:2]))
