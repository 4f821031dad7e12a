// The book's page script (Jupyter Book loads every .js file in _static/ on every page).
// A click on a figure opens it full size over the page; a second click, or Escape, closes it.
document.addEventListener("DOMContentLoaded", () => {
  const close = () => document.querySelectorAll(".figure-zoom").forEach((el) => el.remove());
  document.querySelectorAll(".cell_output img, figure img").forEach((img) => {
    img.setAttribute("title", "Click to enlarge");
    img.addEventListener("click", () => {
      const overlay = document.createElement("div");
      overlay.className = "figure-zoom";
      overlay.setAttribute("role", "dialog");
      overlay.setAttribute("aria-label", img.alt || "figure");
      const big = document.createElement("img");
      big.src = img.src;
      big.alt = img.alt;
      overlay.appendChild(big);
      overlay.addEventListener("click", close);
      document.body.appendChild(overlay);
    });
  });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });
});

// The download menu's ".pdf" entry printed only the page on screen; it becomes a link to the PDF of
// the whole book that `make book` prints (tools/print_book.py), beside the page's .ipynb.
document.addEventListener("DOMContentLoaded", () => {
  const root = document.documentElement.dataset.content_root || "";
  document.querySelectorAll(".btn-download-pdf-button").forEach((button) => {
    const link = document.createElement("a");
    link.href = root + "self-attention-tested.pdf";
    link.className = "btn btn-sm btn-download-book-pdf dropdown-item";
    link.title = "The whole book as one PDF";
    link.innerHTML = '<span class="btn__icon-container"><i class="fas fa-file-pdf"></i></span>' +
      '<span class="btn__text-container">.pdf (whole book)</span>';
    button.replaceWith(link);
  });
});

// The two editions: the English book at the site's root, the Chinese one in zh/. Every page links
// to the same page in the other edition, beside the download menu.
document.addEventListener("DOMContentLoaded", () => {
  const buttons = document.querySelector(".article-header-buttons");
  if (!buttons) return;
  const chinese = (document.documentElement.lang || "").startsWith("zh");
  const root = new URL(document.documentElement.dataset.content_root || "./", window.location.href);
  const page = window.location.href.slice(root.href.length).split("#")[0] || "index.html";
  const other = new URL(chinese ? "../" + page : "zh/" + page, root);
  const link = document.createElement("a");
  link.href = other.href;
  link.className = "btn btn-sm edition-switch";
  link.lang = chinese ? "en" : "zh-CN";
  link.hreflang = link.lang;
  link.textContent = chinese ? "English" : "中文";
  link.title = chinese ? "This page in English" : "本页中文版";
  buttons.prepend(link);
});
