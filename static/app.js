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
  // The project switcher (<select data-autosubmit>) switches as soon as a
  // project is picked; without script its button does.
  document.addEventListener("change", function (ev) {
    var sel = ev.target.closest && ev.target.closest("select[data-autosubmit]");
    if (sel && sel.form) sel.form.requestSubmit();
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
  // Pickers: <input data-filter-list="#list"> hides the list's entries
  // (label[data-pick-text]) that do not contain what is typed; ticked
  // entries always stay in view.
  document.addEventListener("input", function (ev) {
    var sel = ev.target.getAttribute && ev.target.getAttribute("data-filter-list");
    if (!sel) return;
    var q = ev.target.value.trim().toLowerCase();
    document.querySelectorAll(sel + " label[data-pick-text]").forEach(function (l) {
      var box = l.querySelector("input");
      l.hidden = !!q && !(box && box.checked) && l.getAttribute("data-pick-text").toLowerCase().indexOf(q) < 0;
    });
  });
  // "Upload new" in a picker: <input type=file data-upload-into="#list"
  // data-upload-name="field">. The files go to POST /files (purpose
  // assistants) with the form's CSRF token; the page that answer leads to
  // (/files?uploaded=…) names them, and each joins the list, ticked.
  document.querySelectorAll("[data-picker-upload]").forEach(function (el) { el.hidden = false; });
  document.addEventListener("change", function (ev) {
    var input = ev.target;
    var sel = input.getAttribute && input.getAttribute("data-upload-into");
    if (!sel || !input.files || !input.files.length) return;
    var box = input.closest("[data-picker-upload]");
    var bar = box && box.querySelector("[data-upload-progress]");
    var errEl = box && box.querySelector("[data-upload-error]");
    var token = input.form && input.form.querySelector("input[name=csrf_token]");
    var body = new FormData();
    body.append("csrf_token", token ? token.value : "");
    body.append("purpose", "assistants");
    Array.prototype.forEach.call(input.files, function (f) { body.append("files", f); });
    if (errEl) errEl.textContent = "";
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/files");
    xhr.upload.onprogress = function (e) {
      if (!bar || !e.lengthComputable || !e.total) return;
      bar.hidden = false;
      bar.setAttribute("value", String(Math.round((100 * e.loaded) / e.total)));
    };
    xhr.onload = function () {
      if (bar) bar.hidden = true;
      input.value = "";
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var list = document.querySelector(sel);
      var added = 0;
      doc.querySelectorAll('[data-testid="upload-result"]').forEach(function (row) {
        var id = row.querySelector(".mono");
        if (!id || !list) return;
        var name = row.querySelector("td").textContent;
        var label = document.createElement("label");
        label.className = "inline pick";
        label.setAttribute("data-pick-text", name + " " + id.textContent);
        var cb = document.createElement("input");
        cb.type = "checkbox";
        cb.name = input.getAttribute("data-upload-name");
        cb.value = id.textContent;
        cb.checked = true;
        label.appendChild(cb);
        label.appendChild(document.createTextNode(" " + name + " "));
        var note = document.createElement("span");
        note.className = "muted small";
        note.textContent = "(new)";
        label.appendChild(note);
        list.insertBefore(label, list.firstChild);
        added++;
      });
      var empty = list && list.querySelector("[data-pick-empty]");
      if (empty && added) empty.remove();
      var flash = doc.querySelector('[data-testid="flash"]');
      if (errEl && (xhr.status >= 400 || (flash && flash.classList.contains("err")))) {
        errEl.textContent = flash ? flash.textContent : "The upload failed (" + xhr.status + ").";
      }
    };
    xhr.onerror = function () {
      if (bar) bar.hidden = true;
      if (errEl) errEl.textContent = "The server did not answer; try again.";
    };
    xhr.send(body);
  });
  // "Upload new" in the vector store picker: <input type=file
  // data-vs-upload="#list">. The files go into the store chosen in the
  // list; with None chosen a store is created first (POST /vector_stores,
  // named from the box beside, or after the first file). The store's
  // entry then shows the files added and is chosen; nothing else on the
  // page changes, so unsaved edits stay. Progress and refusals show in
  // place.
  document.addEventListener("change", function (ev) {
    var input = ev.target;
    var sel = input.getAttribute && input.getAttribute("data-vs-upload");
    if (!sel || !input.files || !input.files.length) return;
    var list = document.querySelector(sel);
    var box = input.closest("[data-picker-upload]");
    var bar = box.querySelector("[data-upload-progress]");
    var errEl = box.querySelector("[data-upload-error]");
    var statusEl = box.querySelector("[data-upload-status]");
    var nameEl = box.querySelector("[data-vs-new-name]");
    var token = input.form && input.form.querySelector("input[name=csrf_token]");
    var files = Array.prototype.slice.call(input.files);
    var chosen = list.querySelector("input[name=vector_store_ids]:checked");
    errEl.textContent = "";
    function fail(msg) {
      bar.hidden = true;
      statusEl.textContent = "";
      errEl.textContent = msg;
      input.value = "";
    }
    // The flash of the page an answer led to, when it reports a refusal.
    function refusal(xhr) {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var flash = doc.querySelector('[data-testid="flash"].err, [data-testid="error-message"], [data-testid="vs-error"]');
      if (xhr.status >= 400) return flash ? flash.textContent.trim() : "The upload failed (" + xhr.status + ").";
      return flash ? flash.textContent.trim() : "";
    }
    function send(url, body, progress, done) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      if (progress) xhr.upload.onprogress = progress;
      xhr.onload = function () { done(xhr); };
      xhr.onerror = function () { fail("The server did not answer; try again."); };
      xhr.send(body);
    }
    function entryFor(id, name) {
      var radio = list.querySelector('input[name=vector_store_ids][value="' + CSS.escape(id) + '"]');
      if (radio) return radio.closest("label");
      var label = document.createElement("label");
      label.className = "inline pick";
      label.setAttribute("data-pick-text", name + " " + id);
      label.setAttribute("data-testid", "vs-option");
      radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "vector_store_ids";
      radio.value = id;
      label.appendChild(radio);
      var n = document.createElement("span");
      n.className = "wrap";
      n.textContent = " " + name + " ";
      label.appendChild(n);
      var none = list.querySelector('input[name=vector_store_ids][value=""]');
      list.insertBefore(label, none ? none.closest("label").nextSibling : list.firstChild);
      return label;
    }
    function upload(id, name, isNew) {
      var body = new FormData();
      body.append("csrf_token", token ? token.value : "");
      files.forEach(function (f) { body.append("files", f); });
      statusEl.textContent = "Uploading…";
      send("/vector_stores/" + encodeURIComponent(id) + "/files", body, function (e) {
        if (!e.lengthComputable || !e.total) return;
        bar.hidden = false;
        var pct = Math.round((100 * e.loaded) / e.total);
        bar.setAttribute("value", String(pct));
        bar.textContent = pct + "%";
      }, function (xhr) {
        var added = (xhr.responseURL.match(/[?&]added=/g) || []).length;
        var msg = refusal(xhr);
        if (!added) {
          if (isNew) entryFor(id, name); // the store exists, empty: listed all the same
          return fail(msg || "No file was added.");
        }
        bar.hidden = true;
        input.value = "";
        var label = entryFor(id, name);
        label.querySelector("input").checked = true;
        label.hidden = false;
        var note = label.querySelector("[data-vs-added]");
        if (!note) {
          note = document.createElement("span");
          note.className = "muted small";
          note.setAttribute("data-vs-added", "0");
          note.setAttribute("data-testid", "vs-added");
          label.appendChild(note);
        }
        var total = Number(note.getAttribute("data-vs-added")) + added;
        note.setAttribute("data-vs-added", String(total));
        note.textContent = "(" + total + " new " + (total === 1 ? "file" : "files") + ", being indexed)";
        statusEl.textContent = added + (added === 1 ? " file" : " files") + " added to " + name + ".";
        if (msg) errEl.textContent = msg;
      });
    }
    if (chosen && chosen.value) {
      var text = chosen.closest("label").querySelector(".wrap");
      return upload(chosen.value, text ? text.textContent.trim() : chosen.value, false);
    }
    var name = (nameEl && nameEl.value.trim()) || files[0].name;
    var body = new FormData();
    body.append("csrf_token", token ? token.value : "");
    body.append("name", name);
    statusEl.textContent = "Creating the store…";
    send("/vector_stores", body, null, function (xhr) {
      var m = xhr.responseURL.match(/\/vector_stores\/(vs_[A-Za-z0-9_-]+)/);
      if (!m || xhr.status >= 400) return fail(refusal(xhr) || "The store could not be created.");
      if (nameEl) nameEl.value = "";
      upload(m[1], name, true);
    });
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
