// assistantd's live view: follows a thread's event stream (one
// EventSource per page, GET /threads/:id/events) and keeps the page's
// messages, run controls and timeline current. Tokens are appended as they
// arrive; when a step, message or run changes, the live parts are fetched
// again from the store (GET /threads/:id/live) and swapped in, keeping
// open steps open and typed outputs typed. Forms marked data-composer or
// data-live-form are sent with fetch so the page (and its stream) stays.
// No inline script anywhere: the CSP forbids it.
(function () {
  "use strict";

  // Assistant picker: apply on change (it carries the overrides along).
  document.addEventListener("change", function (ev) {
    var form = ev.target.closest && ev.target.closest("form[data-autosubmit]");
    if (form) form.submit();
  });

  // The playground's per-run overrides live in the page's address, so a
  // reload or a copied link opens the same settings. As the pane changes,
  // the address (history.replaceState: no navigation, no new history
  // entry), the assistant picker's hidden fields and the New thread link
  // follow. The keys are the pane's form names; only values set count.
  // Instructions too long for an address are left out of it
  // (instructions_omitted=1 says so), kept in this tab's sessionStorage
  // for a reload or the page after "Add and run", and the pane says so.
  var pane = document.querySelector("[data-overrides]");
  var OVERRIDE_KEYS = ["model", "instructions", "instructions_omitted", "temperature", "top_p",
    "tool_choice", "response_format", "tools_override", "tool"];
  var LONG_KEY = "assistantd.playground.instructions";
  var urlLimit = pane ? parseInt(pane.getAttribute("data-url-limit"), 10) || 2000 : 2000;

  // byteLength counts as the server will: UTF-8, and a form sends a
  // textarea's line breaks as CRLF.
  function byteLength(s) {
    return new TextEncoder().encode(s.replace(/\r?\n/g, "\r\n")).length;
  }

  function stash(v) {
    try {
      if (v === null) sessionStorage.removeItem(LONG_KEY); else sessionStorage.setItem(LONG_KEY, v);
    } catch (e) { /* storage off: the pane's note still tells */ }
  }
  function stashed() {
    try { return sessionStorage.getItem(LONG_KEY); } catch (e) { return null; }
  }

  function overrideParams() {
    var p = new URLSearchParams();
    var fields = pane.querySelectorAll("[data-override]");
    // The tool checkboxes act directly: the list is overridden when one
    // is unticked.
    var toolsOn = false;
    fields.forEach(function (el) { if (el.name === "tool" && !el.checked) toolsOn = true; });
    if (toolsOn) p.append("tools_override", "1");
    fields.forEach(function (el) {
      if (el.name === "tool") { if (toolsOn && el.checked) p.append("tool", el.value); return; }
      var v = el.value;
      if (el.name !== "instructions") v = v.trim();
      if (!v) return;
      if (el.name === "instructions" && byteLength(v) > urlLimit) { p.append("instructions_omitted", "1"); return; }
      p.append(el.name, v);
    });
    return p;
  }

  function withOverrides(href, params) {
    var u = new URL(href, window.location.href);
    OVERRIDE_KEYS.forEach(function (k) { u.searchParams.delete(k); });
    params.forEach(function (v, k) { u.searchParams.append(k, v); });
    u.searchParams.sort();
    var q = u.searchParams.toString();
    return u.pathname + (q ? "?" + q : "") + u.hash;
  }

  function longNote(text) {
    var note = pane.querySelector("[data-long-note]");
    if (!note) return;
    note.textContent = text;
    note.hidden = !text;
  }

  // syncOverrides writes the pane into the address; edited says the
  // person changed the pane (the server's note about the address it
  // came from stands until then).
  function syncOverrides(edited, restored) {
    var params = overrideParams();
    var instr = pane.querySelector("[data-override][name=instructions]");
    if (params.has("instructions_omitted")) {
      stash(instr.value);
      longNote((restored ? "Restored from this tab. " : "") + "These instructions are " + byteLength(instr.value) +
        " bytes, too long for the page's address (limit " + urlLimit +
        "): a reload in this tab keeps them, but a copied link will not carry them.");
    } else {
      stash(null);
      if (edited) longNote("");
    }
    history.replaceState(history.state, "", withOverrides(window.location.href, params));
    document.querySelectorAll("a[data-carry-overrides]").forEach(function (link) {
      link.setAttribute("href", withOverrides(link.getAttribute("href"), params));
    });
    var pick = document.querySelector("form[data-carry-overrides]");
    if (pick) {
      pick.querySelectorAll("input[data-carried]").forEach(function (el) { el.remove(); });
      params.forEach(function (v, k) {
        var el = document.createElement("input");
        el.type = "hidden";
        el.name = k;
        el.value = v;
        el.setAttribute("data-carried", "");
        pick.appendChild(el);
      });
    }
  }

  if (pane) {
    // Instructions the address stood for come back from this tab.
    var instr = pane.querySelector("[data-override][name=instructions]");
    var long = stashed(), restored = false;
    if (instr && !instr.value && long && new URLSearchParams(window.location.search).has("instructions_omitted")) {
      instr.value = long;
      restored = true;
    }
    syncOverrides(false, restored);
    var onEdit = function (ev) {
      if (!ev.target.matches || !ev.target.matches("[data-override]")) return;
      // What the pane said about the old value no longer holds.
      var key = ev.target.name === "tool" ? "tools" : ev.target.name;
      pane.querySelectorAll('[data-error-for="' + key + '"], [data-error-for=""]').forEach(function (el) { el.hidden = true; });
      ev.target.removeAttribute("aria-invalid");
      syncOverrides(true, false);
    };
    pane.addEventListener("input", onEdit);
    pane.addEventListener("change", onEdit);
  }

  // Each [data-live-root] follows one thread (the compare view has two).
  // Its live parts are found inside it or, on a page with one root (the
  // playground's timeline sits in its own pane), anywhere on the page.
  var PARTS = ["messages", "controls", "timeline"];
  var texts = {}; // message id → text streamed so far
  var args = {}; // step id → tool call arguments streamed so far
  var followers = [];

  function paintStreams() {
    document.querySelectorAll("[data-stream-for]").forEach(function (el) {
      var t = texts[el.getAttribute("data-stream-for")];
      if (t !== undefined && el.textContent !== t) el.textContent = t;
    });
    document.querySelectorAll("[data-args-for]").forEach(function (el) {
      var t = args[el.getAttribute("data-args-for")];
      if (t) {
        el.hidden = false;
        if (el.textContent !== t) el.textContent = t;
      }
    });
  }

  function syncControls() {
    var active = !!document.querySelector('[data-live-part="controls"][data-active="true"]');
    document.querySelectorAll("[data-composer-controls]").forEach(function (fs) { fs.disabled = active; });
    document.querySelectorAll("[data-composer-busy]").forEach(function (p) { p.hidden = !active; });
    document.querySelectorAll("[data-outputs-form]").forEach(checkOutputs);
  }

  // Submit is enabled only when every pending call has an output.
  function checkOutputs(form) {
    var boxes = form.querySelectorAll("textarea");
    var ready = boxes.length > 0;
    boxes.forEach(function (b) { if (!b.value.trim()) ready = false; });
    var btn = form.querySelector("[data-needs-all]");
    if (btn) btn.disabled = !ready;
  }
  document.addEventListener("input", function (ev) {
    var form = ev.target.closest && ev.target.closest("[data-outputs-form]");
    if (form) checkOutputs(form);
  });

  function follow(root) {
    var last = ""; // id of the last event seen
    var es = null;
    var refreshing = false, again = false;
    function part(name) {
      var sel = '[data-live-part="' + name + '"]';
      return root.querySelector(sel) || (followers.length === 1 ? document.querySelector(sel) : null);
    }
    function refresh() {
      if (refreshing) { again = true; return; }
      refreshing = true;
      fetch(root.getAttribute("data-fragment"), { headers: { "Accept": "text/html" }, credentials: "same-origin" })
        .then(function (res) { return res.ok ? res.text() : Promise.reject(res.status); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString("<body>" + html + "</body>", "text/html");
          PARTS.forEach(function (name) {
            var now = part(name), next = doc.querySelector('[data-live-part="' + name + '"]');
            if (!now || !next) return;
            // Keep open what is open, and what was typed.
            now.querySelectorAll("details[id]").forEach(function (d) {
              var n = next.querySelector("details[id='" + d.id + "']");
              if (n) n.open = d.open;
            });
            now.querySelectorAll("textarea[id]").forEach(function (t) {
              var n = next.querySelector("textarea[id='" + t.id + "']");
              if (n && t.value) n.value = t.value;
            });
            now.replaceWith(document.adoptNode(next));
          });
          paintStreams();
          syncControls();
        })
        .catch(function () {})
        .then(function () {
          refreshing = false;
          if (again) { again = false; refresh(); }
        });
    }
    function onEvent(ev) {
      if (ev.lastEventId) last = ev.lastEventId;
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      var d = msg.data || {};
      if (msg.event === "thread.message.delta") {
        ((d.delta && d.delta.content) || []).forEach(function (p) {
          if (p.text && p.text.value) texts[d.id] = (texts[d.id] || "") + p.text.value;
        });
        paintStreams();
        return;
      }
      if (msg.event === "assistantd.reasoning.delta" || msg.event === "assistantd.reasoning.done") return;
      if (msg.event === "thread.run.step.delta") {
        var calls = (d.delta && d.delta.step_details && d.delta.step_details.tool_calls) || [];
        calls.forEach(function (c) {
          var f = c["function"];
          if (f) args[d.id] = (args[d.id] || "") + (f.name ? "\n" + f.name + " " : "") + (f.arguments || "");
        });
        paintStreams();
        return;
      }
      refresh();
    }
    function connect() {
      if (es) return;
      var url = root.getAttribute("data-events");
      if (!url) return; // nothing to follow yet (a conversation with no response)
      if (last) url += (url.indexOf("?") < 0 ? "?" : "&") + "last=" + encodeURIComponent(last);
      es = new EventSource(url);
      es.onmessage = onEvent;
      es.addEventListener("close", disconnect);
    }
    function disconnect() {
      if (es) { es.close(); es = null; }
    }
    return { refresh: refresh, connect: connect, disconnect: disconnect };
  }

  function refresh() { followers.forEach(function (f) { f.refresh(); }); }

  document.querySelectorAll("[data-live-root]").forEach(function (el) { followers.push(follow(el)); });
  if (followers.length) {
    followers.forEach(function (f) { f.connect(); });
    syncControls();
    // Browsers allow about six connections per origin across all tabs:
    // a hidden tab gives its streams back and resumes where it left off.
    document.addEventListener("visibilitychange", function () {
      followers.forEach(function (f) {
        if (document.hidden) f.disconnect();
        else { f.connect(); f.refresh(); }
      });
    });
    window.addEventListener("pagehide", function () { followers.forEach(function (f) { f.disconnect(); }); });
  }

  // showFieldErrors puts each refused setting's message in its slot
  // beside the field (a problem of no one field goes in the pane's
  // general slot) and marks the field.
  function showFieldErrors(fields) {
    if (!pane) return;
    Object.keys(fields).forEach(function (key) {
      var slot = pane.querySelector('[data-error-for="' + CSS.escape(key) + '"]') || pane.querySelector('[data-error-for=""]');
      if (slot) {
        slot.textContent = fields[key];
        slot.hidden = false;
      }
      pane.querySelectorAll('[data-override][name="' + CSS.escape(key === "tools" ? "tool" : key) + '"]').forEach(function (el) {
        el.setAttribute("aria-invalid", "true");
      });
    });
  }

  // Forms sent without leaving the page; a mistake shows in place and
  // keeps what was typed.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.matches("form[data-composer], form[data-live-form]")) return;
    if (ev.defaultPrevented) return;
    ev.preventDefault();
    var data = new FormData(form, ev.submitter || null);
    var files = form.querySelector("input[type=file]");
    var withFiles = !!(files && files.files && files.files.length);
    if (!withFiles) data.delete("attachments");
    var body = withFiles ? data : new URLSearchParams(data);
    var bar = withFiles ? form.querySelector("[data-upload-progress]") : null;
    var errBox = form.querySelector("[data-composer-error]");
    if (!errBox) {
      errBox = document.createElement("p");
      errBox.className = "errors";
      errBox.setAttribute("role", "alert");
      errBox.setAttribute("data-composer-error", "");
      errBox.setAttribute("data-testid", "form-error");
      form.appendChild(errBox);
    }
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    send(form.getAttribute("action"), body, bar)
      .then(function (res) {
        var loc = res.headers.get("X-Location");
        if (res.ok && loc) { window.location.assign(loc); return; }
        if (res.ok) {
          errBox.textContent = "";
          if (form.matches("[data-composer]")) {
            var ta = form.querySelector("textarea[name=content]");
            if (ta) ta.value = "";
            if (files) files.value = "";
            pinned = true;
          }
          refresh();
          return;
        }
        var ctype = res.headers.get("Content-Type") || "";
        if (ctype.indexOf("application/json") === 0) {
          // Refused settings: each problem beside its field in the pane.
          return res.json().then(function (j) {
            showFieldErrors(j.fields || {});
            errBox.textContent = j.message || "";
          });
        }
        return res.text().then(function (t) {
          var html = ctype.indexOf("text/html") === 0;
          if (html) {
            var d = new DOMParser().parseFromString(t, "text/html").querySelector('[data-testid="error-message"]');
            t = d ? d.textContent : "The server refused this (" + res.status + ").";
          }
          errBox.textContent = res.status >= 500 ? "Something went wrong (" + res.status + "); see the server log." : t;
        });
      })
      .catch(function () { errBox.textContent = "The server did not answer; try again."; })
      .then(function () {
        if (bar) bar.hidden = true;
        buttons.forEach(function (b) { b.disabled = false; });
        syncControls();
      });
  });

  // send posts a form's body with XMLHttpRequest (whose upload reports
  // progress, which fetch's does not) and resolves with a Response.
  function send(url, body, bar) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.withCredentials = true;
      xhr.setRequestHeader("X-Live", "1");
      if (bar) {
        xhr.upload.onprogress = function (e) {
          if (!e.lengthComputable || !e.total) return;
          var pct = Math.round((100 * e.loaded) / e.total);
          bar.hidden = false;
          bar.setAttribute("value", String(pct));
          bar.textContent = pct + "%";
        };
      }
      xhr.onload = function () {
        var headers = new Headers();
        xhr.getAllResponseHeaders().trim().split(/[\r\n]+/).forEach(function (line) {
          var i = line.indexOf(":");
          if (i > 0) headers.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
        });
        var empty = xhr.status === 204 || xhr.status === 205 || xhr.status === 304;
        resolve(new Response(empty ? null : xhr.responseText, { status: xhr.status, headers: headers }));
      };
      xhr.onerror = function () { reject(new Error("network")); };
      xhr.send(body);
    });
  }

  // The composer's keys: Enter adds the message, Shift+Enter starts a
  // new line, Ctrl/Cmd+Enter adds and runs. (On touch screens Enter keeps
  // its new line: the buttons are at hand there.)
  document.addEventListener("keydown", function (ev) {
    var ta = ev.target;
    if (ev.key !== "Enter" || ev.shiftKey || ev.altKey || ev.isComposing) return;
    if (!ta.matches || !ta.matches("form[data-composer] textarea[name=content]")) return;
    var run = ev.ctrlKey || ev.metaKey;
    if (!run && window.matchMedia && window.matchMedia("(pointer: coarse)").matches) return;
    ev.preventDefault();
    var btn = ta.form.querySelector(run ? 'button[name=action][value=run]' : 'button[name=action][value=add]');
    var controls = ta.form.querySelector("[data-composer-controls]");
    if (!btn || btn.disabled || (controls && controls.disabled)) return;
    ta.form.requestSubmit(btn);
  });

  // The thread pane follows new messages while it is scrolled to the
  // bottom (pinned); scrolled up to read, it stays put.
  var scroller = document.querySelector("[data-thread-scroll]");
  var pinned = true;
  function stick() {
    if (scroller && pinned) scroller.scrollTop = scroller.scrollHeight;
  }
  if (scroller) {
    scroller.addEventListener("scroll", function () {
      pinned = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
    });
    new MutationObserver(stick).observe(scroller, { childList: true, subtree: true, characterData: true });
    stick();
  }
})();
