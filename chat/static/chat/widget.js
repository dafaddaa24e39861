/* AutoGLM chat widget: one <script> tag, rendered in a Shadow DOM, streaming over WebSocket. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.AutoGLM) return;
  var src = new URL(script.src, location.href);
  var cfg = {
    locale: script.dataset.locale || "",
    position: script.dataset.position === "left" ? "left" : "right",
    color: /^#[0-9a-fA-F]{3,8}$/.test(script.dataset.color || "") ? script.dataset.color : "#2457c5",
    greeting: script.dataset.greeting || "",
    name: script.dataset.assistantName || "Assistant",
  };
  var wsUrl = (src.protocol === "https:" ? "wss://" : "ws://") + src.host + "/ws/chat/";
  var storeKey = "autoglm:" + src.host;
  var RTL = /^(ar|he|fa|ur)(-|$)/;

  function load() {
    try { return JSON.parse(localStorage.getItem(storeKey)) || {}; } catch (e) { return {}; }
  }
  var state = load();
  state.messages = state.messages || [];   // [{id, role, text, status, client_id}]
  state.outbox = state.outbox || [];       // [{client_id, text, state}]
  function save() {
    try { localStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) { /* quota */ }
  }

  var host = document.createElement("div");
  host.setAttribute("data-autoglm", "");
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML =
    '<style>' +
    ':host{all:initial}' +
    '.w{position:fixed;bottom:16px;inset-inline-end:16px;z-index:2147483000;font:15px/1.45 system-ui,"Noto Sans","Noto Sans CJK SC","Noto Sans Arabic","Noto Sans Hebrew",sans-serif;color:#1b1f24}' +
    '.w.left{inset-inline-end:auto;inset-inline-start:16px}' +
    '.launch{background:var(--c);color:#fff;border:0;border-radius:999px;padding:12px 18px;font:inherit;cursor:pointer;box-shadow:0 4px 14px #0003}' +
    '.panel{display:none;flex-direction:column;width:min(380px,calc(100vw - 32px));height:min(560px,calc(100vh - 96px));background:#fff;border-radius:12px;box-shadow:0 8px 30px #0004;overflow:hidden;margin-block-end:10px}' +
    '.open .panel{display:flex}' +
    'header{background:var(--c);color:#fff;padding:10px 14px;display:flex;align-items:center;gap:8px}' +
    'header b{flex:1}header button{background:none;border:0;color:#fff;font:inherit;font-size:20px;cursor:pointer}' +
    '.log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px}' +
    '.m{max-width:85%;padding:8px 12px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere}' +
    '.user{align-self:flex-end;background:var(--c);color:#fff}.assistant{align-self:flex-start;background:#eef1f5}' +
    '.m .st{display:block;font-size:12px;opacity:.75;margin-block-start:2px}' +
    '.typing::after{content:"…";animation:b 1s infinite}@keyframes b{50%{opacity:.2}}' +
    'form{display:flex;gap:6px;padding:8px;border-block-start:1px solid #dde1e6}' +
    'textarea{flex:1;resize:none;font:inherit;padding:8px;border:1px solid #b9c0c8;border-radius:8px;max-height:120px}' +
    'form button{background:var(--c);color:#fff;border:0;border-radius:8px;padding:0 14px;font:inherit;cursor:pointer}' +
    '.status{font-size:12px;padding:0 12px;color:#5a636e;min-height:16px}' +
    '</style>' +
    '<div class="w" part="widget"><div class="panel" role="dialog" aria-label="">' +
    '<header><b class="title"></b><button class="close" type="button" aria-label="Close">×</button></header>' +
    '<div class="log" role="log" aria-live="polite"></div><div class="status" aria-live="polite"></div>' +
    '<form><textarea rows="1" dir="auto" aria-label="Message"></textarea>' +
    '<button class="send" type="submit">Send</button><button class="stop" type="button" hidden>Stop</button></form>' +
    '</div><button class="launch" type="button" aria-expanded="false">Chat</button></div>';
  var w = root.querySelector(".w"), log = root.querySelector(".log"), input = root.querySelector("textarea");
  var statusEl = root.querySelector(".status"), stopBtn = root.querySelector(".stop");
  var launch = root.querySelector(".launch");
  w.style.setProperty("--c", cfg.color);
  if (cfg.position === "left") w.classList.add("left");
  root.querySelector(".title").textContent = cfg.name;
  root.querySelector(".panel").setAttribute("aria-label", cfg.name);

  var ws = null, ready = false, attempt = 0, maxChars = 4000, language = cfg.locale;
  var listeners = {};
  function emit(name, detail) { (listeners[name] || []).forEach(function (f) { try { f(detail); } catch (e) {} }); }

  function setDir(lang) {
    w.setAttribute("dir", RTL.test(lang || "") ? "rtl" : "ltr");
    w.setAttribute("lang", lang || "");
  }
  setDir(cfg.locale || navigator.language);

  function byId(id) { return state.messages.find(function (m) { return m.id === id; }); }
  function upsert(msg) {
    var old = byId(msg.id);
    if (old) Object.assign(old, msg); else state.messages.push(msg);
    state.messages.sort(function (a, b) { return a.id - b.id; });
  }
  function render() {
    log.textContent = "";
    if (cfg.greeting) bubble({ role: "assistant", text: cfg.greeting, status: "complete" });
    state.messages.forEach(bubble);
    state.outbox.forEach(function (o) { bubble({ role: "user", text: o.text, status: o.state }); });
    log.scrollTop = log.scrollHeight;
    var streaming = state.messages.some(function (m) { return m.status === "streaming" || m.status === "pending"; });
    stopBtn.hidden = !streaming;
  }
  function bubble(m) {
    var el = document.createElement("div");
    el.className = "m " + (m.role === "user" ? "user" : "assistant");
    el.setAttribute("dir", "auto");
    el.textContent = m.text;   // text only: nothing from the model or the network is parsed as HTML
    if (m.role === "assistant" && !m.text && (m.status === "pending" || m.status === "streaming")) el.classList.add("typing");
    var label = { sending: "sending…", failed: "not sent — tap to retry", interrupted: "interrupted", cancelled: "stopped" }[m.status];
    if (label) {
      var s = document.createElement("span"); s.className = "st"; s.textContent = label; el.appendChild(s);
      if (m.status === "failed") el.addEventListener("click", function () { retry(m); });
    }
    log.appendChild(el);
  }
  function lastSeen() {
    var seen = null;
    for (var i = 0; i < state.messages.length; i++) {
      var s = state.messages[i].status;
      if (s === "pending" || s === "streaming") break;
      seen = state.messages[i].id;
    }
    return seen;
  }

  function send(frame) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame)); }
  function flushOutbox() {
    state.outbox.forEach(function (o) { if (o.state !== "failed") { o.state = "sending"; send({ type: "message", client_id: o.client_id, text: o.text }); } });
  }
  function retry(m) {
    var o = state.outbox.find(function (x) { return x.text === m.text && x.state === "failed"; });
    if (o) { o.state = "sending"; save(); render(); if (ready) send({ type: "message", client_id: o.client_id, text: o.text }); }
  }
  function connect() {
    ws = new WebSocket(wsUrl);
    ws.onopen = function () {
      attempt = 0;
      send({ type: "hello", token: state.token || null, locale: language || null,
             conversation_id: state.conversation_id || null, last_seen_id: state.conversation_id ? lastSeen() : null });
    };
    ws.onmessage = function (ev) {
      var f; try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f.type === "welcome") {
        ready = true; state.token = f.token; maxChars = f.limits.max_message_chars;
        if (f.conversation_id) state.conversation_id = f.conversation_id;
        f.messages.forEach(upsert); setDir(f.language); statusEl.textContent = "";
        flushOutbox();
      } else if (f.type === "ack") {
        state.conversation_id = f.conversation_id;
        var o = state.outbox.find(function (x) { return x.client_id === f.client_id; });
        state.outbox = state.outbox.filter(function (x) { return x.client_id !== f.client_id; });
        if (!byId(f.message_id)) upsert({ id: f.message_id, role: "user", text: o ? o.text : "", status: "complete", client_id: f.client_id });
        if (f.reply_id && !byId(f.reply_id)) upsert({ id: f.reply_id, role: "assistant", text: "", status: "pending" });
      } else if (f.type === "message") {
        upsert(f.message);
      } else if (f.type === "delta") {
        var m = byId(f.message_id);
        if (!m) { m = { id: f.message_id, role: "assistant", text: "", status: "streaming" }; upsert(m); }
        if (f.offset <= m.text.length) m.text = m.text.slice(0, f.offset) + f.text;
        else { ws.close(); return; }  // a gap: reconnect and take the stored text
        m.status = "streaming"; emit("delta", f);
      } else if (f.type === "done") {
        var d = byId(f.message_id); if (d) d.status = f.status; emit("reply", d);
      } else if (f.type === "error") {
        if (f.code === "invalid_token") { state.token = null; state.conversation_id = null; save(); ws.close(); return; }
        if (f.code === "conversation_not_found") { state.conversation_id = null; state.messages = []; save(); ws.close(); return; }
        if (f.client_id) state.outbox.forEach(function (x) { if (x.client_id === f.client_id) x.state = "failed"; });
        statusEl.textContent = f.message;
      }
      save(); render();
    };
    ws.onclose = function () {
      ready = false; statusEl.textContent = "…";
      var delay = Math.min(10000, 500 * Math.pow(2, attempt++)) * (0.7 + Math.random() * 0.6);
      setTimeout(connect, delay);
    };
  }

  function open() { w.classList.add("open"); launch.setAttribute("aria-expanded", "true"); input.focus(); emit("open"); }
  function close() { w.classList.remove("open"); launch.setAttribute("aria-expanded", "false"); launch.focus(); emit("close"); }
  launch.addEventListener("click", function () { w.classList.contains("open") ? close() : open(); });
  root.querySelector(".close").addEventListener("click", close);
  w.addEventListener("keydown", function (e) { if (e.key === "Escape") close(); });
  stopBtn.addEventListener("click", function () { send({ type: "cancel" }); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); root.querySelector("form").requestSubmit(); }
  });
  input.addEventListener("input", function () {
    var left = maxChars - input.value.length;
    statusEl.textContent = left < 200 ? left + " / " + maxChars : "";
  });
  root.querySelector("form").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text || text.length > maxChars) return;
    var id = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^A-Za-z0-9-]/g, "");
    state.outbox.push({ client_id: id, text: text, state: "sending" });
    input.value = ""; save(); render();
    if (ready) send({ type: "message", client_id: id, text: text });
  });

  document.body.appendChild(host);
  render();
  connect();
  window.AutoGLM = {
    open: open, close: close,
    setLocale: function (l) { language = l; setDir(l); if (ws) ws.close(); },
    newConversation: function () { state.conversation_id = null; state.messages = []; save(); render(); if (ws) ws.close(); },
    on: function (name, f) { (listeners[name] = listeners[name] || []).push(f); },
  };
})();
