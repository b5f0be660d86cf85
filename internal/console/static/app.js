// Redis Manager console: actions through the JSON API, dialogs, and live
// updates from the server-sent event stream. No inline script anywhere:
// the pages carry their data in data- attributes.
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function toast(msg, isError) {
    var t = document.getElementById("toast");
    if (!t) { return; }
    t.textContent = msg;
    t.classList.toggle("error", !!isError);
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.hidden = true; }, isError ? 12000 : 6000);
  }

  // api calls the JSON API and resolves to {ok, status, body}; it never
  // rejects, so every caller shows the API's own error.
  function api(method, url, body) {
    var headers = { "Accept": "application/json" };
    if (csrf) { headers["X-CSRF-Token"] = csrf; }
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (resp) {
      if (resp.status === 401 && url !== "/api/v1/session" && document.querySelector("main").getAttribute("data-page") !== "sign-in") {
        toSignIn();
      }
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { ok: resp.ok, status: resp.status, body: data, text: text };
      });
    }, function (err) {
      return { ok: false, status: 0, body: null, text: "network error: " + err.message };
    });
  }

  // toSignIn leaves a page whose session ended (idle timeout, sign-out
  // elsewhere) for the sign-in page, coming back here afterwards.
  function toSignIn() {
    location.assign("/sign-in?next=" + encodeURIComponent(location.pathname + location.search));
  }

  function errorOf(res) {
    if (res.body && res.body.error) { return res.body.error; }
    return { code: "http_" + res.status, message: res.text || ("request failed with status " + res.status) };
  }

  // formBody turns a form's named controls into the API's JSON: dotted
  // names nest ("sentinel.downAfterMs"), data-type converts, data-optional
  // leaves empty values out.
  function formBody(form) {
    var body = {};
    var changedOnly = form.hasAttribute("data-changed-only");
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled || el.type === "submit" || el.type === "button") { return; }
      // A part of the body whose checkbox is off is left out
      // (<fieldset data-optional-part> with a [data-part-toggle]).
      var part = el.closest("[data-optional-part]");
      if (part) {
        var toggle = part.querySelector("[data-part-toggle]");
        if (toggle && !toggle.checked) { return; }
      }
      // A PATCH sends only what the user changed.
      if (changedOnly && el.name !== "force" && (el.type === "checkbox" ? el.checked === el.defaultChecked : el.value === el.defaultValue)) { return; }
      var type = el.getAttribute("data-type");
      var value;
      if (type === "bool") {
        value = el.checked;
        if (!value && el.name === "force") { return; }
      } else {
        value = el.value.trim();
        if (value === "" && (el.hasAttribute("data-optional") || type === "int" || type === "number")) { return; }
        if (type === "int" || type === "number") {
          var n = Number(value);
          value = Number.isFinite(n) && value !== "" ? n : value;
        }
      }
      var parts = el.name.split("."), obj = body;
      for (var i = 0; i < parts.length - 1; i++) {
        obj[parts[i]] = obj[parts[i]] || {};
        obj = obj[parts[i]];
      }
      obj[parts[parts.length - 1]] = value;
    });
    return body;
  }

  function clearErrors(form) {
    form.querySelectorAll("[data-error-for]").forEach(function (p) { p.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    var fe = form.querySelector(".form-error");
    if (fe) { fe.textContent = ""; }
  }

  // showError puts the API's error next to the field it names, else at
  // the form's foot.
  function showError(form, err) {
    var slot = err.field ? form.querySelector('[data-error-for="' + CSS.escape(err.field) + '"]') : null;
    if (slot) {
      slot.textContent = err.message;
      var input = form.querySelector('[name="' + CSS.escape(err.field) + '"]');
      if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
      return;
    }
    var fe = form.querySelector(".form-error");
    var text = err.message + (err.field ? " (" + err.field + ")" : "");
    if (fe) { fe.textContent = text; } else { toast(text, true); }
  }

  function refreshSoon() { scheduleRefresh(0); }

  function jobStarted(res) {
    var job = res.body && res.body.job;
    if (job && job.id) { toast("Started " + job.kind + " job " + job.id + "."); } else { toast("Done."); }
    refreshSoon();
  }

  // Forms of actions.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.id === "sign-in-form") { ev.preventDefault(); signIn(form); return; }
    if (!form.hasAttribute("data-form")) { return; }
    ev.preventDefault();
    clearErrors(form);
    var submit = form.querySelector('button[type="submit"]');
    if (submit) { submit.disabled = true; }
    var body = formBody(form);
    if (form.hasAttribute("data-changed-only") && Object.keys(body).filter(function (k) { return k !== "force"; }).length === 0) {
      showError(form, { message: "Change a value first." });
      if (submit) { submit.disabled = false; }
      return;
    }
    api(form.getAttribute("data-method") || "POST", form.getAttribute("data-url"), body).then(function (res) {
      if (submit) { submit.disabled = false; }
      if (!res.ok) { showError(form, errorOf(res)); return; }
      var kind = form.getAttribute("data-form");
      if (kind === "create") {
        location.assign("/clusters/" + encodeURIComponent(body.name));
      } else if (kind === "restore") {
        location.assign("/clusters/" + encodeURIComponent(body.cluster));
      } else if (form.hasAttribute("data-show-token")) {
        var box = document.getElementById("token-once");
        box.querySelector(".token-name").textContent = res.body.name || body.name;
        box.querySelector("#token-value").value = res.body.token || "";
        box.hidden = false;
        form.reset();
        box.querySelector("#token-value").focus();
        box.querySelector("#token-value").select();
      } else if (form.getAttribute("data-after")) {
        location.assign(form.getAttribute("data-after"));
      } else {
        if (form.hasAttribute("data-changed-only")) {
          // What was sent is the new starting point.
          Array.prototype.forEach.call(form.elements, function (el) {
            if (el.type === "checkbox") { el.checked = el.defaultChecked = false; } else if ("defaultValue" in el) { el.defaultValue = el.value; }
          });
        }
        jobStarted(res);
      }
    });
  });

  function signIn(form) {
    clearErrors(form);
    var token = form.elements.token.value;
    var body = token ? { token: token } : { name: form.elements.name.value.trim(), password: form.elements.password.value };
    api("POST", "/api/v1/session", body).then(function (res) {
      if (!res.ok) { showError(form, errorOf(res)); return; }
      location.assign(form.getAttribute("data-next") || "/");
    });
  }

  // Dialogs: native <dialog> traps focus and closes on Escape; focus goes
  // back to the button that opened it.
  var opener = null;
  function openDialog(d, from) {
    opener = from;
    d.showModal();
  }
  document.addEventListener("close", function (ev) {
    if (ev.target.tagName === "DIALOG" && opener && document.contains(opener)) { opener.focus(); }
  }, true);

  var pending = null; // the button whose typed-name confirmation is open
  function confirmAction(btn) {
    var d = document.getElementById("confirm-dialog");
    pending = btn;
    var name = btn.getAttribute("data-confirm");
    d.querySelector("#confirm-title").textContent = btn.textContent.replace("…", "").trim() + "?";
    d.querySelector("#confirm-text").textContent = "This removes " + (btn.getAttribute("data-what") || name) + ". It cannot be undone.";
    d.querySelector("#confirm-name").textContent = name;
    var input = d.querySelector("#confirm-input");
    input.value = "";
    d.querySelector("#confirm-error").textContent = "";
    d.querySelector("#confirm-ok").disabled = true;
    openDialog(d, btn);
    input.focus();
  }
  document.addEventListener("input", function (ev) {
    if (ev.target.id === "confirm-input" && pending) {
      document.getElementById("confirm-ok").disabled = ev.target.value !== pending.getAttribute("data-confirm");
    }
  });

  function runButton(btn) {
    var method = btn.getAttribute("data-method"), url = btn.getAttribute("data-url");
    return api(method, url).then(function (res) {
      if (!res.ok) { var e = errorOf(res); toast(e.message, true); return res; }
      if (btn.getAttribute("data-after")) { location.assign(btn.getAttribute("data-after")); return res; }
      jobStarted(res);
      return res;
    });
  }

  document.addEventListener("submit", function (ev) {
    if (ev.target.closest("#confirm-dialog")) {
      ev.preventDefault();
      var d = document.getElementById("confirm-dialog");
      var btn = pending;
      if (!btn || d.querySelector("#confirm-input").value !== btn.getAttribute("data-confirm")) { return; }
      d.querySelector("#confirm-ok").disabled = true;
      api(btn.getAttribute("data-method"), btn.getAttribute("data-url")).then(function (res) {
        if (!res.ok) {
          d.querySelector("#confirm-error").textContent = errorOf(res).message;
          d.querySelector("#confirm-ok").disabled = false;
          return;
        }
        d.close();
        pending = null;
        if (btn.getAttribute("data-after")) { location.assign(btn.getAttribute("data-after")); return; }
        jobStarted(res);
      });
    }
  }, true);

  document.addEventListener("click", function (ev) {
    var el = ev.target.closest("button");
    if (!el) { return; }
    if (el.hasAttribute("data-dialog-cancel")) { el.closest("dialog").close(); return; }
    var action = el.getAttribute("data-action");
    if (action === "sign-out") {
      api("DELETE", "/api/v1/session").then(function () { location.assign("/sign-in"); });
      return;
    }
    if (action === "restore") {
      var d = document.getElementById("restore-dialog");
      var form = d.querySelector("form");
      form.setAttribute("data-url", el.getAttribute("data-url"));
      d.querySelector(".restore-id").textContent = el.getAttribute("data-backup");
      clearErrors(form);
      openDialog(d, el);
      form.elements.cluster.focus();
      return;
    }
    if (el.hasAttribute("data-confirm")) { confirmAction(el); return; }
    if (el.type === "button" && el.hasAttribute("data-method") && el.hasAttribute("data-url")) {
      el.disabled = true;
      runButton(el).then(function () { el.disabled = false; });
    }
  });

  // Live updates. Every message from the stream asks the page to refresh
  // its live regions (htmx fetches ?fragment=live and swaps them out of
  // band), at most about twice a second; a cluster's phase is patched at
  // once.
  var lastRefresh = 0, timer = null;
  function scheduleRefresh(minGap) {
    if (timer) { return; }
    var wait = Math.max(0, lastRefresh + minGap - Date.now());
    timer = setTimeout(function () {
      timer = null;
      lastRefresh = Date.now();
      rememberFocus();
      document.body.dispatchEvent(new CustomEvent("rm:refresh"));
    }, wait);
  }

  // A swap replaces the focused button: put focus back on its successor.
  var focusKey = null;
  function rememberFocus() {
    var a = document.activeElement;
    focusKey = null;
    if (!a || a === document.body || !a.closest("[hx-swap-oob], #clusters-body, #topology, #timeline, #jobs, #backups, #cluster-events, #events-body, #jobs-body, #job-body")) { return; }
    if (a.id) { focusKey = "#" + CSS.escape(a.id); return; }
    var act = a.getAttribute("data-action"), url = a.getAttribute("data-url"), href = a.getAttribute("href");
    if (act && url) { focusKey = '[data-action="' + CSS.escape(act) + '"][data-url="' + CSS.escape(url) + '"]'; }
    else if (href) { focusKey = 'a[href="' + CSS.escape(href) + '"]'; }
  }
  document.addEventListener("htmx:afterSettle", function () {
    if (!focusKey) { return; }
    if (document.activeElement === document.body || !document.activeElement) {
      var el = document.querySelector(focusKey);
      if (el) { el.focus(); focusKey = null; }
    }
  });

  // A live region answered with the sign-in page: the session is over.
  document.addEventListener("htmx:afterRequest", function (ev) {
    var xhr = ev.detail && ev.detail.xhr;
    if (xhr && xhr.responseURL && new URL(xhr.responseURL).pathname === "/sign-in") { toSignIn(); }
  });

  function setLive(state) {
    document.body.setAttribute("data-live", state);
    var n = document.getElementById("live-notice");
    if (n) { n.hidden = state === "connected"; }
  }

  var stream = document.body.getAttribute("data-stream");
  if (stream && window.EventSource) {
    var backoff = 1000;
    var connect = function () {
      var es = new EventSource(stream);
      es.addEventListener("open", function () {
        backoff = 1000;
        setLive("connected");
        scheduleRefresh(0); // what changed while disconnected
      });
      es.addEventListener("error", function () {
        setLive("disconnected");
        if (es.readyState === EventSource.CLOSED) {
          // The browser gave up (an error status): retry ourselves, unless
          // the session is over.
          setTimeout(function () {
            api("GET", "/api/v1/session").then(function (res) {
              if (res.status === 401) { toSignIn(); return; }
              connect();
            });
          }, backoff);
          backoff = Math.min(backoff * 2, 8000);
        }
      });
      es.addEventListener("cluster", function (m) {
        try {
          var cl = JSON.parse(m.data);
          document.querySelectorAll('[data-cluster-phase="' + CSS.escape(cl.name) + '"]').forEach(function (el) {
            var phase = (cl.status && cl.status.phase) || "Unknown";
            if (el.textContent !== phase) {
              el.textContent = phase;
              el.className = "phase phase-" + phase.toLowerCase();
            }
          });
        } catch (e) { /* the refresh below shows it anyway */ }
        scheduleRefresh(500);
      });
      ["cluster-deleted", "job", "event"].forEach(function (kind) {
        es.addEventListener(kind, function () { scheduleRefresh(500); });
      });
    };
    setLive("disconnected");
    connect();
  }
})();
