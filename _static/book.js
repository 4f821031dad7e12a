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
