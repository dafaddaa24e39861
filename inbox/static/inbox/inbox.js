/* AutoGLM agent inbox: the page's one script (docs/inbox.md). No framework, no build step and
 * no innerHTML from the network: every text goes in with textContent. Strings are wrapped in
 * gettext() so `makemessages -d djangojs` extracts them; the catalogue is the widget's
 * (/jsi18n/<lang>/), fetched before anything is drawn.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var data = script.dataset;
  var API = data.apiBase || "/inbox/api/";
  var LANG = data.language || document.documentElement.lang || "en";
  var STORE = "autoglm-inbox:";
  var QUEUES = ["waiting", "mine", "team", "open", "resolved"];

  // --- strings -------------------------------------------------------------------------------
  var catalog = {};
  function gettext(s) {
    var v = catalog[s];
    return v === undefined || v === "" ? s : typeof v === "string" ? v : v[0];
  }
  function interpolate(fmt, obj) {
    return fmt.replace(/%\((\w+)\)[sd]/g, function (m, k) { return obj[k] === undefined ? m : String(obj[k]); });
  }

  // --- small DOM helpers ---------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = text;
    return n;
  }
  function userText(tag, cls, text) { var n = el(tag, cls, text); n.dir = "auto"; return n; }
  function button(cls, text) { var b = el("button", cls, text); b.type = "button"; return b; }
  function store(key, value) {
    try {
      if (value === undefined) return JSON.parse(localStorage.getItem(STORE + key) || "null");
      localStorage.setItem(STORE + key, JSON.stringify(value));
    } catch (e) { return null; }
    return value;
  }
  function debounce(fn, ms) {
    var t = null;
    return function () { clearTimeout(t); t = setTimeout(fn, ms); };
  }
  // At most one call per MS: the first at once (after a short pause to gather a burst), then
  // one at the end of each busy stretch. A busy inbox gets a queue event per message: a plain
  // debounce would put the lists off for as long as messages keep coming.
  function throttle(fn, ms) {
    var last = 0, t = null;
    return function () {
      if (t) return;
      var wait = Math.max(150, last + ms - Date.now());
      t = setTimeout(function () { t = null; last = Date.now(); fn(); }, wait);
    };
  }
  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "c" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  // --- state ---------------------------------------------------------------------------------
  var me = null;                      // /api/me
  var languages = {};                 // code -> local name (/chat/config)
  var queue = "waiting";
  var lists = { rows: [], fetchedAt: 0 };
  var current = null;                 // {id, summary, messages: Map(id -> message)}
  var shownOriginal = new Set();      // message ids toggled to their other text
  var outbox = store("outbox") || []; // unacknowledged sends, resent with their client_id
  var muted = store("muted");
  var cannedCache = {};
  var socket = null, connected = false, attempts = 0, pingTimer = null, stopped = false;
  var refCount = 0;
  var typingTimer = null, lastTypingSent = 0;
  var baseTitle = document.title;
  var hook = window.AutoGLMInbox = { beeps: 0, notifications: 0, frames: [] };
  // For the browser tests and for debugging from the console.
  hook.socket = function () { return socket; };
  hook.state = function () {
    var s = current && current.summary;
    return { connected: connected, conversation: current && current.id, outbox: outbox.length, muted: !!muted,
      mode: s ? s.mode : null, status: s ? s.status : null, team: s && s.team ? s.team.id : null };
  };

  var fmtTime, fmtMinutes, fmtHours, fmtSeconds;
  function formats() {
    try {
      fmtTime = new Intl.DateTimeFormat(LANG, { hour: "2-digit", minute: "2-digit" });
      fmtMinutes = new Intl.NumberFormat(LANG, { style: "unit", unit: "minute", unitDisplay: "short" });
      fmtHours = new Intl.NumberFormat(LANG, { style: "unit", unit: "hour", unitDisplay: "short" });
      fmtSeconds = new Intl.NumberFormat(LANG, { style: "unit", unit: "second", unitDisplay: "short" });
    } catch (e) {
      var plain = { format: function (v) { return String(v); } };
      fmtTime = { format: function (d) { return d.toTimeString().slice(0, 5); } };
      fmtMinutes = fmtHours = fmtSeconds = plain;
    }
  }
  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return fmtSeconds.format(seconds);
    if (seconds < 3600) return fmtMinutes.format(Math.floor(seconds / 60));
    return fmtHours.format(Math.floor(seconds / 3600)) + " " + fmtMinutes.format(Math.floor(seconds / 60) % 60);
  }
  function clock(iso) {
    var d = new Date(iso);
    return isNaN(d) ? "" : fmtTime.format(d);
  }
  var displayNames = null;
  function languageName(code) {
    if (!code) return "";
    // In the agent's language ("Arabisch"), else the language's own name from the site.
    try {
      displayNames = displayNames || new Intl.DisplayNames([LANG], { type: "language" });
      var name = displayNames.of(code);
      if (name && name !== code) return name;
    } catch (e) { /* older browsers */ }
    return languages[code] || code;
  }

  // --- HTTP ----------------------------------------------------------------------------------
  function getJSON(path) {
    return fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (r.status === 403) { signedOut(); throw new Error("forbidden"); }
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }
  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      if (params[k] !== "" && params[k] !== null && params[k] !== undefined)
        parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(params[k]));
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  // --- messages to the agent -----------------------------------------------------------------
  var toastTimer = null;
  function toast(text) {
    var t = $("toast");
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { t.hidden = true; }, 6000);
  }
  function announce(text) {
    var a = $("announce");
    a.textContent = "";
    setTimeout(function () { a.textContent = text; }, 30);
  }
  function setConn(text, bad) {
    var c = $("conn");
    c.textContent = text;
    c.classList.toggle("bad", !!bad);
  }
  function signedOut() {
    stopped = true;
    setConn(gettext("Signed out. Sign in again to use the inbox."), true);
    var link = el("a", "", gettext("Sign in"));
    link.href = "/admin/login/?next=" + encodeURIComponent(location.pathname);
    $("conn").append(" ", link);
  }

  // --- the socket ----------------------------------------------------------------------------
  function connect() {
    if (stopped) return;
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + (data.wsPath || "/ws/inbox/");
    var ws = new WebSocket(url);
    socket = ws;
    ws.onopen = function () {
      if (socket !== ws) return;
      connected = true;
      attempts = 0;
      setConn(gettext("Connected"), false);
      clearInterval(pingTimer);
      pingTimer = setInterval(function () { frame({ type: "ping" }); }, 20000);
      if (current) openFrame(current.id, true);
      outbox.forEach(function (item) { if (!item.failed) sendItem(item); });
      refreshLists();
      loadMe();
    };
    ws.onmessage = function (ev) {
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      onFrame(f);
    };
    ws.onclose = function (ev) {
      if (socket !== ws) return;
      connected = false;
      clearInterval(pingTimer);
      if (ev.code === 4003) { signedOut(); return; }
      setConn(gettext("Connection lost. Reconnecting…"), true);
      var delay = Math.min(15000, 500 * Math.pow(2, attempts++)) * (0.75 + Math.random() / 2);
      setTimeout(connect, delay);
    };
  }
  function frame(obj) {
    if (!connected || !socket || socket.readyState !== 1) return false;
    socket.send(JSON.stringify(obj));
    return true;
  }
  function action(type, extra) {
    if (!current) return;
    var f = { type: type, conversation_id: current.id, ref: "a" + (++refCount) };
    Object.keys(extra || {}).forEach(function (k) { f[k] = extra[k]; });
    if (!frame(f)) toast(gettext("Not connected. Try again in a moment."));
  }

  function onFrame(f) {
    hook.frames.push(f.type);
    if (hook.frames.length > 200) hook.frames.shift();
    switch (f.type) {
      case "conversation": onConversation(f); break;
      case "message": if (current && f.conversation_id === current.id) upsertMessage(f.message, true); break;
      case "ack": onAck(f); break;
      case "translation": onTranslation(f); break;
      case "typing": if (current && f.conversation_id === current.id && f.who === "visitor") visitorTyping(); break;
      case "presence":
        if (current && current.summary && f.conversation_id === current.id) {
          current.summary.visitor_online = f.online;
          renderHead();
        }
        break;
      case "queue":
        refreshListsSoon();
        if (f.event === "waiting") notifyWaiting(f.conversation_id);
        break;
      case "ok": refreshListsSoon(); break;
      case "error": onError(f); break;
      default: break;
    }
  }

  function onError(f) {
    var item = f.ref && outbox.find(function (o) { return o.client_id === f.ref; });
    if (item) {
      item.failed = f.message || gettext("Not sent.");
      saveOutbox();
      renderMessages();
      return;
    }
    if (f.code === "conversation_not_found" && current) closeConversation();
    toast(f.message || gettext("Something went wrong."));
  }

  // --- lists ---------------------------------------------------------------------------------
  function filters() {
    return {
      queue: queue,
      language: $("f-language").value,
      team: $("f-team").value,
      reason: $("f-reason").value,
      q: $("f-q").value.trim(),
    };
  }
  var listSeq = 0;
  function refreshLists() {
    var seq = ++listSeq;
    return getJSON(API + "conversations" + query(filters())).then(function (answer) {
      if (seq !== listSeq) return;
      lists = { rows: answer.conversations || [], fetchedAt: Date.now() };
      var counts = answer.counts || {};
      QUEUES.forEach(function (q) {
        var c = document.querySelector('[data-count="' + q + '"]');
        if (c) c.textContent = String(counts[q] || 0);
      });
      var waiting = counts.waiting || 0;
      document.title = waiting ? interpolate(gettext("(%(count)s) %(title)s"), { count: waiting, title: baseTitle }) : baseTitle;
      renderList();
    }).catch(function () { /* kept; the next event or reconnect refreshes */ });
  }
  var refreshListsSoon = throttle(refreshLists, 1000);

  function modeLabel(s) {
    if (s.status === "closed") return gettext("Resolved");
    if (s.mode === "waiting") return gettext("Waiting for an agent");
    if (s.mode === "agent")
      return s.assignee ? interpolate(gettext("With %(name)s"), { name: s.assignee.name }) : gettext("With an agent");
    return gettext("With the assistant");
  }
  function waitedSeconds(s) {
    return (s.waiting_seconds || 0) + (Date.now() - lists.fetchedAt) / 1000;
  }

  function renderList() {
    var list = $("list");
    list.textContent = "";
    lists.rows.forEach(function (s) {
      var li = el("li");
      var b = button("row");
      b.dataset.id = s.id;
      if (current && current.id === s.id) b.setAttribute("aria-current", "true");
      var top = b.appendChild(el("span", "row-top"));
      var lang = top.appendChild(el("span", "lang", (s.language || "").toUpperCase()));
      lang.title = languageName(s.language);
      top.appendChild(el("span", "reason", s.handoff_reason_label || ""));
      if (s.is_ticket) top.appendChild(el("span", "badge", gettext("Ticket")));
      var when = top.appendChild(el("span", "when"));
      if (s.mode === "waiting" && s.status === "open") {
        when.classList.add("wait");
        when.dataset.wait = "1";
        when.textContent = duration(waitedSeconds(s));
        when.title = gettext("Waiting time");
      } else {
        when.textContent = s.assignee ? s.assignee.name : modeLabel(s);
      }
      var last = s.last_message;
      // The preview in the agent's language when its translation is done, else as written.
      b.appendChild(userText("span", "preview", last ? (last.translation || last.text) : ""));
      li.appendChild(b);
      list.appendChild(li);
    });
    $("list-empty").hidden = lists.rows.length > 0;
  }
  function tickWaits() {
    var byId = {};
    lists.rows.forEach(function (s) { byId[s.id] = s; });
    document.querySelectorAll("#list .row").forEach(function (b) {
      var w = b.querySelector("[data-wait]");
      var s = byId[b.dataset.id];
      if (w && s) w.textContent = duration(waitedSeconds(s));
    });
  }

  function selectQueue(name) {
    queue = name;
    document.querySelectorAll(".tabs [role=tab]").forEach(function (t) {
      var on = t.dataset.queue === name;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
    });
    refreshLists();
  }

  // --- one conversation ----------------------------------------------------------------------
  function openConversation(id) {
    if (current && current.id === id) return;
    if (current) frame({ type: "leave", conversation_id: current.id });
    current = { id: id, summary: null, messages: new Map(), loaded: false };
    shownOriginal.clear();
    history.replaceState(null, "", "#c=" + id);
    $("conv-empty").hidden = true;
    $("conv-body").hidden = false;
    $("conv-title").textContent = gettext("Loading…");
    $("conv-meta").textContent = "";
    $("messages").textContent = "";
    $("typing").hidden = true;
    $("canned").hidden = true;
    document.querySelectorAll("#list .row").forEach(function (b) {
      if (b.dataset.id === id) b.setAttribute("aria-current", "true"); else b.removeAttribute("aria-current");
    });
    openFrame(id, false);
  }
  function openFrame(id, resume) {
    var f = { type: "open", conversation_id: id, ref: "open" };
    // On a reconnect only newer messages are asked for, unless a translation was still
    // running: its result may have come while the socket was down.
    if (resume && current && current.loaded) {
      var pending = false, last = 0;
      current.messages.forEach(function (m) {
        if (typeof m.id === "number" && m.id > last) last = m.id;
        if (m.translation && m.translation.status === "pending") pending = true;
      });
      if (!pending && last) f.last_seen_id = last;
    }
    frame(f);
  }
  function closeConversation() {
    current = null;
    history.replaceState(null, "", location.pathname + location.search);
    $("conv-empty").hidden = false;
    $("conv-body").hidden = true;
  }

  function onConversation(f) {
    var s = f.conversation;
    if (!s) return;
    // The list row changes with it.
    lists.rows.forEach(function (row, i) { if (row.id === s.id) lists.rows[i] = Object.assign({}, row, s); });
    if (!current || s.id !== current.id) { refreshListsSoon(); return; }
    current.summary = s;
    if (f.messages) {
      if (f.ref === "open" && !current.loaded) current.messages = new Map();
      f.messages.forEach(function (m) { current.messages.set(m.id, m); });
      current.loaded = true;
      renderMessages();
      loadCanned();
    }
    renderHead();
  }

  function renderHead() {
    var s = current.summary;
    if (!s) return;
    $("conv-title").textContent = interpolate(gettext("Visitor in %(language)s"), { language: languageName(s.language) });
    var meta = $("conv-meta");
    meta.textContent = "";
    var bits = [modeLabel(s), s.visitor_online ? gettext("Visitor online") : gettext("Visitor offline")];
    if (s.handoff_reason_label) bits.push(s.handoff_reason_label);
    if (s.team) bits.push(interpolate(gettext("Team: %(team)s"), { team: s.team.name }));
    if (s.is_ticket) bits.push(gettext("Ticket"));
    bits.forEach(function (b, i) {
      if (i) meta.append(" · ");
      meta.appendChild(userText("span", "", b));
    });
    if (s.visitor_email) {
      meta.append(" · ");
      meta.appendChild(userText("span", "", s.visitor_email));
    }
    var mine = me && s.assignee && s.assignee.id === me.id;
    var open = s.status === "open";
    show("claim", open && !mine);
    show("resolve", open);
    show("reopen", !open);
    show("hand_back", open && s.mode !== "bot");
    var tr = document.querySelector('[data-action="translation"]');
    tr.setAttribute("aria-pressed", s.translation_enabled ? "true" : "false");
    tr.textContent = s.translation_enabled ? gettext("Translation on") : gettext("Translation off");
    $("assign").disabled = !open;
    $("transfer").disabled = !open;
    $("transcript").href = (data.transcript || "").replace("00000000-0000-0000-0000-000000000000", s.id);
  }
  function show(actionName, on) {
    var b = document.querySelector('[data-action="' + actionName + '"]');
    if (b) b.hidden = !on;
  }

  function sortedMessages() {
    var all = Array.from(current.messages.values());
    all.sort(function (a, b) { return a.id - b.id; });
    return all;
  }
  function renderMessages() {
    if (!current) return;
    var box = $("messages");
    var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
    box.textContent = "";
    sortedMessages().forEach(function (m) { box.appendChild(messageEl(m)); });
    outbox.forEach(function (item) { if (item.conversation_id === current.id) box.appendChild(outboxEl(item)); });
    if (atBottom || !box.dataset.seen) box.scrollTop = box.scrollHeight;
    box.dataset.seen = "1";
  }

  function authorLabel(m) {
    if (m.role === "user") return gettext("Visitor");
    if (m.role === "assistant") return gettext("Assistant");
    if (m.role === "note") return interpolate(gettext("Private note · %(name)s"), { name: m.author ? m.author.name : "" });
    if (m.role === "system") return "";
    return m.author ? m.author.name : gettext("Agent");
  }

  function messageEl(m) {
    var li = el("li", "msg " + m.role);
    li.dataset.id = String(m.id);
    if (m.client_id) li.dataset.clientId = m.client_id;
    if (m.role === "system") {
      li.appendChild(userText("p", "text", m.text));
      return li;
    }
    var head = li.appendChild(el("div", "msg-head"));
    head.appendChild(userText("span", "who", authorLabel(m)));
    head.appendChild(el("time", "", clock(m.created_at))).dateTime = m.created_at;
    var t = m.translation;
    var toggled = shownOriginal.has(m.id);
    var body = li.appendChild(userText("p", "text", m.text));
    var meta = el("div", "msg-meta");
    if (m.role === "user" && t) {
      if (t.status === "done") {
        body.textContent = toggled ? m.text : t.text;
        body.lang = toggled ? m.language || "" : t.language;
        meta.appendChild(el("span", "tr-note", toggled
          ? interpolate(gettext("Original (%(language)s)"), { language: languageName(m.language) })
          : interpolate(gettext("Translated from %(language)s"), { language: languageName(m.language) })));
        meta.appendChild(toggleButton(m, toggled ? gettext("Show translation") : gettext("Show original")));
      } else if (t.status === "pending") {
        meta.appendChild(el("span", "tr-note pending", gettext("Translating…")));
      } else {
        meta.appendChild(el("span", "tr-note failed", gettext("Not translated")));
        var retry = meta.appendChild(button("link retry", gettext("Try again")));
        retry.addEventListener("click", function () {
          m.translation = Object.assign({}, t, { status: "pending" });
          renderMessages();
          action("retranslate", { message_id: m.id });
        });
      }
    } else if (m.role === "agent" && t) {
      if (t.status === "done") {
        if (toggled) {
          meta.appendChild(userText("p", "visitor-copy", t.text)).lang = t.language;
          meta.appendChild(toggleButton(m, gettext("Hide what the visitor sees")));
        } else {
          meta.appendChild(el("span", "tr-note", interpolate(gettext("Sent in %(language)s"), { language: languageName(t.language) })));
          meta.appendChild(toggleButton(m, gettext("Show what the visitor sees")));
        }
      } else if (t.status === "pending") {
        meta.appendChild(el("span", "tr-note pending", gettext("Translating…")));
      } else {
        meta.appendChild(el("span", "tr-note failed", gettext("Not translated: the visitor sees your original")));
      }
    }
    if (m.role === "assistant" && m.citations && m.citations.length) {
      var cites = el("ul", "cites");
      cites.setAttribute("aria-label", gettext("Sources"));
      m.citations.forEach(function (c) {
        var a = userText("a", "", c.title || c.url);
        if (/^https?:\/\//i.test(c.url || "")) { a.href = c.url; a.target = "_blank"; a.rel = "noopener"; }
        cites.appendChild(el("li")).appendChild(a);
      });
      meta.appendChild(cites);
    }
    if (m.role === "assistant" && m.status && m.status !== "complete")
      meta.appendChild(el("span", "status", m.status === "streaming" ? gettext("Writing…") : gettext("Incomplete reply")));
    if (meta.childNodes.length) li.appendChild(meta);
    return li;
  }
  function toggleButton(m, label) {
    var b = button("link toggle", label);
    b.setAttribute("aria-pressed", shownOriginal.has(m.id) ? "true" : "false");
    b.addEventListener("click", function () {
      if (shownOriginal.has(m.id)) shownOriginal.delete(m.id); else shownOriginal.add(m.id);
      var fresh = messageEl(m);
      var li = b.closest("li.msg");
      li.replaceWith(fresh);
      var again = fresh.querySelector(".toggle");
      if (again) again.focus();
    });
    return b;
  }
  function outboxEl(item) {
    var li = el("li", "msg sending " + (item.note ? "note" : "agent"));
    li.dataset.clientId = item.client_id;
    var head = li.appendChild(el("div", "msg-head"));
    head.appendChild(userText("span", "who", item.note ? gettext("Private note") : (me ? me.name : "")));
    li.appendChild(userText("p", "text", item.text));
    var meta = li.appendChild(el("div", "msg-meta"));
    if (item.failed) {
      meta.appendChild(el("span", "status failed", interpolate(gettext("Not sent: %(reason)s"), { reason: item.failed })));
      var retry = meta.appendChild(button("link", gettext("Retry")));
      retry.addEventListener("click", function () { delete item.failed; saveOutbox(); renderMessages(); sendItem(item); });
      var drop = meta.appendChild(button("link", gettext("Discard")));
      drop.addEventListener("click", function () { removeOutbox(item.client_id); renderMessages(); });
    } else {
      meta.appendChild(el("span", "status", gettext("Sending…")));
    }
    return li;
  }

  function upsertMessage(m, live) {
    var isNew = !current.messages.has(m.id);
    current.messages.set(m.id, m);
    if (m.client_id) removeOutbox(m.client_id);
    renderMessages();
    if (isNew && live && (m.role === "user" || m.role === "assistant")) {
      var t = m.translation && m.translation.status === "done" ? m.translation.text : m.text;
      announce(interpolate(gettext("%(who)s: %(text)s"), { who: authorLabel(m), text: t }));
    }
    if (m.role === "user") $("typing").hidden = true;
  }
  function onAck(f) {
    var item = outbox.find(function (o) { return o.client_id === f.client_id; });
    removeOutbox(f.client_id);
    if (current && f.conversation_id === current.id && item && !current.messages.has(f.message_id)) {
      current.messages.set(f.message_id, {
        id: f.message_id, role: item.note ? "note" : "agent", text: item.text, language: "",
        status: "complete", author: me ? { id: me.id, name: me.name } : null,
        created_at: item.created_at, citations: [], translation: null, client_id: item.client_id,
      });
    }
    if (current && f.conversation_id === current.id) renderMessages();
  }
  function onTranslation(f) {
    if (!current || f.conversation_id !== current.id) return;
    var m = current.messages.get(f.message_id);
    if (!m) return;
    m.translation = { language: f.language, status: f.status, text: f.text };
    renderMessages();
  }
  function visitorTyping() {
    var t = $("typing");
    t.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { t.hidden = true; }, 4000);
  }

  // --- sending -------------------------------------------------------------------------------
  function saveOutbox() { store("outbox", outbox); }
  function removeOutbox(clientId) {
    var before = outbox.length;
    outbox = outbox.filter(function (o) { return o.client_id !== clientId; });
    if (outbox.length !== before) saveOutbox();
  }
  function sendItem(item) {
    frame({ type: "send", ref: item.client_id, conversation_id: item.conversation_id,
      client_id: item.client_id, text: item.text, note: !!item.note });
  }
  function noteMode() { return $("note-toggle").getAttribute("aria-pressed") === "true"; }
  function setNoteMode(on) {
    $("note-toggle").setAttribute("aria-pressed", on ? "true" : "false");
    $("composer").classList.toggle("is-note", on);
    $("reply").placeholder = on ? gettext("Write a private note (only agents see it)…") : replyPlaceholder;
  }
  var replyPlaceholder = "";
  function submit() {
    var input = $("reply");
    var text = input.value.trim();
    if (!text || !current) return;
    var item = { conversation_id: current.id, client_id: newClientId(), text: text,
      note: noteMode(), created_at: new Date().toISOString() };
    outbox.push(item);
    saveOutbox();
    input.value = "";
    hideCanned();
    renderMessages();
    $("messages").scrollTop = $("messages").scrollHeight;
    sendItem(item);
  }
  function typed() {
    var now = Date.now();
    if (current && !noteMode() && now - lastTypingSent > 2000 && $("reply").value.trim()) {
      lastTypingSent = now;
      frame({ type: "typing", conversation_id: current.id });
    }
    cannedFromInput();
  }

  // --- canned replies ------------------------------------------------------------------------
  var cannedIndex = 0, cannedShown = [];
  function cannedLanguage() { return (current && current.summary && current.summary.language) || data.agentLanguage || LANG; }
  function loadCanned() {
    var lang = cannedLanguage();
    if (cannedCache[lang]) return Promise.resolve(cannedCache[lang]);
    return getJSON(API + "canned" + query({ language: lang })).then(function (rows) {
      cannedCache[lang] = rows || [];
      return cannedCache[lang];
    }).catch(function () { return []; });
  }
  function showCanned(filter) {
    loadCanned().then(function (rows) {
      var f = (filter || "").toLowerCase();
      cannedShown = rows.filter(function (r) {
        return !f || r.shortcut.toLowerCase().indexOf(f) === 0 || r.title.toLowerCase().indexOf(f) >= 0;
      });
      cannedIndex = 0;
      drawCanned();
    });
  }
  function drawCanned() {
    var box = $("canned");
    box.textContent = "";
    if (!cannedShown.length) {
      box.appendChild(el("li", "none", gettext("No canned replies match.")));
    }
    cannedShown.forEach(function (r, i) {
      var li = el("li", "canned-item");
      li.setAttribute("role", "option");
      li.id = "canned-" + i;
      li.setAttribute("aria-selected", i === cannedIndex ? "true" : "false");
      li.appendChild(el("kbd", "", "/" + r.shortcut));
      li.appendChild(userText("span", "title", r.title));
      li.appendChild(userText("span", "snippet", r.text));
      li.addEventListener("mousedown", function (ev) { ev.preventDefault(); insertCanned(r); });
      box.appendChild(li);
    });
    box.hidden = false;
    $("canned-toggle").setAttribute("aria-expanded", "true");
    $("reply").setAttribute("aria-activedescendant", cannedShown.length ? "canned-" + cannedIndex : "");
  }
  function hideCanned() {
    $("canned").hidden = true;
    cannedShown = [];
    $("canned-toggle").setAttribute("aria-expanded", "false");
    $("reply").removeAttribute("aria-activedescendant");
  }
  function insertCanned(r) {
    var input = $("reply");
    input.value = input.value.replace(/(^|\s)\/\S*$/, "$1") + r.text;
    hideCanned();
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }
  function cannedFromInput() {
    var m = /(?:^|\s)\/(\S*)$/.exec($("reply").value);
    if (m) showCanned(m[1]); else if (!$("canned").hidden && !cannedPicker) hideCanned();
  }
  var cannedPicker = false;

  // --- knowledge base ------------------------------------------------------------------------
  function searchKnowledge() {
    var q = $("kb-q").value.trim();
    var results = $("kb-results");
    if (!q) return;
    results.textContent = "";
    results.appendChild(el("li", "none", gettext("Searching…")));
    getJSON(API + "knowledge" + query({ q: q, language: cannedLanguage() })).then(function (hits) {
      results.textContent = "";
      if (!hits.length) results.appendChild(el("li", "none", gettext("Nothing found.")));
      hits.forEach(function (h) {
        var li = el("li", "kb-hit");
        var a = li.appendChild(userText("a", "title", h.title));
        if (/^https?:\/\//i.test(h.url || "")) { a.href = h.url; a.target = "_blank"; a.rel = "noopener"; }
        li.appendChild(userText("p", "snippet", h.snippet));
        var ins = li.appendChild(button("insert", gettext("Insert")));
        ins.addEventListener("click", function () {
          var input = $("reply");
          var block = [h.title, h.url, h.snippet].filter(Boolean).join("\n");
          input.value = input.value ? input.value.replace(/\s*$/, "") + "\n\n" + block : block;
          input.focus();
        });
        results.appendChild(li);
      });
    }).catch(function () {
      results.textContent = "";
      results.appendChild(el("li", "none", gettext("The knowledge base could not be searched.")));
    });
  }

  // --- notifications and sound ---------------------------------------------------------------
  var audio = null;
  function unlockAudio() {
    if (audio || muted) return;
    try { audio = new (window.AudioContext || window.webkitAudioContext)(); } catch (e) { audio = null; }
  }
  function beep() {
    if (muted) return;
    hook.beeps++;
    try {
      if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === "suspended") audio.resume();
      var t = audio.currentTime, osc = audio.createOscillator(), gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.setValueAtTime(880, t);
      osc.frequency.setValueAtTime(660, t + 0.12);
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.15, t + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.3);
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start(t);
      osc.stop(t + 0.32);
    } catch (e) { /* no audio here */ }
  }
  function drawMute() {
    var b = $("mute");
    b.setAttribute("aria-pressed", muted ? "true" : "false");
    b.textContent = muted ? gettext("Sound off") : gettext("Sound on");
  }
  function drawNotifyButton() {
    $("notify").hidden = !("Notification" in window) || Notification.permission !== "default";
  }
  function notifyWaiting(conversationId) {
    beep();
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    if (document.visibilityState === "visible" && document.hasFocus()) return;
    try {
      var n = new Notification(gettext("A visitor is waiting"), {
        body: gettext("A conversation is waiting for an agent."),
        tag: "autoglm-inbox-" + conversationId,
      });
      hook.notifications++;
      n.onclick = function () { window.focus(); selectQueue("waiting"); openConversation(conversationId); n.close(); };
    } catch (e) { /* some browsers only notify from a service worker */ }
  }

  // --- keyboard ------------------------------------------------------------------------------
  function typingTarget(t) {
    return t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT" || t.tagName === "SELECT" || t.isContentEditable);
  }
  function step(delta) {
    var rows = Array.from(document.querySelectorAll("#list .row"));
    if (!rows.length) return;
    var i = rows.findIndex(function (b) { return current && b.dataset.id === current.id; });
    var next = i < 0 ? (delta > 0 ? 0 : rows.length - 1) : Math.min(rows.length - 1, Math.max(0, i + delta));
    rows[next].focus();
    openConversation(rows[next].dataset.id);
  }
  function helpOpen(on) {
    var h = $("help");
    h.hidden = !on;
    if (on) $("help-close").focus(); else $("help-open").focus();
  }
  function onKey(ev) {
    if (!$("help").hidden) {
      if (ev.key === "Escape" || ev.key === "?") { ev.preventDefault(); helpOpen(false); }
      return;
    }
    if (ev.altKey && (ev.key === "ArrowDown" || ev.key === "ArrowUp")) {
      ev.preventDefault();
      step(ev.key === "ArrowDown" ? 1 : -1);
      return;
    }
    if (typingTarget(ev.target)) {
      if (ev.key === "Escape") {
        if (!$("canned").hidden) { hideCanned(); ev.preventDefault(); return; }
        ev.target.blur();
      }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var k = ev.key;
    var handled = true;
    if (k === "j") step(1);
    else if (k === "k") step(-1);
    else if (k === "?") helpOpen(true);
    else if (k === "/") $("f-q").focus();
    else if (k >= "1" && k <= "5") { selectQueue(QUEUES[Number(k) - 1]); }
    else if (current && k === "c") clickAction("claim");
    else if (current && k === "e") clickAction("resolve");
    else if (current && k === "t") document.querySelector('[data-action="translation"]').click();
    else if (current && k === "r") { setNoteMode(false); $("reply").focus(); }
    else if (current && k === "n") { setNoteMode(true); $("reply").focus(); }
    else if (k === "Escape") { $("kb").hidden = true; hideCanned(); }
    else handled = false;
    if (handled) ev.preventDefault();
  }
  function clickAction(name) {
    var b = document.querySelector('[data-action="' + name + '"]');
    if (b && !b.hidden) b.click();
  }

  // --- wiring --------------------------------------------------------------------------------
  function loadMe() {
    return getJSON(API + "me").then(function (answer) {
      me = answer;
      if (muted === null) muted = !me.sound_enabled;
      drawMute();
      fillSelect($("f-team"), (me.all_teams || me.teams || []).map(function (t) { return [t.id, t.name]; }));
      fillSelect($("f-reason"), (me.reasons || []).map(function (r) { return [r.value, r.label]; }));
      var agents = (me.agents || []).map(function (a) {
        return [a.id, a.online ? interpolate(gettext("%(name)s (online)"), { name: a.name }) : a.name];
      });
      fillSelect($("assign"), agents);
      var transfer = $("transfer");
      var keep = transfer.options[0];
      transfer.textContent = "";
      transfer.appendChild(keep);
      var teams = el("optgroup");
      teams.label = gettext("Teams");
      (me.all_teams || me.teams || []).forEach(function (t) { teams.appendChild(option("team:" + t.id, t.name)); });
      var people = el("optgroup");
      people.label = gettext("Agents");
      agents.forEach(function (a) { people.appendChild(option("agent:" + a[0], a[1])); });
      transfer.append(teams, people);
      if (current && current.summary) renderHead();
    }).catch(function () { /* signed out is shown by getJSON */ });
  }
  function option(value, label) { var o = el("option", "", label); o.value = String(value); return o; }
  function fillSelect(select, pairs) {
    var chosen = select.value;
    var first = select.options[0];
    select.textContent = "";
    select.appendChild(first);
    pairs.forEach(function (p) { select.appendChild(option(p[0], p[1])); });
    select.value = chosen;
  }

  function wire() {
    document.querySelectorAll(".tabs [role=tab]").forEach(function (t) {
      t.addEventListener("click", function () { selectQueue(t.dataset.queue); });
      t.addEventListener("keydown", function (ev) {
        if (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft") return;
        var tabs = Array.from(document.querySelectorAll(".tabs [role=tab]"));
        var rtl = document.documentElement.dir === "rtl";
        var forward = (ev.key === "ArrowRight") !== rtl;
        var next = tabs[(tabs.indexOf(t) + (forward ? 1 : tabs.length - 1)) % tabs.length];
        next.focus();
        selectQueue(next.dataset.queue);
        ev.preventDefault();
      });
    });
    $("list").addEventListener("click", function (ev) {
      var row = ev.target.closest(".row");
      if (row) openConversation(row.dataset.id);
    });
    $("filters").addEventListener("submit", function (ev) { ev.preventDefault(); refreshLists(); });
    ["f-language", "f-team", "f-reason"].forEach(function (id) { $(id).addEventListener("change", refreshLists); });
    $("f-q").addEventListener("input", debounce(refreshLists, 300));

    document.querySelectorAll(".actions [data-action]").forEach(function (b) {
      b.addEventListener("click", function () {
        var name = b.dataset.action;
        if (name === "translation") {
          var on = b.getAttribute("aria-pressed") !== "true";
          action("translation", { enabled: on });
        } else {
          action(name);
        }
      });
    });
    $("assign").addEventListener("change", function (ev) {
      var v = ev.target.value;
      if (v) action("assign", { agent_id: Number(v) });
      ev.target.value = "";
    });
    $("transfer").addEventListener("change", function (ev) {
      var v = ev.target.value.split(":");
      if (v[0] === "team") action("transfer", { team_id: Number(v[1]) });
      else if (v[0] === "agent") action("transfer", { agent_id: Number(v[1]) });
      ev.target.value = "";
    });

    var input = $("reply");
    replyPlaceholder = input.placeholder;
    $("composer").addEventListener("submit", function (ev) { ev.preventDefault(); submit(); });
    input.addEventListener("input", typed);
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); submit(); return; }
      if ($("canned").hidden || !cannedShown.length) return;
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        cannedIndex = (cannedIndex + (ev.key === "ArrowDown" ? 1 : cannedShown.length - 1)) % cannedShown.length;
        drawCanned();
        ev.preventDefault();
      } else if (ev.key === "Tab" || ev.key === "Enter") {
        insertCanned(cannedShown[cannedIndex]);
        ev.preventDefault();
      }
    });
    input.addEventListener("blur", function () { setTimeout(function () { if (!cannedPicker) hideCanned(); }, 150); });
    $("note-toggle").addEventListener("click", function () { setNoteMode(!noteMode()); input.focus(); });
    $("canned-toggle").addEventListener("click", function () {
      if (!$("canned").hidden) { cannedPicker = false; hideCanned(); return; }
      cannedPicker = true;
      showCanned("");
    });
    $("kb-toggle").addEventListener("click", function () {
      var kb = $("kb");
      kb.hidden = !kb.hidden;
      $("kb-toggle").setAttribute("aria-expanded", kb.hidden ? "false" : "true");
      if (!kb.hidden) $("kb-q").focus();
    });
    $("kb-go").addEventListener("click", searchKnowledge);
    $("kb-q").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { ev.preventDefault(); searchKnowledge(); }
    });

    $("mute").addEventListener("click", function () {
      muted = !muted;
      store("muted", muted);
      drawMute();
      if (!muted) beep();
    });
    $("notify").addEventListener("click", function () {
      Notification.requestPermission().then(drawNotifyButton, drawNotifyButton);
    });
    $("help-open").addEventListener("click", function () { helpOpen(true); });
    $("help-close").addEventListener("click", function () { helpOpen(false); });
    $("help").addEventListener("click", function (ev) { if (ev.target === $("help")) helpOpen(false); });
    document.addEventListener("keydown", onKey);
    document.addEventListener("pointerdown", unlockAudio, { once: true });
    window.addEventListener("online", function () { if (!connected) { attempts = 0; connect(); } });
    setInterval(tickWaits, 15000);
  }

  function languagesLoad() {
    return getJSON(data.config || "/chat/config").then(function (cfg) {
      (cfg.languages || []).forEach(function (l) { languages[l.code] = l.name; });
      fillSelect($("f-language"), (cfg.languages || []).map(function (l) { return [l.code, l.name]; }));
    }).catch(function () { /* codes are shown instead of names */ });
  }

  function start() {
    formats();
    wire();
    drawMute();
    drawNotifyButton();
    var hash = /^#c=([0-9a-f-]{36})$/.exec(location.hash);
    Promise.all([languagesLoad(), loadMe()]).then(function () {
      if (hash && !current) openConversation(hash[1]);
    });
    if (hash) openConversation(hash[1]);
    refreshLists();
    connect();
  }

  fetch(data.catalog, { credentials: "same-origin" })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (json) { catalog = (json && json.catalog) || {}; }, function () { /* English */ })
    .then(start);
})();
