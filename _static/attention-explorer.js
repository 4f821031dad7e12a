/* The book's attention explorer (attnlib.explorer.attention_explorer writes the HTML it reads).
 *
 * Every <div class="attention-explorer"> holds a JSON block (class "ae-data"): the tokens, the
 * layer and head names, and the weights as base64 bytes, round(100 w), shaped
 * (layers, heads, n_q, n_k). This script draws, inside the div's "ae-screen" element, selectors
 * for the layer and head and a head view: query tokens on the left, key tokens on the right, a
 * line from query i to key j as opaque as the weight. Hover or focus a query token to see only
 * its weights (the keys are shaded by them); tap or click (Enter) to pin it, again to release.
 * Hovering a key shows which queries read it. No network, no libraries.
 */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var ROW = 20; // px per token row
  var GAP = 110; // px between the two columns, where the lines run

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function decode(b64) {
    var raw = atob(b64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function select(label, names, chosen, onChange) {
    var wrap = el("label", "ae-select"), box = el("select");
    wrap.appendChild(document.createTextNode(label + " "));
    names.forEach(function (name, i) {
      var option = el("option", "", name);
      option.value = String(i);
      if (i === chosen) option.selected = true;
      box.appendChild(option);
    });
    box.addEventListener("change", function () { onChange(parseInt(box.value, 10)); });
    wrap.appendChild(box);
    if (names.length < 2) wrap.hidden = true;
    return wrap;
  }

  function build(root) {
    var source = root.querySelector("script.ae-data"), screen = root.querySelector(".ae-screen");
    if (!source || !screen || root.classList.contains("ae-ready")) return;
    var d = JSON.parse(source.textContent), w = decode(d.w);
    var nL = d.shape[0], nH = d.shape[1], nQ = d.shape[2], nK = d.shape[3];
    var state = { layer: d.layer, head: d.head, hover: null, pinned: null };

    function weight(i, j) { // weight of query i on key j in the selected head, in [0, 1]
      return w[((state.layer * nH + state.head) * nQ + i) * nK + j] / d.scale;
    }

    var controls = el("div", "ae-controls");
    controls.appendChild(select("Layer", d.layers, d.layer, function (v) { state.layer = v; draw(); }));
    controls.appendChild(select("Head", d.heads, d.head, function (v) { state.head = v; draw(); }));
    var view = el("div", "ae-view");
    var left = el("div", "ae-column ae-queries"), right = el("div", "ae-column ae-keys");
    var height = ROW * Math.max(nQ, nK);
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "ae-lines");
    svg.setAttribute("width", GAP);
    svg.setAttribute("height", height);
    svg.setAttribute("aria-hidden", "true");
    view.style.height = height + "px";
    var status = el("p", "ae-status");
    status.setAttribute("aria-live", "polite");

    function token(text, side, index) {
      var t = el("span", "ae-token ae-" + side, text);
      t.tabIndex = 0;
      t.setAttribute("role", "button");
      t.dataset.index = String(index);
      t.style.height = ROW + "px";
      t.style.lineHeight = ROW + "px";
      var focus = { side: side, index: index };
      t.addEventListener("pointerenter", function (e) {
        if (e.pointerType === "mouse") { state.hover = focus; draw(); }
      });
      t.addEventListener("pointerleave", function (e) {
        if (e.pointerType === "mouse") { state.hover = null; draw(); }
      });
      t.addEventListener("focus", function () { state.hover = focus; draw(); });
      t.addEventListener("blur", function () { state.hover = null; draw(); });
      function pin() {
        var same = state.pinned && state.pinned.side === side && state.pinned.index === index;
        state.pinned = same ? null : focus;
        state.hover = null;
        draw();
      }
      t.addEventListener("click", pin);
      t.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pin(); }
      });
      return t;
    }
    var qs = d.q.map(function (s, i) { return token(s, "q", i); });
    var ks = d.k.map(function (s, j) { return token(s, "k", j); });
    qs.forEach(function (t) { left.appendChild(t); });
    ks.forEach(function (t) { right.appendChild(t); });
    view.appendChild(left);
    view.appendChild(svg);
    view.appendChild(right);

    function yOf(index, count) { return (index + 0.5) * height / count; }

    function line(i, j, opacity) {
      var l = document.createElementNS(SVG, "line");
      l.setAttribute("x1", 2);
      l.setAttribute("y1", yOf(i, nQ));
      l.setAttribute("x2", GAP - 2);
      l.setAttribute("y2", yOf(j, nK));
      l.setAttribute("stroke-opacity", opacity.toFixed(2));
      svg.appendChild(l);
    }

    function shade(t, value) {
      t.style.backgroundColor = value > 0 ? "rgba(0, 114, 178, " + value.toFixed(2) + ")" : "";
      t.classList.toggle("ae-strong", value >= 0.5);
      t.dataset.weight = value.toFixed(2);
      t.title = value.toFixed(2);
    }

    function draw() {
      var focus = state.hover || state.pinned;
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      qs.concat(ks).forEach(function (t) {
        t.classList.remove("ae-active", "ae-pinned", "ae-strong");
        t.style.backgroundColor = "";
        delete t.dataset.weight;
        t.removeAttribute("title");
      });
      var i, j, v, ranked = [];
      if (!focus) {
        for (i = 0; i < nQ; i++) for (j = 0; j < nK; j++) {
          v = weight(i, j);
          if (v > 0) line(i, j, 0.6 * v);
        }
        status.textContent = d.layers[state.layer] + ", " + d.heads[state.head] +
          ": hover or tap a token to see its weights.";
        return;
      }
      var tokens = focus.side === "q" ? qs : ks;
      tokens[focus.index].classList.add("ae-active");
      if (state.pinned) (state.pinned.side === "q" ? qs : ks)[state.pinned.index].classList.add("ae-pinned");
      var count = focus.side === "q" ? nK : nQ;
      for (var other = 0; other < count; other++) {
        i = focus.side === "q" ? focus.index : other;
        j = focus.side === "q" ? other : focus.index;
        v = weight(i, j);
        if (v > 0) line(i, j, v);
        shade((focus.side === "q" ? ks : qs)[other], v);
        ranked.push([v, other]);
      }
      ranked.sort(function (a, b) { return b[0] - a[0] || a[1] - b[1]; });
      var names = focus.side === "q" ? d.k : d.q;
      var top = ranked.slice(0, 3).map(function (r) { return "\u201c" + names[r[1]] + "\u201d " + r[0].toFixed(2); });
      var what = focus.side === "q" ? " attends most to " : " is read most by ";
      status.textContent = "\u201c" + (focus.side === "q" ? d.q : d.k)[focus.index] + "\u201d" + what +
        top.join(", ") + " (" + d.layers[state.layer] + ", " + d.heads[state.head] + ")";
    }

    if (d.title) screen.appendChild(el("p", "ae-title", d.title));
    screen.appendChild(controls);
    screen.appendChild(status);
    var scroller = el("div", "ae-scroll");
    scroller.appendChild(view);
    screen.appendChild(scroller);
    draw();
    root.classList.add("ae-ready");
  }

  function buildAll() {
    var roots = document.querySelectorAll("div.attention-explorer");
    for (var i = 0; i < roots.length; i++) {
      try { build(roots[i]); } catch (err) { console.warn("attention explorer:", err); }
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", buildAll);
  else buildAll();
})();
