/* AutoGLM chat widget: one <script> tag, rendered in a Shadow DOM, streaming over WebSocket.
 * No framework and no innerHTML from the network: model text is parsed into DOM nodes.
 * Strings are wrapped in gettext()/ngettext() so `makemessages -d djangojs` extracts them;
 * the translations are fetched from the server's catalogue (/jsi18n/<lang>/). See docs/widget.md.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.AutoGLM) return;
  var data = script.dataset;
  var base = new URL(script.src, location.href);
  var server = base.origin;
  var wsUrl = (base.protocol === "https:" ? "wss://" : "ws://") + base.host + "/ws/chat/";
  var storeKey = "autoglm:" + base.host;
  var choiceKey = storeKey + ":locale";

  // --- strings: Django's catalogue, English source strings until it has loaded ---------------
  var catalog = {};
  var plural = function (n) { return n === 1 ? 0 : 1; };
  function gettext(s) {
    var v = catalog[s];
    return v === undefined ? s : typeof v === "string" ? v : v[0];
  }
  function ngettext(s, p, n) {
    var v = catalog[s];
    if (v === undefined || typeof v === "string") return v || (n === 1 ? s : p);
    var i = Number(plural(n));
    return v[i] !== undefined ? v[i] : n === 1 ? s : p;
  }
  function interpolate(fmt, obj) {
    return fmt.replace(/%\((\w+)\)[sd]/g, function (m, k) { return obj[k] === undefined ? m : String(obj[k]); });
  }
  function setCatalog(json) {
    catalog = (json && json.catalog) || {};
    plural = function (n) { return n === 1 ? 0 : 1; };
    var expr = json && json.plural;
    // Only the arithmetic of a Plural-Forms header, never arbitrary code.
    if (expr && /^[\sn0-9%<>=!&|?:()]+$/.test(expr)) {
      try { plural = pluralRule(expr); } catch (e) { /* not a plural rule: keep n == 1 */ }
    }
  }
  // A Plural-Forms expression ("n%10==1 && n%100!=11 ? 0 : 1"), parsed into a function: no eval,
  // which a Content-Security-Policy (the site's own pages have one) refuses. Throws on anything else.
  function pluralRule(expr) {
    var t = expr.match(/\d+|n|&&|\|\||[=!<>]=|[<>%?:()!]/g) || [], i = 0;
    if (t.join("") !== expr.replace(/\s+/g, "")) throw new Error("plural");
    var OPS = {
      "%": function (a, b) { return a % b; }, "<": function (a, b) { return +(a < b); },
      ">": function (a, b) { return +(a > b); }, "<=": function (a, b) { return +(a <= b); },
      ">=": function (a, b) { return +(a >= b); }, "==": function (a, b) { return +(a === b); },
      "!=": function (a, b) { return +(a !== b); }, "&&": function (a, b) { return +(!!a && !!b); },
      "||": function (a, b) { return +(!!a || !!b); },
    };
    function primary() {
      var tok = t[i++], e;
      if (tok === "(") { e = choice(); if (t[i++] !== ")") throw new Error("plural"); return e; }
      if (tok === "!") { e = primary(); return function (n) { return +!e(n); }; }
      if (tok === "n") return function (n) { return n; };
      if (/^\d+$/.test(tok || "")) { var v = Number(tok); return function () { return v; }; }
      throw new Error("plural");
    }
    function level(ops, operand) {
      return function () {
        var left = operand();
        while (ops.indexOf(t[i]) >= 0) {
          left = (function (op, l, r) { return function (n) { return op(l(n), r(n)); }; })(OPS[t[i++]], left, operand());
        }
        return left;
      };
    }
    var or = level(["||"], level(["&&"], level(["==", "!="], level(["<", ">", "<=", ">="], level(["%"], primary)))));
    function choice() {
      var test = or();
      if (t[i] !== "?") return test;
      i++;
      var yes = choice();
      if (t[i++] !== ":") throw new Error("plural");
      var no = choice();
      return function (n) { return test(n) ? yes(n) : no(n); };
    }
    var rule = choice();
    if (i !== t.length) throw new Error("plural");
    return rule;
  }

  // --- configuration: data attributes, then the server's answer ------------------------------
  var cfg = {
    locale: data.locale || "",
    position: data.position === "left" || data.position === "right" ? data.position : "",
    color: /^#(?:[0-9a-fA-F]{3}){1,2}$/.test(data.color || "") ? data.color : "#2457c5",
    greeting: data.greeting || "",
    name: data.assistantName || "",
  };
  // Languages (with their direction) and tag aliases come from the server's one table
  // (autoglm_site.languages), so a browser tag maps as Accept-Language does there.
  var site = { languages: [{ code: "en", name: "English", bidi: false }], aliases: {},
    default_language: "en", max_message_chars: 4000, assistant_name: "Assistant" };
  // Signed visitor identity, sent in every hello: data-visitor-token (a short-lived JWT minted by
  // the host site) or identify({token}); the legacy data-visitor-id + data-visitor-signature
  // (HMAC) only where the server still accepts it (docs/widget.md).
  function identityOf(who) {
    if (!who) return null;
    if (who.token) return { token: String(who.token) };
    return who.id ? { id: String(who.id), name: who.name || "", email: who.email || "", signature: who.signature || "" } : null;
  }
  var identity = identityOf(data.visitorToken ? { token: data.visitorToken } :
    data.visitorId ? { id: data.visitorId, signature: data.visitorSignature } : null);

  // Mirrors autoglm_site.languages.language_supported: the tag's prefixes, then its language
  // with each later subtag (zh-yue-hk -> zh-hk), then the language alone, each through the
  // aliases; then the first supported regional variant of the language.
  function supported(tag) {
    if (!tag) return null;
    var t = String(tag).trim().replace(/_/g, "-").toLowerCase();
    if (!t || t.length > 35) return null;
    var codes = site.languages.map(function (l) { return l.code; });
    var aliases = site.aliases || {};
    var parts = t.split("-"), tries = [], i, n;
    for (n = parts.length; n > 1; n--) tries.push(parts.slice(0, n).join("-"));
    for (i = 1; i < parts.length; i++) tries.push(parts[0] + "-" + parts[i]);
    tries.push(parts[0]);
    for (i = 0; i < tries.length; i++) {
      var alias = Object.prototype.hasOwnProperty.call(aliases, tries[i]) ? aliases[tries[i]] : null;
      if (alias && codes.indexOf(alias) >= 0) return alias;
      if (codes.indexOf(tries[i]) >= 0) return tries[i];
    }
    for (i = 0; i < codes.length; i++) if (codes[i].indexOf(parts[0] + "-") === 0) return codes[i];
    return null;
  }
  function bidi(code) {
    return site.languages.some(function (l) { return l.code === code && l.bidi; });
  }
  function stored(key) { try { return localStorage.getItem(key); } catch (e) { return null; } }
  // Locale order: data attribute, the visitor's choice, navigator.languages, the site default.
  function pickLocale() {
    var tags = [cfg.locale, stored(choiceKey)].concat(navigator.languages || [navigator.language]);
    for (var i = 0; i < tags.length; i++) { var s = supported(tags[i]); if (s) return s; }
    return site.default_language;
  }
  function intlTag(code) {
    return code.replace(/^zh-hans$/, "zh-Hans").replace(/^zh-hant$/, "zh-Hant").replace(/^pt-br$/, "pt-BR");
  }

  // --- state, kept in localStorage so a reload or a second tab carries on ---------------------
  function load() { try { return JSON.parse(stored(storeKey)) || {}; } catch (e) { return {}; } }
  var state = load();
  state.messages = state.messages || []; // [{id, role, text, status, client_id, reply_to, created_at, citations}]
  state.outbox = state.outbox || []; // [{client_id, text, state: queued|sending|failed, error}]
  state.outbox.forEach(function (o) { if (o.state === "sending") o.state = "queued"; });
  var saveTimer = null;
  function saveNow() {
    clearTimeout(saveTimer); saveTimer = null;
    state.messages = state.messages.slice(-200);
    try { localStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) { /* quota or privacy mode */ }
  }
  function save() { if (!saveTimer) saveTimer = setTimeout(saveNow, 300); }

  var listeners = {};
  function emit(name, detail) {
    (listeners[name] || []).slice().forEach(function (f) { try { f(detail); } catch (e) { setTimeout(function () { throw e; }); } });
  }

  // --- DOM ---------------------------------------------------------------------------------
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  var SVG = {
    chat: "M4 4h16v12H8l-4 4z",
    close: "M6 6l12 12M18 6L6 18",
    plus: "M12 5v14M5 12h14",
    up: "M7 11v9H4v-9zm3 9h7.5a2 2 0 0 0 2-1.6l1.2-6A2 2 0 0 0 18.7 10H14l.7-4.2A1.8 1.8 0 0 0 11.5 5L10 11z",
    down: "M7 13V4H4v9zm3-9h7.5a2 2 0 0 1 2 1.6l1.2 6A2 2 0 0 1 18.7 14H14l.7 4.2a1.8 1.8 0 0 1-3.2.8L10 13z",
    copy: "M8 8h11v12H8zM5 16V4h11",
  };
  function icon(name) {
    var s = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    s.setAttribute("viewBox", "0 0 24 24"); s.setAttribute("aria-hidden", "true"); s.setAttribute("focusable", "false");
    var p = document.createElementNS("http://www.w3.org/2000/svg", "path");
    p.setAttribute("d", SVG[name]);
    s.appendChild(p);
    return s;
  }
  function button(cls, iconName, label) {
    var b = el("button", cls);
    b.type = "button";
    if (iconName) b.appendChild(icon(iconName));
    if (label !== null) b.appendChild(el("span", iconName ? "vh" : "", label));
    return b;
  }

  var CSS = [
    ":host{all:initial}",
    // `all:initial` again on .w: the page's own rules (letter-spacing, text-transform, ...) win over
    // :host for normal declarations and would be inherited otherwise.
    ".w{all:initial;display:block;--fg:#1b1f24;--muted:#4b5563;--line:#c9d0d8;--link:#1a4fb8;font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans','Noto Sans Arabic','Noto Sans Hebrew','Noto Sans CJK SC','Noto Sans CJK JP','Noto Sans CJK KR','PingFang SC','Hiragino Sans','Microsoft YaHei','Malgun Gothic',Tahoma,'DejaVu Sans',Arial,sans-serif;color:var(--fg);text-align:start}",
    ".w:lang(ja){font-family:'Noto Sans CJK JP','Hiragino Sans','Yu Gothic',system-ui,sans-serif}",
    ".w:lang(ko){font-family:'Noto Sans CJK KR','Malgun Gothic',system-ui,sans-serif}",
    ".w:lang(zh-hant){font-family:'Noto Sans CJK TC','PingFang TC','Microsoft JhengHei',system-ui,sans-serif}",
    "*{box-sizing:border-box}",
    "button,select,textarea{font:inherit;color:inherit}",
    "button{cursor:pointer}",
    ":focus-visible{outline:2px solid #fff;box-shadow:0 0 0 4px #111;outline-offset:0}",
    "svg{width:20px;height:20px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round;vertical-align:middle}",
    ".vh{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    ".launch{position:fixed;bottom:16px;inset-inline-end:16px;z-index:2147483000;display:flex;align-items:center;gap:8px;background:var(--c);color:var(--cf);border:0;border-radius:999px;padding:12px 18px;box-shadow:0 4px 14px #0003;font-weight:600}",
    ".launch .vh{position:static;width:auto;height:auto;clip:auto}",
    ".panel{position:fixed;bottom:84px;inset-inline-end:16px;z-index:2147483001;display:flex;flex-direction:column;width:min(400px,calc(100vw - 32px));height:min(620px,calc(100vh - 108px));background:#fff;border-radius:14px;box-shadow:0 10px 36px #0005;overflow:hidden}",
    ".panel[hidden]{display:none}",
    ".pos-left .launch,.pos-left .panel{left:16px;right:auto}.pos-right .launch,.pos-right .panel{right:16px;left:auto}",
    "@media (max-width:480px),(max-height:520px){.w .panel{inset:0!important;width:auto;height:auto;border-radius:0}.open .launch{display:none}}",
    "header{background:var(--c);color:var(--cf);padding:8px 10px;display:flex;align-items:center;gap:6px}",
    "h2{flex:1;margin:0;padding-inline-start:4px;font-size:16px;font-weight:700;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}",
    "header button{background:none;border:0;color:inherit;padding:6px;border-radius:6px;min-width:36px;min-height:36px}",
    "header select{max-width:9.5em;background:#fff;color:var(--fg);border:0;border-radius:6px;padding:4px;min-height:32px}",
    ".conn{font-size:13px;padding:0 12px;color:var(--muted);background:#f4f6f8}.conn:empty{display:none}.conn.bad{background:#fff4e5;color:#6b3d00}",
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:10px;overscroll-behavior:contain}",
    ".m{max-width:88%;display:flex;flex-direction:column;gap:2px;align-self:flex-start}.m.user{align-self:flex-end}",
    ".b{padding:8px 12px;border-radius:14px;background:#eef1f5;overflow-wrap:anywhere;word-break:break-word;min-width:0}",
    ".user .b{background:var(--c);color:var(--cf);white-space:pre-wrap;border-end-end-radius:4px}.assistant .b{border-end-start-radius:4px}",
    ".b>:first-child{margin-block-start:0}.b>:last-child{margin-block-end:0}",
    ".b p,.b ul,.b ol,.b pre,.b blockquote,.b .tw{margin-block:0 8px}.b ul,.b ol{padding-inline-start:22px}",
    ".b a{color:var(--link);text-decoration:underline}.b .h{font-weight:700}",
    ".b code{font-family:ui-monospace,Menlo,Consolas,'DejaVu Sans Mono',monospace;font-size:.9em;background:#0000000d;padding:0 3px;border-radius:4px}",
    ".b pre{background:#1f2329;color:#f3f4f6;padding:8px 10px;border-radius:8px;white-space:pre-wrap;overflow-wrap:anywhere}.b pre code{background:none;padding:0}",
    ".b blockquote{border-inline-start:3px solid var(--line);padding-inline-start:8px;margin-inline:0;color:var(--muted)}",
    ".b .tw{overflow-x:auto}.b table{border-collapse:collapse;font-size:14px}.b th,.b td{border:1px solid var(--line);padding:2px 6px;text-align:start}",
    ".b hr{border:0;border-block-start:1px solid var(--line)}",
    ".src{font-size:13px;padding-inline:4px}.src ol{margin:2px 0;padding-inline-start:20px}.src a{color:var(--link)}",
    ".meta{display:flex;flex-wrap:wrap;align-items:center;gap:4px 8px;font-size:12px;color:var(--muted);padding-inline:4px}",
    ".user .meta{justify-content:flex-end}",
    ".meta button{background:none;border:1px solid transparent;border-radius:6px;padding:2px 4px;color:var(--muted);min-width:28px;min-height:28px}",
    ".meta button:hover{border-color:var(--line)}.meta button[aria-pressed=true]{color:var(--link);border-color:var(--link)}",
    ".meta svg{width:16px;height:16px}.meta .retry{color:var(--link);text-decoration:underline;border:0}.failed{color:#a4161a}",
    ".fb{display:flex;gap:6px;padding-inline:4px}.fb input{flex:1;min-width:0;border:1px solid var(--line);border-radius:6px;padding:4px 6px;font:inherit;font-size:13px}",
    ".fb button{border:1px solid var(--line);background:#fff;border-radius:6px;font-size:13px}",
    ".dots{display:inline-flex;gap:4px;padding:4px 0}.dots i{width:7px;height:7px;border-radius:50%;background:#59636e;animation:d 1.2s infinite}",
    ".dots i:nth-child(2){animation-delay:.2s}.dots i:nth-child(3){animation-delay:.4s}@keyframes d{30%{opacity:.25}}",
    "@media (prefers-reduced-motion:reduce){.dots i{animation:none}}",
    "form.c{display:flex;flex-wrap:wrap;align-items:flex-end;gap:6px;padding:8px;border-block-start:1px solid var(--line)}",
    "textarea{flex:1;min-width:0;resize:none;font-size:16px;line-height:1.4;padding:8px 10px;border:1px solid #8a94a0;border-radius:10px;max-height:140px}",
    "form.c button{background:var(--c);color:var(--cf);border:0;border-radius:10px;padding:0 14px;min-height:40px;font-weight:600}",
    "form.c button.stop{background:#fff;color:var(--fg);border:1px solid #8a94a0}",
    ".count{flex-basis:100%;font-size:12px;color:var(--muted);text-align:end}.count:empty{display:none}.count.over{color:#a4161a;font-weight:600}",
    // The human side: agents' messages, event lines, the handoff control, e-mail, CSAT.
    ".x{display:contents}header{flex-wrap:wrap;row-gap:0}",
    ".who{order:9;flex-basis:100%;font-size:13px;padding-inline-start:4px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}.who:empty{display:none}",
    ".wait{font-size:13px;padding:6px 12px;background:#eef3fc;color:#1d3b78;border-block-end:1px solid var(--line)}",
    ".m.agent .b{background:#fff;border:1px solid var(--line);border-inline-start:3px solid var(--c);border-end-start-radius:4px}",
    ".an{font-size:12px;font-weight:600;color:var(--muted);padding-inline:4px}",
    ".m.system{align-self:center;max-width:92%;text-align:center;font-size:12px;color:var(--muted);padding-inline:8px}",
    ".tr{font-style:italic}.meta .tog{color:var(--link);text-decoration:underline;border:0;min-width:0}",
    ".typ{font-size:12px;color:var(--muted);font-style:italic;padding-inline:4px}.typ:empty{display:none}",
    ".tools{display:flex;flex-wrap:wrap;gap:4px 12px;padding:4px 10px 0;font-size:13px}.tools:empty{display:none}",
    ".tools>button{background:none;border:0;padding:4px 2px;color:var(--link);text-decoration:underline;min-height:28px}",
    ".card{border:1px solid var(--line);border-radius:10px;padding:8px 10px;display:flex;flex-direction:column;gap:6px;font-size:14px;background:#fafbfc}",
    ".card form{display:flex;flex-wrap:wrap;gap:6px}.card input{flex:1;min-width:8em;border:1px solid #8a94a0;border-radius:6px;padding:4px 8px;font:inherit}",
    ".card button{border:1px solid #8a94a0;background:#fff;border-radius:6px;padding:4px 10px;min-height:32px}",
    ".card button[type=submit]{background:var(--c);color:var(--cf);border-color:var(--c)}",
    ".stars{display:flex;gap:6px}.stars button{min-width:40px;font-weight:600}.stars button[aria-pressed=true]{background:var(--c);color:var(--cf);border-color:var(--c)}",
    ".tools .card,.tools>.ok{flex-basis:100%}.card .err{color:#a4161a;font-size:13px;flex-basis:100%}.card .err:empty{display:none}.card .ok{color:#1e6b34}",
  ].join("\n");

  var hostEl = el("autoglm-chat"); // not a <div>: the page's `div {...}` rules do not reach it
  hostEl.setAttribute("data-autoglm", "");
  var root = hostEl.attachShadow({ mode: "open" });
  var style = el("style"); style.textContent = CSS; root.appendChild(style);
  var w = el("div", "w"); w.setAttribute("part", "widget"); root.appendChild(w);
  var panel = el("section", "panel"); panel.id = "p"; panel.hidden = true;
  panel.setAttribute("role", "dialog"); panel.setAttribute("aria-labelledby", "t");
  var header = el("header");
  var title = el("h2"); title.id = "t";
  var who = el("div", "who"); // "You are chatting with Anna": a second line under the title
  var langSel = el("select", "lang");
  var newBtn = button("new", "plus", "");
  var closeBtn = button("close", "close", "");
  header.append(title, langSel, newBtn, closeBtn, who);
  var conn = el("div", "conn"); conn.setAttribute("role", "status");
  var waitBar = el("div", "wait"); waitBar.setAttribute("role", "status"); waitBar.hidden = true;
  var log = el("div", "log"); log.setAttribute("role", "log"); log.setAttribute("aria-live", "off");
  log.setAttribute("aria-labelledby", "t"); log.tabIndex = 0;
  var live = el("div", "vh"); live.setAttribute("aria-live", "polite");
  var form = el("form", "c");
  var input = el("textarea"); input.rows = 1; input.setAttribute("dir", "auto");
  input.setAttribute("aria-describedby", "cnt"); input.setAttribute("enterkeyhint", "send");
  var sendBtn = el("button", "send"); sendBtn.type = "submit";
  var stopBtn = el("button", "stop"); stopBtn.type = "button"; stopBtn.hidden = true;
  var count = el("div", "count"); count.id = "cnt"; count.setAttribute("aria-live", "polite");
  form.append(input, sendBtn, stopBtn, count);
  // The human side's cards and the agent's typing line stay the log's last children.
  var extra = el("div", "x"), typingLine = el("div", "typ");
  typingLine.setAttribute("aria-live", "polite"); typingLine.setAttribute("dir", "auto");
  log.append(extra, typingLine);
  var tools = el("div", "tools");
  panel.append(header, conn, waitBar, log, live, tools, form);
  var launch = button("launch", "chat", "");
  launch.setAttribute("aria-expanded", "false"); launch.setAttribute("aria-controls", "p");
  w.append(panel, launch);
  if (cfg.position) w.classList.add("pos-" + cfg.position);

  function brand(hex) {
    var h = hex.slice(1);
    if (h.length === 3) h = h.replace(/./g, "$&$&");
    var lum = [0, 2, 4].map(function (i) {
      var c = parseInt(h.substr(i, 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var L = 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2];
    // White text when it reaches AA (4.5:1) on the brand colour, else near-black.
    w.style.setProperty("--c", "#" + h);
    w.style.setProperty("--cf", 1.05 / (L + 0.05) >= 4.5 ? "#fff" : "#111");
  }
  brand(cfg.color);

  var language = "en", maxChars = 4000;
  function name() { return cfg.name || site.assistant_name; }
  function applyStrings() {
    title.textContent = name();
    launch.querySelector("span").textContent = gettext("Chat with us");
    langSel.setAttribute("aria-label", gettext("Language"));
    newBtn.setAttribute("aria-label", gettext("New conversation")); newBtn.title = gettext("New conversation");
    closeBtn.setAttribute("aria-label", gettext("Close chat")); closeBtn.title = gettext("Close chat");
    input.setAttribute("aria-label", gettext("Message"));
    input.placeholder = gettext("Type your message…");
    sendBtn.textContent = gettext("Send");
    stopBtn.textContent = gettext("Stop");
    stopBtn.setAttribute("aria-label", gettext("Stop the reply"));
    langSel.textContent = "";
    site.languages.forEach(function (l) {
      var o = el("option", "", l.name); o.value = l.code; o.lang = l.code;
      o.selected = l.code === language; langSel.appendChild(o);
    });
    updateCount();
  }
  function setDir(lang) {
    w.setAttribute("dir", bidi(lang) ? "rtl" : "ltr");
    w.setAttribute("lang", lang);
  }

  // --- safe Markdown: DOM nodes only; links limited to http(s) and mailto; no images load ---
  function safeUrl(raw) {
    try {
      var u = new URL(String(raw).trim(), server + "/");
      return /^(https?|mailto):$/.test(u.protocol) ? u.href : null;
    } catch (e) { return null; }
  }
  function link(href, parent) {
    var a = el("a"); a.href = href; a.target = "_blank"; a.rel = "noopener noreferrer nofollow ugc";
    parent.appendChild(a);
    return a;
  }
  // 1 code, 3 image mark, 4 label, 5 url, 6 strong, 7 del, 8 em, 9 bare URL, 10 line break.
  var INLINE = /(`+)([^`][\s\S]{0,2000}?)\1(?!`)|(!?)\[([^\]\n]{0,500})\]\(\s*<?([^\s<>()]{1,2000}(?:\([^\s<>()]{0,200}\)[^\s<>()]{0,200})?)>?(?:\s+"[^"\n]{0,200}")?\s*\)|\*\*(?=\S)([\s\S]{0,2000}?\S)\*\*|~~(?=\S)([\s\S]{0,2000}?\S)~~|\*(?=[^\s*])([^*\n]{0,2000}?[^\s*])\*(?!\*)|(https?:\/\/[^\s<>"'`]*[^\s<>"'`.,;:!?)\]])|(\n)/g;
  function inline(text, parent, depth, inLink) {
    var re = new RegExp(INLINE.source, "g"), last = 0, m;
    function text2(s) { if (s) parent.appendChild(document.createTextNode(s)); }
    if (depth > 6) return text2(text);
    while ((m = re.exec(text))) {
      text2(text.slice(last, m.index));
      last = re.lastIndex;
      if (m[2] !== undefined) {
        parent.appendChild(el("code", "", m[2].replace(/^ (.*) $/, "$1")));
      } else if (m[4] !== undefined) {
        var href = inLink ? null : safeUrl(m[5]);
        if (!href) text2(m[4] || m[5]);
        else if (m[3]) link(href, parent).textContent = m[4] || href; // an image becomes a link: nothing loads
        else inline(m[4] || href, link(href, parent), depth + 1, true);
      } else if (m[6] !== undefined) inline(m[6], parent.appendChild(el("strong")), depth + 1, inLink);
      else if (m[7] !== undefined) inline(m[7], parent.appendChild(el("del")), depth + 1, inLink);
      else if (m[8] !== undefined) inline(m[8], parent.appendChild(el("em")), depth + 1, inLink);
      else if (m[9] !== undefined) {
        var u = inLink ? null : safeUrl(m[9]);
        if (u) link(u, parent).textContent = m[9]; else text2(m[9]);
      } else if (m[10]) parent.appendChild(el("br"));
    }
    text2(text.slice(last));
  }
  var LIST = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;
  var TABLE_RULE = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;
  function cells(line) { return line.trim().replace(/^\||\|$/g, "").split("|").map(function (c) { return c.trim(); }); }
  function markdown(src, parent, depth) {
    var lines = src.replace(/\r\n?/g, "\n").split("\n"), i = 0, para = [], m;
    function flush() { if (para.length) { inline(para.join("\n"), parent.appendChild(el("p")), depth); para = []; } }
    while (i < lines.length) {
      var line = lines[i];
      if ((m = /^\s*(`{3,}|~{3,})/.exec(line))) {
        flush();
        var fence = m[1], buf = [];
        for (i++; i < lines.length && lines[i].trim().indexOf(fence) !== 0; i++) buf.push(lines[i]);
        i++;
        parent.appendChild(el("pre")).appendChild(el("code", "", buf.join("\n")));
      } else if (!line.trim()) { flush(); i++; }
      else if ((m = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line))) {
        flush();
        var h = parent.appendChild(el("p", "h"));
        h.setAttribute("role", "heading"); h.setAttribute("aria-level", String(Math.min(6, m[1].length + 2)));
        inline(m[2], h, depth); i++;
      } else if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) { flush(); parent.appendChild(el("hr")); i++; }
      else if (/^\s{0,3}>/.test(line)) {
        flush();
        var quote = [];
        while (i < lines.length && /^\s{0,3}>/.test(lines[i])) quote.push(lines[i++].replace(/^\s{0,3}>\s?/, ""));
        var bq = parent.appendChild(el("blockquote"));
        if (depth < 4) markdown(quote.join("\n"), bq, depth + 1); else bq.textContent = quote.join("\n");
      } else if ((m = LIST.exec(line))) {
        flush();
        var ordered = /\d/.test(m[1]), list = parent.appendChild(el(ordered ? "ol" : "ul")), li = null;
        if (ordered && parseInt(m[1], 10) !== 1) list.start = parseInt(m[1], 10);
        while (i < lines.length) {
          var mm = LIST.exec(lines[i]);
          if (mm && /\d/.test(mm[1]) === ordered) { li = list.appendChild(el("li")); inline(mm[2], li, depth); }
          else if (li && /^\s+\S/.test(lines[i])) { li.appendChild(el("br")); inline(lines[i].trim(), li, depth); }
          else break;
          i++;
        }
      } else if (line.indexOf("|") >= 0 && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1])) {
        flush();
        var table = parent.appendChild(el("div", "tw")).appendChild(el("table"));
        var tr = table.appendChild(el("thead")).appendChild(el("tr"));
        cells(line).forEach(function (c) { inline(c, tr.appendChild(el("th")), depth); });
        var tbody = table.appendChild(el("tbody"));
        for (i += 2; i < lines.length && lines[i].indexOf("|") >= 0 && lines[i].trim(); i++) {
          var row = tbody.appendChild(el("tr"));
          cells(lines[i]).forEach(function (c) { inline(c, row.appendChild(el("td")), depth); });
        }
      } else { para.push(line); i++; }
    }
    flush();
  }

  // --- messages ----------------------------------------------------------------------------
  function byId(id) { for (var i = 0; i < state.messages.length; i++) if (state.messages[i].id === id) return state.messages[i]; return null; }
  function upsert(msg, replace) {
    var old = byId(msg.id);
    if (old) {
      var keep = { feedback: old.feedback, citations: old.citations };
      Object.assign(old, replace ? keep : {}, msg);
    } else state.messages.push(msg);
    state.messages.sort(function (a, b) { return a.id - b.id; });
    if (msg.client_id) state.outbox = state.outbox.filter(function (o) { return o.client_id !== msg.client_id; });
  }
  function active(m) { return m.role === "assistant" && (m.status === "pending" || m.status === "streaming"); }
  // An interrupted reply that was regenerated is shown once, as its newer reply.
  function superseded(m) {
    if (m.role !== "assistant" || m.status !== "interrupted") return false;
    return state.messages.some(function (o) { return o.role === "assistant" && o.id > m.id && o.reply_to === m.reply_to; });
  }
  function lastSeen() {
    var seen = null;
    for (var i = 0; i < state.messages.length; i++) {
      if (active(state.messages[i])) break;
      seen = state.messages[i].id;
    }
    return seen;
  }
  function fmtTime(iso) {
    var d = new Date(iso);
    if (!iso || isNaN(d)) return "";
    var today = d.toDateString() === new Date().toDateString();
    try {
      return new Intl.DateTimeFormat(intlTag(language), today ? { hour: "numeric", minute: "2-digit" } : { dateStyle: "medium", timeStyle: "short" }).format(d);
    } catch (e) { return d.toLocaleString(); }
  }
  var STATUS = {
    queued: function () { return gettext("Waiting for connection…"); },
    sending: function () { return gettext("Sending…"); },
    failed: function () { return gettext("Not sent."); },
    interrupted: function () { return gettext("Interrupted"); },
    cancelled: function () { return gettext("Stopped"); },
  };
  var ui = {}; // per message key: {copied, fbOpen, fbDone}
  function baseLang(code) { return String(code || "").split("-")[0]; }
  // An agent's message in the visitor's language: "done" (show the translation), "missing"
  // (pending, failed, or none while it is in another language: the original, marked), or null.
  function translated(m) {
    var t = m.translation;
    if (t && t.status === "done" && t.text) return "done";
    if (t) return "missing";
    var conv = state.conv_language || language;
    return m.language && baseLang(m.language) !== baseLang(conv) ? "missing" : null;
  }
  function build(m) {
    var key = m.key, u = ui[key] || {};
    if (m.role === "system") {
      // An event ("Anna joined"), already in the conversation's language.
      var line = el("div", "m system", m.text);
      line.setAttribute("dir", "auto");
      if (m.language) line.lang = m.language;
      if (m.created_at) line.title = fmtTime(m.created_at);
      return line;
    }
    var agent = m.role === "agent", tr = agent ? translated(m) : null;
    var box = el("div", "m " + (m.role === "user" ? "user" : agent ? "agent" : "assistant"));
    if (agent) box.appendChild(el("div", "an", m.author_name || gettext("Support team"))).setAttribute("dir", "auto");
    var body = box.appendChild(el("div", "b"));
    body.setAttribute("dir", "auto");
    if (agent) {
      var showTr = tr === "done" && !u.orig;
      body.lang = showTr ? m.translation.language : m.language || "";
      if (!body.lang) body.removeAttribute("lang");
      markdown(showTr ? m.translation.text : m.text, body, 0);
    } else if (m.role === "user") body.textContent = m.text;
    else if (!m.text && active(m)) {
      var dots = body.appendChild(el("span", "dots"));
      dots.append(el("i"), el("i"), el("i"), el("span", "vh", interpolate(gettext("%(assistant)s is typing…"), { assistant: name() })));
    } else if (m.text) markdown(m.text, body, 0);
    else body.hidden = true;
    if (m.citations && m.citations.length) {
      var src = box.appendChild(el("div", "src"));
      src.appendChild(el("span", "", gettext("Sources")));
      var ol = src.appendChild(el("ol"));
      m.citations.slice(0, 10).forEach(function (c) {
        var li = ol.appendChild(el("li")), href = c && safeUrl(c.url);
        var label = String((c && (c.title || c.url)) || "");
        if (href) link(href, li).textContent = label; else li.textContent = label;
        li.setAttribute("dir", "auto");
      });
    }
    var meta = box.appendChild(el("div", "meta"));
    if (m.created_at) {
      var t = meta.appendChild(el("time", "", fmtTime(m.created_at)));
      t.dateTime = m.created_at;
    }
    var label = m.status === "failed" && m.role === "assistant" ? (m.text ? gettext("Interrupted") : gettext("No reply")) : STATUS[m.status] && STATUS[m.status]();
    if (label) meta.appendChild(el("span", m.status === "failed" ? "failed" : "", label));
    if (m.status === "failed" && m.error) meta.appendChild(el("span", "failed", m.error));
    if (m.outbox && m.status === "failed") {
      var retry = meta.appendChild(button("retry", null, gettext("Retry")));
      retry.addEventListener("click", function () { resend(m.client_id); });
    }
    if (m.role === "user" && !m.outbox) meta.appendChild(el("span", "", gettext("Sent")));
    if (tr === "done") {
      meta.appendChild(el("span", "tr", gettext("Translated")));
      var tog = meta.appendChild(button("tog", null, u.orig ? gettext("Show translation") : gettext("Show original")));
      tog.setAttribute("aria-pressed", String(!!u.orig));
      tog.addEventListener("click", function () { ui[key] = Object.assign({}, ui[key], { orig: !u.orig }); render(); });
    } else if (tr === "missing") meta.appendChild(el("span", "tr", gettext("Not translated")));
    if (m.role === "assistant" && m.id && m.text && !active(m)) {
      var copy = meta.appendChild(button("copy", "copy", u.copied ? gettext("Copied") : gettext("Copy")));
      copy.title = u.copied ? gettext("Copied") : gettext("Copy");
      copy.addEventListener("click", function () { copyText(m); });
      [["up", gettext("Helpful")], ["down", gettext("Not helpful")]].forEach(function (r) {
        var b = meta.appendChild(button("rate", r[0], r[1]));
        b.title = r[1];
        b.setAttribute("aria-pressed", String(m.feedback === r[0]));
        b.addEventListener("click", function () { rate(m, r[0]); });
      });
      if (u.fbDone) meta.appendChild(el("span", "", gettext("Thanks for your feedback!")));
      if (u.fbOpen) {
        var fb = box.appendChild(el("form", "fb"));
        var comment = fb.appendChild(el("input"));
        comment.setAttribute("aria-label", gettext("Tell us more (optional)"));
        comment.placeholder = gettext("Tell us more (optional)");
        comment.maxLength = 2000; comment.setAttribute("dir", "auto");
        var sendFb = fb.appendChild(el("button", "", gettext("Send feedback")));
        sendFb.type = "submit";
        fb.addEventListener("submit", function (e) {
          e.preventDefault();
          send({ type: "feedback", message_id: m.id, rating: m.feedback, comment: comment.value.trim() });
          ui[key] = { fbDone: true }; render();
          focusIn(key, ".rate[aria-pressed=true]");
        });
      }
    }
    return box;
  }
  function items() {
    var list = [];
    var greet = cfg.greeting || interpolate(gettext("Hello! I am %(assistant)s. How can I help you today?"), { assistant: name() });
    list.push({ key: "greeting", role: "assistant", text: greet, status: "complete" });
    state.messages.forEach(function (m) {
      if (!superseded(m)) list.push(Object.assign({ key: "m" + m.id }, m));
    });
    state.outbox.forEach(function (o) {
      list.push({ key: "o" + o.client_id, role: "user", text: o.text, status: o.state, client_id: o.client_id, error: o.error, outbox: true });
    });
    return list;
  }
  var nodes = {}; // key -> {el, sig}
  var renderQueued = false;
  function render() {
    renderQueued = false;
    var atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    var list = items(), seen = {};
    list.forEach(function (m, i) {
      var sig = JSON.stringify([m.text, m.status, m.citations, m.feedback, m.error, ui[m.key], language, m.created_at,
        m.translation, m.author_name, m.language, state.conv_language]);
      var n = nodes[m.key];
      if (!n || n.sig !== sig) {
        var fresh = build(m);
        if (n) {
          // Keep keyboard focus on the same control when a message is rebuilt.
          var FOCUSABLE = "button,input,a", at = -1;
          if (root.activeElement && n.el.contains(root.activeElement)) at = [].indexOf.call(n.el.querySelectorAll(FOCUSABLE), root.activeElement);
          log.replaceChild(fresh, n.el);
          if (at >= 0) { var again = fresh.querySelectorAll(FOCUSABLE)[at] || input; again.focus(); }
        }
        n = nodes[m.key] = { el: fresh, sig: sig };
      }
      seen[m.key] = true;
      if (log.children[i] !== n.el) log.insertBefore(n.el, log.children[i] || null);
    });
    Object.keys(nodes).forEach(function (k) { if (!seen[k]) { nodes[k].el.remove(); delete nodes[k]; } });
    renderHuman();
    if (atEnd) log.scrollTop = log.scrollHeight;
    var streaming = state.messages.some(active);
    if (!streaming && root.activeElement === stopBtn) input.focus();
    stopBtn.hidden = !streaming;
    sendBtn.hidden = streaming;
    scheduleStall();
  }
  function schedule() {
    if (renderQueued) return;
    renderQueued = true;
    (window.requestAnimationFrame || setTimeout)(render);
  }
  function focusIn(key, selector) {
    var n = nodes[key];
    var target = n && n.el.querySelector(selector);
    if (target) target.focus();
  }
  function announce(text) {
    live.textContent = "";
    setTimeout(function () { live.textContent = text.length > 600 ? text.slice(0, 600) + "…" : text; }, 50);
  }
  function copyText(m) {
    var done = function () {
      ui["m" + m.id] = Object.assign({}, ui["m" + m.id], { copied: true }); render();
      announce(gettext("Copied"));
      setTimeout(function () { if (ui["m" + m.id]) { ui["m" + m.id].copied = false; render(); } }, 2000);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(m.text).then(done, function () {});
  }
  function rate(m, rating) {
    m.feedback = rating;
    send({ type: "feedback", message_id: m.id, rating: rating, comment: "" });
    ui["m" + m.id] = { fbOpen: true };
    save(); render();
    focusIn("m" + m.id, ".fb input");
  }

  // --- the human side: state.human is the server's `state` (null from a server without it) ---
  // hs: this page's part of it (forms being filled, what was just sent, the agent typing).
  var hs = { asked: false, pending: "", email: "", emailErr: "", rating: 0, comment: "", csatErr: "",
    thanks: false, trOpen: false, trAddress: "", trErr: "", trSent: "", typing: "", lastTyping: 0 };
  var typingTimer = null, trSentTimer = null;
  function human() { return state.human || null; }
  function setHuman(next) {
    var prev = human();
    if (!prev || prev.mode !== next.mode) hs.asked = false;
    state.human = next;
  }
  function showTyping(who) {
    hs.typing = who || (human() && human().agent) || "";
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { hs.typing = ""; renderHuman(); }, 4000);
  }
  function visitorTyping() {
    var h = human();
    if (!h || h.mode === "bot" || !state.conversation_id || !input.value.trim()) return;
    if (Date.now() - hs.lastTyping >= 2000 && send({ type: "typing" })) hs.lastTyping = Date.now();
  }
  var cards = {}; // name -> {el, sig}
  // Rebuild a card when what it shows changed, keeping keyboard focus on the same control.
  function slot(parent, name, sig, make, away) {
    var c = cards[name];
    if (sig === null) {
      if (!c) return;
      var had = c.el.contains(root.activeElement);
      c.el.remove(); delete cards[name];
      if (had) (away || input).focus();
      return;
    }
    if (c && c.sig === sig) return;
    var fresh = make(), FOCUSABLE = "button,input", at = -1;
    if (c) {
      if (root.activeElement && c.el.contains(root.activeElement)) at = [].indexOf.call(c.el.querySelectorAll(FOCUSABLE), root.activeElement);
      parent.replaceChild(fresh, c.el);
    } else parent.appendChild(fresh);
    cards[name] = { el: fresh, sig: sig };
    if (at >= 0) (fresh.querySelectorAll(FOCUSABLE)[at] || input).focus();
  }
  function field(form, id, value, err, onInput) {
    var i = form.appendChild(el("input")); i.id = id; i.value = value; i.setAttribute("dir", "auto");
    i.addEventListener("input", function () { onInput(i.value); });
    var e = form.appendChild(el("div", "err", err)); e.id = id + "e";
    i.setAttribute("aria-describedby", id + "e");
    if (err) i.setAttribute("aria-invalid", "true");
    return i;
  }
  function submitBtn(form, text) { var b = form.appendChild(el("button", "", text)); b.type = "submit"; return b; }
  function emailCard() {
    var c = el("div", "card");
    var f = el("form"); f.noValidate = true;
    var lab = c.appendChild(el("label", "", gettext("Leave your e-mail address"))); lab.htmlFor = "em";
    c.appendChild(f);
    var i = field(f, "em", hs.email, hs.emailErr, function (v) { hs.email = v; });
    i.type = "email"; i.autocomplete = "email"; i.placeholder = "name@example.com";
    submitBtn(f, gettext("Send"));
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var a = i.value.trim();
      hs.emailErr = a ? "" : gettext("Enter your e-mail address.");
      if (a && send({ type: "email", address: a })) hs.pending = "email";
      renderHuman();
    });
    return c;
  }
  function csatCard() {
    var c = el("div", "card");
    if (hs.thanks) { c.setAttribute("role", "status"); c.appendChild(el("div", "ok", gettext("Thank you for your feedback."))); return c; }
    c.setAttribute("role", "group"); c.setAttribute("aria-labelledby", "cq");
    c.appendChild(el("div", "", gettext("How would you rate this conversation?"))).id = "cq";
    var stars = c.appendChild(el("div", "stars"));
    var fmt = function (n) { try { return new Intl.NumberFormat(intlTag(language)).format(n); } catch (e) { return String(n); } };
    [1, 2, 3, 4, 5].forEach(function (r) {
      var label = interpolate(gettext("%(rating)s out of 5"), { rating: fmt(r) });
      var b = stars.appendChild(el("button", "", fmt(r)));
      b.type = "button"; b.title = label; b.setAttribute("aria-label", label);
      b.setAttribute("aria-pressed", String(hs.rating === r));
      b.addEventListener("click", function () { hs.rating = r; hs.csatErr = ""; renderHuman(); });
    });
    var f = c.appendChild(el("form"));
    var i = field(f, "cc", hs.comment, hs.csatErr, function (v) { hs.comment = v; });
    i.maxLength = 2000; i.placeholder = gettext("Tell us more (optional)"); i.setAttribute("aria-label", gettext("Tell us more (optional)"));
    submitBtn(f, gettext("Send rating"));
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      hs.csatErr = hs.rating ? "" : gettext("Choose a rating from 1 to 5.");
      if (hs.rating && send({ type: "csat", rating: hs.rating, comment: i.value.trim() })) hs.pending = "csat";
      renderHuman();
    });
    return c;
  }
  function transcriptCard() {
    var c = el("div", "card");
    var f = el("form"); f.noValidate = true;
    var lab = c.appendChild(el("label", "", gettext("E-mail address for the transcript"))); lab.htmlFor = "ta";
    c.appendChild(f);
    var i = field(f, "ta", hs.trAddress, hs.trErr, function (v) { hs.trAddress = v; });
    i.type = "email"; i.autocomplete = "email";
    submitBtn(f, gettext("Send"));
    var no = f.appendChild(el("button", "", gettext("Cancel"))); no.type = "button";
    no.addEventListener("click", function () { hs.trOpen = false; hs.trErr = ""; renderHuman(); trBtn.focus(); });
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var a = i.value.trim();
      hs.trErr = a ? "" : gettext("Enter your e-mail address.");
      if (a && send({ type: "transcript", address: a })) hs.pending = "transcript";
      renderHuman();
    });
    return c;
  }
  var handoffBtn = el("button", "handoff"); handoffBtn.type = "button";
  var trBtn = el("button", "trl"); trBtn.type = "button"; trBtn.setAttribute("aria-expanded", "false");
  handoffBtn.addEventListener("click", function () {
    if (hs.asked) return;
    if (send({ type: "handoff" })) { hs.asked = true; renderHuman(); }
  });
  trBtn.addEventListener("click", function () {
    hs.trOpen = !hs.trOpen; hs.trErr = "";
    if (hs.trOpen && !hs.trAddress) hs.trAddress = (human() && human().visitor_email) || "";
    renderHuman();
    if (hs.trOpen) focusCard("transcript", "input");
  });
  function focusCard(name, selector) { var c = cards[name], t = c && c.el.querySelector(selector); if (t) t.focus(); }
  function renderHuman() {
    var h = human(), conv = !!state.conversation_id, L = language;
    waitBar.hidden = !(h && h.mode === "waiting");
    waitBar.textContent = gettext("Waiting for a person…");
    who.textContent = h && h.mode === "agent" && h.agent ? interpolate(gettext("You are chatting with %(name)s"), { name: h.agent }) : "";
    typingLine.textContent = hs.typing ? interpolate(gettext("%(name)s is typing…"), { name: hs.typing }) : "";
    var showHandoff = !!(h && h.handoff_available && h.mode === "bot" && conv);
    handoffBtn.textContent = gettext("Talk to a person");
    handoffBtn.setAttribute("aria-disabled", String(hs.asked));
    trBtn.textContent = gettext("Email me the transcript");
    trBtn.setAttribute("aria-expanded", String(hs.trOpen));
    var showTr = !!(h && conv && state.messages.length);
    if (showHandoff !== (handoffBtn.parentNode === tools)) showHandoff ? tools.insertBefore(handoffBtn, tools.firstChild) : handoffBtn.remove();
    if (showTr !== (trBtn.parentNode === tools)) showTr ? tools.insertBefore(trBtn, handoffBtn.parentNode === tools ? handoffBtn.nextSibling : tools.firstChild) : trBtn.remove();
    slot(tools, "transcript", showTr && hs.trOpen ? JSON.stringify([L, hs.trErr]) : null, transcriptCard, trBtn.parentNode ? trBtn : input);
    slot(tools, "trsent", showTr && hs.trSent ? JSON.stringify([L, hs.trSent]) : null, function () {
      var c = el("div", "ok", interpolate(gettext("We sent the transcript to %(email)s."), { email: hs.trSent }));
      c.setAttribute("role", "status"); return c;
    });
    slot(extra, "email", h && h.offer_email && !h.visitor_email ? JSON.stringify([L, hs.emailErr]) : null, emailCard);
    var csat = h && h.csat_requested && (h.csat === null || h.csat === undefined || hs.thanks);
    slot(extra, "csat", csat ? JSON.stringify([L, hs.rating, hs.csatErr, hs.thanks]) : null, csatCard);
  }

  // --- connection ----------------------------------------------------------------------------
  var ws = null, ready = false, attempt = 0, failedOpens = 0, everReady = false;
  var reconnectTimer = null, pingTimer = null, pongTimer = null, stallTimer = null, connTimer = null;
  function setConn(text, bad) { conn.textContent = text; conn.classList.toggle("bad", !!bad); }
  function send(frame) {
    if (!ws || ws.readyState !== 1 || (!ready && frame.type !== "hello")) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }
  function hello() {
    var frame = { type: "hello", token: state.token || null, locale: language,
      conversation_id: state.conversation_id || null, last_seen_id: state.conversation_id ? lastSeen() : null };
    if (identity) frame.identity = identity;
    send(frame);
  }
  function flushOutbox() {
    state.outbox.forEach(function (o) {
      if (o.state !== "failed" && send({ type: "message", client_id: o.client_id, text: o.text })) o.state = "sending";
    });
  }
  function resend(clientId) {
    state.outbox.forEach(function (o) { if (o.client_id === clientId) { o.state = "queued"; o.error = ""; } });
    flushOutbox(); save(); render();
  }
  // A reply that makes no progress (its process died) is re-synchronised with a fresh hello.
  function scheduleStall() {
    clearTimeout(stallTimer);
    if (ready && state.messages.some(active)) stallTimer = setTimeout(hello, 20000);
  }
  function heartbeat() {
    clearInterval(pingTimer);
    pingTimer = setInterval(function () {
      if (!send({ type: "ping" })) return;
      clearTimeout(pongTimer);
      pongTimer = setTimeout(function () { if (ws) ws.close(); }, 10000);
    }, 25000);
  }
  function connect() {
    clearTimeout(reconnectTimer);
    if (ws) return;
    var sock = new WebSocket(wsUrl), opened = false;
    ws = sock;
    // Say "reconnecting" only if it takes a moment, so a quick resume does not flash.
    clearTimeout(connTimer);
    connTimer = setTimeout(function () {
      if (!ready) setConn(everReady ? gettext("Connection lost. Reconnecting…") : gettext("Connecting…"), everReady);
    }, everReady ? 1500 : 800);
    sock.onopen = function () { opened = true; failedOpens = 0; hello(); };
    sock.onmessage = function (ev) { if (ws === sock) onFrame(ev.data); };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null; ready = false;
      clearInterval(pingTimer); clearTimeout(pongTimer); clearTimeout(stallTimer);
      if (!opened && ++failedOpens === 3) {
        console.warn("AutoGLM chat: cannot open " + wsUrl + ". If the server is up, it refuses pages from " +
          location.origin + ": add that origin to CHAT_ALLOWED_ORIGINS on the chat server.");
      }
      state.outbox.forEach(function (o) { if (o.state === "sending") o.state = "queued"; });
      if (!navigator.onLine) setConn(gettext("You are offline. Messages will be sent when you are back online."), true);
      save(); render();
      // 4001: closed for being idle; the next connection waits for the visitor to be back.
      if (ev && ev.code === 4001) { idleClosed = true; return; }
      var delay = Math.min(15000, 500 * Math.pow(2, attempt++)) * (0.7 + Math.random() * 0.6);
      // 4008: refused by an abuse limit (too many windows or new conversations from here).
      if (ev && ev.code === 4008) delay = 60000 * (0.8 + Math.random() * 0.4);
      reconnectTimer = setTimeout(connect, delay);
    };
  }
  function reconnectNow() { attempt = 0; if (!ws) connect(); }
  var idleClosed = false;
  function back() { if (idleClosed) { idleClosed = false; reconnectNow(); } }
  ["focus", "pointerdown", "keydown"].forEach(function (name) { window.addEventListener(name, back, true); });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) back(); });
  var FORM_ERRORS = ["invalid_email", "transcript_limited", "invalid_frame", "internal_error"];
  function onFrame(raw) {
    var f;
    try { f = JSON.parse(raw); } catch (e) { return; }
    var m;
    if (f.type === "welcome") {
      ready = true; everReady = true; attempt = 0;
      clearTimeout(connTimer); setConn("");
      state.token = f.token; state.signed_in = !!identity;
      if (f.limits && f.limits.max_message_chars) maxChars = f.limits.max_message_chars;
      if (f.conversation_id) state.conversation_id = f.conversation_id;
      if (f.language) state.conv_language = f.language;
      // A server without the human side sends no state: no control shows.
      state.human = null; if (f.state) setHuman(f.state);
      // A streaming reply arrives with its text so far and replaces the local copy.
      (f.messages || []).forEach(function (x) { upsert(x, true); });
      flushOutbox(); heartbeat(); updateCount();
      emit("ready", { conversation_id: state.conversation_id, language: f.language });
    } else if (f.type === "ack") {
      state.conversation_id = f.conversation_id;
      var o = state.outbox.filter(function (x) { return x.client_id === f.client_id; })[0];
      if (!byId(f.message_id)) {
        upsert({ id: f.message_id, role: "user", text: o ? o.text : "", status: "complete", client_id: f.client_id, created_at: new Date().toISOString() });
      }
      state.outbox = state.outbox.filter(function (x) { return x.client_id !== f.client_id; });
      if (f.reply_id && !byId(f.reply_id)) upsert({ id: f.reply_id, role: "assistant", text: "", status: "pending", reply_to: f.message_id, created_at: new Date().toISOString() });
      emit("message", { id: f.message_id, client_id: f.client_id, conversation_id: f.conversation_id });
    } else if (f.type === "message") {
      m = f.message;
      var fresh = m && !byId(m.id);
      upsert(m, true);
      if (fresh && m.role === "agent") {
        hs.typing = "";
        announce(interpolate(gettext("%(name)s wrote: %(text)s"), { name: m.author_name || gettext("Support team"),
          text: translated(m) === "done" ? m.translation.text : m.text }));
      } else if (fresh && m.role === "system") announce(m.text);
    } else if (f.type === "state") {
      if (!f.state || (f.state.conversation_id && state.conversation_id && f.state.conversation_id !== state.conversation_id)) return;
      setHuman(f.state);
    } else if (f.type === "translation") {
      m = byId(f.message_id);
      if (!m) return;
      m.translation = { language: f.language, status: f.status, text: f.text || "" };
    } else if (f.type === "typing") {
      if (f.who !== "agent") return;
      showTyping(f.name);
    } else if (f.type === "csat_saved") {
      hs.pending = ""; hs.thanks = true;
      if (state.human) state.human.csat = hs.rating || state.human.csat;
      announce(gettext("Thank you for your feedback."));
    } else if (f.type === "email_saved") {
      hs.pending = ""; hs.emailErr = "";
      if (state.human) { state.human.visitor_email = hs.email.trim(); state.human.offer_email = false; }
      hs.email = "";
    } else if (f.type === "transcript_sent") {
      hs.pending = ""; hs.trOpen = false; hs.trErr = ""; hs.trSent = hs.trAddress.trim() || (human() && human().visitor_email) || "";
      clearTimeout(trSentTimer);
      trSentTimer = setTimeout(function () { hs.trSent = ""; renderHuman(); }, 8000);
      announce(interpolate(gettext("We sent the transcript to %(email)s."), { email: hs.trSent }));
    } else if (f.type === "delta") {
      m = byId(f.message_id);
      if (!m) { m = { id: f.message_id, role: "assistant", text: "", status: "streaming" }; upsert(m); }
      if (f.offset > m.text.length) { ws.close(); return; } // a gap: reconnect and take the stored text
      m.text = m.text.slice(0, f.offset) + f.text;
      m.status = "streaming";
      emit("delta", f);
      save(); schedule();
      return;
    } else if (f.type === "done") {
      m = byId(f.message_id);
      if (m) {
        m.status = f.status;
        if (Array.isArray(f.citations)) m.citations = f.citations;
        if (f.status === "complete") announce(interpolate(gettext("%(assistant)s replied: %(text)s"), { assistant: name(), text: m.text }));
      }
      emit("reply", m);
    } else if (f.type === "error") {
      if (f.code === "handoff_unavailable") { hs.asked = false; if (state.human) state.human.handoff_available = false; }
      if (f.code === "invalid_token" || f.code === "conversation_not_found" || f.code === "identity_required") {
        // identity_required: a signed-in user's conversation, and this page no longer vouches
        // for them (they signed out, or someone else is at the computer): start afresh.
        if (f.code !== "conversation_not_found") { state.token = null; state.outbox = []; }
        state.conversation_id = null; state.messages = [];
        saveNow(); render();
        hello();
      } else if (hs.pending && FORM_ERRORS.indexOf(f.code) >= 0) {
        // Shown by the field that was sent (e-mail, transcript address, rating).
        hs[{ email: "emailErr", transcript: "trErr", csat: "csatErr" }[hs.pending]] = f.message;
        hs.pending = "";
      } else if (f.client_id) {
        state.outbox.forEach(function (x) { if (x.client_id === f.client_id) { x.state = "failed"; x.error = f.message; } });
      } else {
        setConn(f.message, true);
        setTimeout(function () { if (conn.textContent === f.message) setConn(""); }, 8000);
      }
      announce(f.message);
      emit("error", { code: f.code, message: f.message });
    } else if (f.type === "pong") {
      clearTimeout(pongTimer);
      return;
    } else return;
    save(); render();
  }

  // --- composer ------------------------------------------------------------------------------
  function updateCount() {
    var n = input.value.length, left = maxChars - n;
    count.classList.toggle("over", left < 0);
    sendBtn.setAttribute("aria-disabled", String(left < 0));
    if (left < 0) count.textContent = interpolate(ngettext("%(count)s character too many", "%(count)s characters too many", -left), { count: -left });
    else if (left <= Math.max(100, maxChars / 10)) count.textContent = interpolate(ngettext("%(count)s character left", "%(count)s characters left", left), { count: left });
    else count.textContent = "";
  }
  function grow() { input.style.height = "auto"; input.style.height = Math.min(input.scrollHeight + 2, 140) + "px"; }
  input.addEventListener("input", function () { updateCount(); grow(); visitorTyping(); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) { e.preventDefault(); submit(); }
  });
  form.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }
  function submit() {
    var text = input.value.trim();
    if (!text || text.length > maxChars) return;
    var o = { client_id: newId(), text: text, state: "queued" };
    state.outbox.push(o);
    input.value = ""; updateCount(); grow();
    flushOutbox(); saveNow(); render();
  }
  // No message_id: stop every active reply of the conversation, also one regenerated meanwhile.
  stopBtn.addEventListener("click", function () { send({ type: "cancel" }); input.focus(); });

  // --- panel, language, public API -------------------------------------------------------------
  function open() {
    if (!panel.hidden) return;
    panel.hidden = false; w.classList.add("open");
    launch.setAttribute("aria-expanded", "true");
    render(); log.scrollTop = log.scrollHeight;
    input.focus();
    emit("open");
  }
  function close() {
    if (panel.hidden) return;
    panel.hidden = true; w.classList.remove("open");
    launch.setAttribute("aria-expanded", "false");
    launch.focus();
    emit("close");
  }
  launch.addEventListener("click", function () { panel.hidden ? open() : close(); });
  closeBtn.addEventListener("click", close);
  w.addEventListener("keydown", function (e) { if (e.key === "Escape" && !panel.hidden) { e.preventDefault(); close(); } });
  newBtn.addEventListener("click", function () { newConversation(); input.focus(); });
  langSel.addEventListener("change", function () { setLocale(langSel.value, true); });
  function newConversation() {
    state.conversation_id = null; state.messages = []; state.outbox = []; ui = {};
    // Until the welcome says otherwise, only whether a person can be asked for carries over.
    state.human = state.human && { mode: "bot", handoff_available: state.human.handoff_available };
    hs.asked = false; hs.pending = ""; hs.thanks = false; hs.rating = 0; hs.comment = ""; hs.trOpen = false; hs.trSent = "";
    hs.emailErr = hs.csatErr = hs.trErr = ""; hs.trAddress = ""; hs.typing = "";
    saveNow(); render();
    if (ready) hello();
    emit("new_conversation");
  }
  var catalogs = {};
  function fetchCatalog(code) {
    if (!catalogs[code]) {
      catalogs[code] = fetch(server + "/jsi18n/" + encodeURIComponent(code) + "/", { credentials: "omit" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .catch(function () { delete catalogs[code]; return null; });
    }
    return catalogs[code];
  }
  function setLocale(code, byVisitor) {
    var chosen = supported(code);
    if (!chosen) return Promise.resolve(language);
    if (byVisitor) { try { localStorage.setItem(choiceKey, chosen); } catch (e) { /* private mode */ } }
    return fetchCatalog(chosen).then(function (json) {
      setCatalog(json);
      language = chosen;
      setDir(chosen); applyStrings(); render();
      if (ready) hello();
      emit("locale", chosen);
      return chosen;
    });
  }
  window.addEventListener("online", reconnectNow);
  window.addEventListener("offline", function () { if (!ready) setConn(gettext("You are offline. Messages will be sent when you are back online."), true); });
  window.addEventListener("pagehide", saveNow);
  // Another tab started a new conversation or stored newer messages: follow it.
  window.addEventListener("storage", function (e) {
    if (e.key !== storeKey || !e.newValue) return;
    var other;
    try { other = JSON.parse(e.newValue); } catch (err) { return; }
    if (other.conversation_id !== state.conversation_id) {
      state.conversation_id = other.conversation_id; state.token = other.token || state.token;
      state.messages = other.messages || []; render();
      if (ready) hello();
    }
  });

  var api = {
    open: open,
    close: close,
    toggle: function () { panel.hidden ? open() : close(); },
    setLocale: function (code) { return setLocale(code, false); },
    identify: function (who) {
      var before = identity;
      identity = identityOf(who);
      // Sign-out: on a shared computer the next person must not see (or continue) the last
      // one's conversation, so the stored token and conversation go, and a new visitor starts.
      // An anonymous visitor's conversation (never signed in here) stays.
      if (!identity) {
        if (before || state.signed_in) { state.token = null; state.signed_in = false; newConversation(); }
        return;
      }
      if (ready) hello();
    },
    on: function (event, f) {
      (listeners[event] = listeners[event] || []).push(f);
      return function () { listeners[event] = (listeners[event] || []).filter(function (g) { return g !== f; }); };
    },
    newConversation: newConversation,
  };

  function start(conf) {
    if (conf) Object.assign(site, conf);
    if (conf && conf.origin_allowed === false) {
      console.error("AutoGLM chat: this page's origin " + location.origin + " is not allowed to embed the chat of " +
        server + ". Add it to CHAT_ALLOWED_ORIGINS on the chat server (docs/widget.md).");
      window.AutoGLM = { refused: true, open: function () {}, close: function () {}, setLocale: function () {}, identify: function () {}, on: function () { return function () {}; } };
      window.dispatchEvent(new CustomEvent("autoglm:refused"));
      return;
    }
    maxChars = site.max_message_chars || maxChars;
    language = pickLocale();
    setDir(language);
    fetchCatalog(language).then(function (json) {
      setCatalog(json);
      applyStrings();
      document.body.appendChild(hostEl);
      render();
      connect();
      window.dispatchEvent(new CustomEvent("autoglm:ready"));
      if (data.open === "true") open();
    });
  }
  window.AutoGLM = api;
  fetch(server + "/chat/config", { credentials: "omit" })
    .then(function (r) { return r.ok ? r.json() : null; })
    .catch(function () { return null; })
    .then(start);
})();
