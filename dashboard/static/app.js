// Warren dashboard: the pages' behaviour. The Content-Security-Policy allows
// no inline script, so everything a page does is here, keyed on its ids.
(function () {
  "use strict";

  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var readOnly = document.body.classList.contains("read-only");
  var numFmt = new Intl.NumberFormat("en-US");

  // ---- helpers ----

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "className") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  function num(n) { return n == null ? "?" : numFmt.format(n); }

  function plural(n, one, many) { return num(n) + " " + (n === 1 ? one : many); }

  function coarse(ms) {
    var s = Math.floor(ms / 1000);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m";
    if (s < 48 * 3600) return Math.floor(s / 3600) + "h";
    return Math.floor(s / 86400) + "d";
  }

  function ago(date) {
    var d = Date.now() - date.getTime();
    if (d < 0) return "in " + coarse(-d);
    if (d < 1000) return "just now";
    return coarse(d) + " ago";
  }

  function abs(date) {
    return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  // timeEl is the <time> the templates write: relative, absolute in its title.
  function timeEl(iso) {
    if (!iso) return el("span", { className: "muted", text: "–" });
    var d = new Date(iso);
    return el("time", { datetime: iso, title: abs(d), text: ago(d) });
  }

  function flash(text, kind) {
    var f = $("#flash");
    if (!f) return;
    f.className = kind || "ok";
    f.textContent = text;
  }

  // api calls the JSON API with the page's CSRF token, and resolves to the
  // decoded answer, or rejects with the API's error message.
  function api(method, url, body, contentType) {
    var headers = { "Accept": "application/json" };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrf;
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      if (contentType) {
        headers["Content-Type"] = contentType;
        init.body = body;
      } else {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
    }
    return fetch(url, init).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!res.ok) {
          var msg = data && data.error && data.error.message ? data.error.message : (text.trim() || res.status + " " + res.statusText);
          var err = new Error(msg);
          err.status = res.status;
          err.code = data && data.error ? data.error.code : "";
          throw err;
        }
        return data;
      });
    });
  }

  function queuePath(q) { return "/api/v1/queues/" + encodeURIComponent(q); }

  // htmx sends the token too (its polling is GET, but any hx-post would need it).
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrf;
  });

  // Relative times age: refresh them every 15 s.
  setInterval(function () {
    $$("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) t.textContent = ago(d);
    });
  }, 15000);

  // ---- confirmation ----

  // confirmDialog shows dialog#confirm with text; resolves true on yes.
  function confirmDialog(text) {
    var dlg = $("#confirm");
    if (!dlg) return Promise.resolve(false);
    $("#confirm-text").textContent = text;
    return new Promise(function (resolve) {
      var yes = $("#confirm-yes"), no = $("#confirm-no");
      function done(ok) {
        yes.removeEventListener("click", onYes);
        no.removeEventListener("click", onNo);
        dlg.removeEventListener("cancel", onNo);
        if (dlg.open) dlg.close();
        resolve(ok);
      }
      function onYes(e) { e.preventDefault(); done(true); }
      function onNo(e) { e.preventDefault(); done(false); }
      yes.addEventListener("click", onYes);
      no.addEventListener("click", onNo);
      dlg.addEventListener("cancel", onNo);
      dlg.showModal();
      no.focus();
    });
  }

  var verbs = {
    replay: { ask: "Replay", done: "Replayed", none: "Nothing to replay." },
    purge: { ask: "Purge", done: "Purged", none: "Nothing to purge." }
  };

  // act counts the selection, asks, then replays or purges exactly that
  // many ("expect": the API answers 409 if the count changed meanwhile).
  // Resolves to the report, or null if nothing was done.
  function act(action, queue, selection, buttons) {
    var v = verbs[action];
    var base = queuePath(queue) + "/dead-letters/";
    (buttons || []).forEach(function (b) { b.disabled = true; });
    function enable() { (buttons || []).forEach(function (b) { b.disabled = false; }); }
    return api("POST", base + "count", selection).then(function (c) {
      var n = c && typeof c.count === "number" ? c.count : 0;
      if (n === 0) { flash(v.none, "ok"); enable(); return null; }
      var what = plural(n, "dead letter", "dead letters");
      var extra = action === "purge" ? " This cannot be undone." : "";
      return confirmDialog(v.ask + " " + what + "?" + extra).then(function (ok) {
        if (!ok) { enable(); return null; }
        flash(v.ask.replace(/e$/, "") + "ing " + what + "…", "ok");
        var body = Object.assign({}, selection, { expect: n });
        return api("POST", base + action, body).then(function (rep) {
          var done = action === "replay" ? rep.replayed : rep.purged;
          var text = v.done + " " + num(done) + ".";
          if (rep.failed) text += " " + num(rep.failed) + " failed.";
          if (rep.resumed) text += " " + num(rep.resumed) + " already replayed before (removed).";
          if (rep.unreadable) text += " " + num(rep.unreadable) + " unreadable (kept).";
          if (rep.unconfirmed) text += " " + num(rep.unconfirmed) + " unconfirmed (kept).";
          flash(text, rep.failed || rep.unconfirmed ? "error" : "ok");
          enable();
          return rep;
        });
      });
    }).catch(function (err) {
      flash(err.message, "error");
      enable();
      return null;
    });
  }

  // ---- charts ----

  var palette = ["--chart-1", "--chart-2", "--chart-3", "--chart-4", "--chart-5"];

  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function chartData(c) {
    return [c.t].concat(c.series.map(function (s) { return s.values || []; }));
  }

  function fmtAxis(u, vals) { return vals.map(function (v) { return v == null ? "" : numFmt.format(v); }); }

  function makeChart(node) {
    if (typeof uPlot === "undefined") return;
    var c;
    try { c = JSON.parse(node.getAttribute("data-chart")); } catch (e) { return; }
    var fg = cssVar("--muted"), grid = cssVar("--line");
    var scales = { x: { time: true } };
    var axes = [{ stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } }];
    var hasN = c.series.some(function (s) { return s.scale === "n"; });
    var hasR = c.series.some(function (s) { return s.scale === "r"; });
    if (hasN) {
      scales.n = { range: function (u, min, max) { return [0, Math.max(max || 0, 1) * 1.1]; } };
      axes.push({ scale: "n", stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, values: fmtAxis, size: 60 });
    }
    if (hasR) {
      scales.r = { range: function (u, min, max) { return [0, Math.max(max || 0, 1) * 1.1]; } };
      axes.push({ scale: "r", side: hasN ? 1 : 3, stroke: fg, grid: { show: !hasN, stroke: grid, width: 1 }, ticks: { stroke: grid },
        values: function (u, vals) { return vals.map(function (v) { return v == null ? "" : numFmt.format(v) + "/s"; }); }, size: 60 });
    }
    var series = [{}].concat(c.series.map(function (s, i) {
      return { label: s.label, scale: s.scale, stroke: cssVar(palette[i % palette.length]), width: 2, spanGaps: false, points: { show: false },
        value: function (u, v) { return v == null ? "–" : (s.scale === "r" ? v.toFixed(2) + "/s" : numFmt.format(v)); } };
    }));
    var width = node.clientWidth || 600;
    var plot = new uPlot({ width: width, height: 240, scales: scales, axes: axes, series: series, cursor: { drag: { x: false, y: false } } },
      chartData(c), node);
    node._plot = plot;
    window.addEventListener("resize", function () { plot.setSize({ width: node.clientWidth || width, height: 240 }); });
    var src = node.getAttribute("data-chart-src");
    if (src) {
      setInterval(function () {
        if (document.hidden) return;
        api("GET", src).then(function (d) { if (d && d.t) plot.setData(chartData(d)); }).catch(function () {});
      }, 10000);
    }
  }

  // ---- queue page: pause and resume ----

  function setState(paused) {
    var st = $("#queue-state");
    if (!st) return;
    var s = paused ? "paused" : "running";
    st.textContent = s;
    st.className = "state " + s;
    st.removeAttribute("title");
    if ($("#pause")) $("#pause").disabled = paused;
    if ($("#resume")) $("#resume").disabled = !paused;
  }

  function initQueuePage() {
    ["pause", "resume"].forEach(function (action) {
      var b = $("#" + action);
      if (!b) return;
      b.addEventListener("click", function () {
        var q = b.getAttribute("data-queue");
        b.disabled = true;
        api("POST", queuePath(q) + "/" + action).then(function (res) {
          var paused = res && typeof res.paused === "boolean" ? res.paused : action === "pause";
          setState(paused);
          flash(paused ? "Paused." : "Resumed.", "ok");
        }).catch(function (err) {
          b.disabled = false;
          flash(err.message, "error");
        });
      });
    });
  }

  // ---- dead letters: the list ----

  function initDeadList() {
    var root = $("#dl");
    if (!root) return;
    var queue = root.getAttribute("data-queue");
    var filter = root.getAttribute("data-filter") || "";
    var limit = parseInt(root.getAttribute("data-limit"), 10) || 50;
    var offset = parseInt(root.getAttribute("data-offset"), 10) || 0;
    var tbody = $("#dl-rows");
    var cols = readOnly ? 6 : 7;
    var lastPage = { matched: 0 };

    function params() {
      var p = new URLSearchParams(filter);
      var f = {};
      ["type", "error", "since", "until"].forEach(function (k) { if (p.get(k)) f[k] = p.get(k); });
      return f;
    }

    function message(cls, text) {
      tbody.textContent = "";
      tbody.appendChild(el("tr", { className: cls }, [el("td", { colspan: String(cols), text: text })]));
    }

    function row(d) {
      var href = "/queues/" + encodeURIComponent(queue) + "/dead/" + encodeURIComponent(d.id);
      var cells = [];
      if (!readOnly) {
        cells.push(el("td", { className: "sel" }, [el("input", { type: "checkbox", className: "select", value: d.id, "aria-label": "Select " + d.id })]));
      }
      cells.push(el("td", { className: "id" }, [el("a", { className: "show", href: href }, [el("code", { text: d.id })])]));
      cells.push(el("td", { className: "type" }, [el("code", { text: d.type || "" })]));
      cells.push(el("td", { className: "n attempts", text: num(d.attempts) + (d.max_attempts ? " / " + num(d.max_attempts) : "") }));
      cells.push(el("td", { className: "failed" }, [timeEl(d.failed_at)]));
      cells.push(el("td", { className: "reason", text: d.reason || "" }));
      var err = (d.error || "").split("\n")[0];
      cells.push(el("td", { className: "err", title: d.error || "", text: err.length > 200 ? err.slice(0, 200) + "…" : err }));
      var tr = el("tr", { "data-id": d.id }, cells);
      return tr;
    }

    function load(off) {
      offset = Math.max(0, off);
      var url = queuePath(queue) + "/dead-letters?" + (filter ? filter + "&" : "") + "limit=" + limit + "&offset=" + offset;
      message("loading", "loading…");
      $("#prev").disabled = true;
      $("#next").disabled = true;
      if ($("#select-all")) $("#select-all").checked = false;
      return api("GET", url).then(function (page) {
        var items = (page && page.items) || [];
        lastPage = page || { matched: 0 };
        if (typeof page.total === "number") $("#dead-total").textContent = num(page.total);
        $("#dead-matched").textContent = num(page.matched);
        var ia = $("#indexed-at");
        if (ia) {
          ia.textContent = "";
          if (page.indexed_at) { ia.appendChild(document.createTextNode(" (indexed ")); ia.appendChild(timeEl(page.indexed_at)); ia.appendChild(document.createTextNode(")")); }
        }
        tbody.textContent = "";
        if (items.length === 0) {
          message("empty", page.matched > 0 && offset > 0 ? "No more dead letters on this page." : "No dead letters" + (filter ? " match the filter." : "."));
        } else {
          items.forEach(function (d) { tbody.appendChild(row(d)); });
        }
        var matched = page.matched || 0;
        $("#page-info").textContent = items.length ? num(offset + 1) + "–" + num(offset + items.length) + " of " + num(matched) : "";
        $("#prev").disabled = offset === 0;
        $("#next").disabled = offset + items.length >= matched;
        var u = new URL(location.href);
        if (offset) u.searchParams.set("offset", offset); else u.searchParams.delete("offset");
        history.replaceState(null, "", u);
      }).catch(function (err) {
        message("failed", "Could not load the dead letters: " + err.message);
        $("#dead-matched").textContent = "?";
        flash(err.message, "error");
      });
    }

    $("#prev").addEventListener("click", function () { load(offset - limit); });
    $("#next").addEventListener("click", function () { load(offset + limit); });

    var all = $("#select-all");
    if (all) {
      all.addEventListener("change", function () {
        $$("input.select", tbody).forEach(function (c) { c.checked = all.checked; c.closest("tr").classList.toggle("selected", c.checked); });
      });
      tbody.addEventListener("change", function (e) {
        if (e.target.matches("input.select")) e.target.closest("tr").classList.toggle("selected", e.target.checked);
      });
    }

    function selected() { return $$("input.select:checked", tbody).map(function (c) { return c.value; }); }

    function filtered() {
      var f = params();
      return Object.keys(f).length ? { filter: f } : { all: true };
    }

    function after(rep) {
      if (!rep) return;
      // What was acted on left the list: stay on this page unless it emptied.
      var left = (lastPage.matched || 0) - (rep.replayed || rep.purged || 0);
      load(offset >= left ? Math.max(0, offset - limit) : offset);
    }

    function bind(id, action, selection) {
      var b = $(id);
      if (!b) return;
      b.addEventListener("click", function () {
        var sel = selection();
        if (!sel) return;
        act(action, queue, sel, [b]).then(after);
      });
    }
    function pickedIDs() {
      var ids = selected();
      if (!ids.length) { flash("Select dead letters first.", "error"); return null; }
      return { ids: ids };
    }
    bind("#replay-selected", "replay", pickedIDs);
    bind("#purge-selected", "purge", pickedIDs);
    bind("#replay-filtered", "replay", filtered);
    bind("#purge-filtered", "purge", filtered);

    var imp = $("#import");
    if (imp) {
      imp.addEventListener("submit", function (e) {
        e.preventDefault();
        var input = $('input[type=file][name=file]', imp);
        var file = input.files && input.files[0];
        if (!file) { flash("Choose an NDJSON file to import.", "error"); return; }
        var btn = $("#import-submit");
        btn.disabled = true;
        flash("Importing " + file.name + "…", "ok");
        api("POST", queuePath(queue) + "/dead-letters/import", file, "application/x-ndjson").then(function (rep) {
          var text = "Imported " + num(rep.imported) + " of " + plural(rep.records, "record", "records") + ".";
          if (rep.duplicates) text += " " + num(rep.duplicates) + " already there (skipped).";
          if (rep.failed) text += " " + num(rep.failed) + " failed.";
          flash(text, rep.failed ? "error" : "ok");
          input.value = "";
          load(offset);
        }).catch(function (err) {
          flash("Import failed: " + err.message, "error");
        }).then(function () { btn.disabled = false; });
      });
    }

    load(offset);
  }

  // ---- dead letters: groups ----

  function initGroups() {
    var root = $("#dl-groups");
    if (!root) return;
    var queue = root.getAttribute("data-queue"), by = root.getAttribute("data-by");
    var filter = root.getAttribute("data-filter") || "";
    var tbody = $("#group-rows");
    function message(cls, text) {
      tbody.textContent = "";
      tbody.appendChild(el("tr", { className: cls }, [el("td", { colspan: "5", text: text })]));
    }
    var url = queuePath(queue) + "/dead-letter-groups?by=" + encodeURIComponent(by) + (filter ? "&" + filter : "");
    api("GET", url).then(function (groups) {
      groups = groups || [];
      var n = groups.reduce(function (a, g) { return a + (g.count || 0); }, 0);
      $("#groups-summary").textContent = plural(n, "dead letter", "dead letters") + " in " + plural(groups.length, "group", "groups") + ".";
      tbody.textContent = "";
      if (!groups.length) { message("empty", "No dead letters."); return; }
      var base = "/queues/" + encodeURIComponent(queue) + "/dead";
      groups.forEach(function (g) {
        var key;
        if (by === "type") {
          key = el("td", { className: "key" }, [el("a", { href: base + "?type=" + encodeURIComponent(g.key) }, [el("code", { text: g.key })])]);
        } else {
          key = el("td", { className: "key" }, [el("code", { text: g.key }),
            g.example ? el("div", { className: "muted example", text: g.example }) : null]);
        }
        tbody.appendChild(el("tr", { "data-key": g.key }, [
          el("td", { className: "n count", text: num(g.count) }),
          key,
          el("td", {}, [timeEl(g.first_failed_at)]),
          el("td", {}, [timeEl(g.last_failed_at)]),
          el("td", {}, g.example_id ? [el("a", { className: "show", href: base + "/" + encodeURIComponent(g.example_id) }, [el("code", { text: g.example_id })])] : [])
        ]));
      });
    }).catch(function (err) {
      message("failed", "Could not group the dead letters: " + err.message);
      $("#groups-summary").textContent = "";
      flash(err.message, "error");
    });
  }

  // ---- one dead letter ----

  function initDeadLetter() {
    ["replay", "purge"].forEach(function (action) {
      var b = $("#" + action + "-one");
      if (!b) return;
      b.addEventListener("click", function () {
        var q = b.getAttribute("data-queue"), id = b.getAttribute("data-id");
        var both = $$("#replay-one, #purge-one");
        act(action, q, { ids: [id] }, both).then(function (rep) {
          if (!rep) return;
          var done = action === "replay" ? rep.replayed : rep.purged;
          // It is gone from the dead-letter queue: nothing more to do here.
          if (done > 0) both.forEach(function (x) { x.disabled = true; });
        });
      });
    });
  }

  // ---- enqueue ----

  function initEnqueue() {
    var form = $("#enqueue-form");
    if (!form) return;
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var q = form.elements.queue.value.trim();
      var task = { type: form.elements.type.value.trim() };
      var raw = form.elements.payload.value.trim();
      if (raw) {
        try { task.payload = JSON.parse(raw); } catch (err) {
          flash("The payload is not valid JSON: " + err.message, "error");
          return;
        }
      }
      ["delay", "id"].forEach(function (k) { var v = form.elements[k].value.trim(); if (v) task[k] = v; });
      var ma = form.elements.max_attempts.value.trim();
      if (ma) task.max_attempts = parseInt(ma, 10);
      if (!q) { flash("Name a queue.", "error"); return; }
      var btn = $("#enqueue-submit");
      btn.disabled = true;
      api("POST", queuePath(q) + "/tasks", task).then(function (res) {
        flash("Enqueued " + res.id + "." + (res.duplicate ? " (A duplicate: the queue had this ID already.)" : ""), "ok");
        form.elements.id.value = "";
      }).catch(function (err) {
        flash(err.message, "error");
      }).then(function () { btn.disabled = false; });
    });
  }

  function init() {
    $$("[data-chart]").forEach(makeChart);
    initQueuePage();
    initDeadList();
    initGroups();
    initDeadLetter();
    initEnqueue();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
