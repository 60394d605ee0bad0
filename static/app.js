// assistantd's own small script. Everything works without it; it only adds
// conveniences. No inline scripts anywhere (the CSP forbids them).
(function () {
  "use strict";
  // Script is on: narrow screens fold the menu behind its button.
  document.documentElement.classList.add("js");
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("[data-menu-toggle]");
    if (!btn) return;
    var header = btn.closest("header");
    var open = btn.getAttribute("aria-expanded") !== "true";
    btn.setAttribute("aria-expanded", String(open));
    header.toggleAttribute("data-open", open);
  });
  // Theme: the system's (auto), or light or dark as picked with the
  // header's toggle; remembered in this browser.
  var themes = ["auto", "light", "dark"];
  function applyTheme(t) {
    if (t === "light" || t === "dark") document.documentElement.setAttribute("data-theme", t);
    else document.documentElement.removeAttribute("data-theme");
    document.querySelectorAll("[data-theme-toggle]").forEach(function (b) {
      b.textContent = "Theme: " + t;
      b.hidden = false;
    });
  }
  var theme = "auto";
  try { theme = localStorage.getItem("theme") || "auto"; } catch (e) {}
  applyTheme(theme);
  document.addEventListener("click", function (ev) {
    if (!ev.target.closest("[data-theme-toggle]")) return;
    theme = themes[(themes.indexOf(theme) + 1) % themes.length];
    try { localStorage.setItem("theme", theme); } catch (e) {}
    applyTheme(theme);
  });
  // Upload progress: htmx reports the request body's progress; the form's
  // <progress data-upload-progress> shows it (the answer replaces the form).
  document.addEventListener("htmx:xhr:progress", function (ev) {
    var form = ev.target.closest && ev.target.closest("form");
    var bar = form && form.querySelector("[data-upload-progress]");
    var d = ev.detail || {};
    if (!bar || !d.lengthComputable || !d.total) return;
    var pct = Math.round((100 * d.loaded) / d.total);
    bar.hidden = false;
    bar.setAttribute("value", String(pct));
    bar.textContent = pct + "%";
  });
  // Copy buttons: <button data-copy="#selector">.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-copy]");
    if (!btn) return;
    var el = document.querySelector(btn.getAttribute("data-copy"));
    if (!el || !navigator.clipboard) return;
    navigator.clipboard.writeText(el.value || el.textContent).then(function () {
      btn.textContent = "Copied";
    });
  });
  // Confirm buttons without htmx: <button data-confirm="Delete?">.
  document.addEventListener("submit", function (ev) {
    var btn = ev.submitter;
    var msg = (btn && btn.getAttribute("data-confirm")) || ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });
})();
