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
