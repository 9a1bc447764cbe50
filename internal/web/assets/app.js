// tablelog web: the only script of the pages. It never builds HTML from
// data: every value goes into the page through textContent or an
// attribute set with setAttribute on an element it created.
"use strict";

(function () {
  // Selects that reload the view when changed (service, day).
  document.querySelectorAll("select.autosubmit").forEach(function (sel) {
    sel.addEventListener("change", function () {
      var form = sel.form;
      if (sel.name === "service" && form.elements.day) {
        form.elements.day.value = "";
      }
      form.submit();
    });
  });

  var live = document.getElementById("live");
  if (!live) {
    return;
  }
  var button = document.getElementById("live-toggle");
  var status = document.getElementById("live-status");
  var rows = document.getElementById("rows");
  var maxRows = 1000;       // rows kept on the page while following
  var maxBuffered = 5000;   // records held while paused
  var es = null;
  var paused = false;
  var buffer = [];
  var received = 0;
  var lastTime = live.getAttribute("data-from");
  var overflowed = false;

  function setStatus(text) {
    status.textContent = text;
  }

  function cell(tr, cls, text) {
    var td = document.createElement("td");
    if (cls) {
      td.className = cls;
    }
    if (text !== undefined) {
      td.textContent = text;
    }
    tr.appendChild(td);
    return td;
  }

  // isNew reports whether r is a record not shown or held yet (the stream
  // replays from the newest listed record, and again after a reconnect).
  var held = {};
  function isNew(r) {
    if (!/^[0-9A-Z]{26}$/.test(r.id) || held[r.id]) {
      return false;
    }
    return !document.querySelector('tr[data-id="' + r.id + '"]');
  }

  function addRow(r) {
    if (!isNew(r)) {
      return;
    }
    var cls = /^[a-z]+$/.test(r.class) ? r.class : "info";
    var tr = document.createElement("tr");
    tr.setAttribute("data-id", r.id);
    tr.className = "row fresh lv-" + cls;
    var a = document.createElement("a");
    a.setAttribute("href", r.href);
    a.textContent = r.time;
    cell(tr, "c-time").appendChild(a);
    var badge = document.createElement("span");
    badge.className = "badge lv-" + cls;
    badge.textContent = r.level;
    cell(tr, "c-level").appendChild(badge);
    var msg = cell(tr, "msg");
    if (r.logger) {
      var lg = document.createElement("span");
      lg.className = "logger";
      lg.textContent = r.logger;
      msg.appendChild(lg);
      msg.appendChild(document.createTextNode(" "));
    }
    msg.appendChild(document.createTextNode(r.msg));
    cell(tr, "fields", r.fields);
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > maxRows) {
      rows.removeChild(rows.lastChild);
    }
    var empty = document.getElementById("empty");
    if (empty) {
      empty.remove();
    }
    lastTime = r.time;
  }

  function onRecord(ev) {
    var r;
    try {
      r = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    if (!isNew(r)) {
      return;
    }
    received++;
    if (paused) {
      if (buffer.length >= maxBuffered) {
        // Too much to hold: stop; resuming reloads the newest page (the
        // older pages hold the rest).
        overflowed = true;
        stop();
        setStatus("paused; more than " + maxBuffered + " new records arrived: resume reloads the newest page");
        return;
      }
      buffer.push(r);
      held[r.id] = true;
      setStatus("paused · " + buffer.length + " new");
      return;
    }
    addRow(r);
    setStatus("following · " + received + " new");
  }

  function start(from) {
    var src = live.getAttribute("data-src");
    var url = src + (src.indexOf("?") < 0 ? "?" : "&") + "from=" + encodeURIComponent(from || "");
    es = new EventSource(url);
    es.addEventListener("record", onRecord);
    es.addEventListener("warning", function (ev) {
      try {
        setStatus("following (retrying: " + JSON.parse(ev.data).error + ")");
      } catch (e) {}
    });
    es.addEventListener("fatal", function (ev) {
      var msg = "stopped";
      try {
        msg = "stopped: " + JSON.parse(ev.data).error;
      } catch (e) {}
      stop();
      setStatus(msg);
      live.classList.remove("on");
      button.textContent = "▶ Live tail";
    });
    es.addEventListener("open", function () {
      setStatus(paused ? "paused" : "following · " + received + " new");
    });
    es.addEventListener("error", function () {
      if (es && es.readyState === EventSource.CONNECTING) {
        setStatus("reconnecting…");
      }
    });
  }

  function stop() {
    if (es) {
      es.close();
      es = null;
    }
  }

  button.addEventListener("click", function () {
    if (!es && !paused) {
      // Off → following, from the newest record on the page.
      live.classList.add("on");
      button.textContent = "❚❚ Pause";
      start(live.getAttribute("data-from"));
      setStatus("following");
      return;
    }
    if (!paused) {
      paused = true;
      button.textContent = "▶ Resume";
      setStatus("paused");
      return;
    }
    if (overflowed) {
      location.reload();
      return;
    }
    paused = false;
    button.textContent = "❚❚ Pause";
    var pending = buffer;
    buffer = [];
    held = {};
    pending.forEach(addRow);
    if (!es) {
      start(lastTime ? lastTime.replace(" ", "T") + "Z" : live.getAttribute("data-from"));
    }
    setStatus("following · " + received + " new");
  });
})();
