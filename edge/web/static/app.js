// gatecheck officer page: live decisions over server-sent events, officer actions behind a PIN.
"use strict";
(function () {
  const T = {
    zh: {
      title: "核验终端", connecting: "连接中…", live: "实时", offline: "已断开", snapshot: "规则", sync: "同步",
      audit: "审计日志", devices: "读卡器 / 闸机", peers: "本卡口设备", officer: "执勤操作", login: "登录",
      loggedIn: "已登录：", logout: "退出", manualEntry: "手工录入证件号", testOnly: "仅查核酸（残障人士 / 无智能手机）",
      check: "核验", override: "人工改判", record: "记录", register: "通勤人员登记", submit: "提交审批",
      decisions: "实时核验记录", officerName: "警号 / 姓名", pin: "PIN", idNumber: "身份证号码", entryNo: "记录号",
      reason: "理由（必填）", workProof: "工作证明（单位、编号）", residenceProof: "居住证明",
      testProof: "核酸阴性证明（机构、日期）", oPass: "放行", oManual: "转人工", oNeedTest: "需核酸检测",
      none: "无有效规则", version: "版本", age: "已生效", expires: "到期", never: "从未", ago: "前", cursor: "游标",
      pending: "待上传", acked: "已确认", readerUp: "读卡器正常", readerDown: "读卡器断开", noReader: "无读卡器",
      gate: "闸机开启次数", noGate: "无闸机", alone: "单机", stale: "数据过时", lastSync: "上次同步", behind: "落后",
      link: "在线", commuter: "通勤", gateOpened: "已开闸", entry: "记录", overrideBtn: "改判", done: "已记录",
      queued: "已提交，待中心审批；批准后次日零时生效", readOnly: "本机未配置执勤PIN：只读",
    },
    en: {
      title: "Checkpoint verifier", connecting: "connecting…", live: "live", offline: "disconnected", snapshot: "Rules",
      sync: "Sync", audit: "Audit log", devices: "Reader / gate", peers: "Checkpoint devices", officer: "Officer actions",
      login: "Log in", loggedIn: "Logged in: ", logout: "Log out", manualEntry: "Manual ID entry",
      testOnly: "test only (disability / no smartphone)", check: "Check", override: "Override", record: "Record",
      register: "Commuter registration", submit: "Submit for approval", decisions: "Live decisions",
      officerName: "officer number / name", pin: "PIN", idNumber: "ID number", entryNo: "entry no.",
      reason: "reason (required)", workProof: "work proof (employer, ref.)", residenceProof: "residence proof",
      testProof: "negative test proof (lab, date)", oPass: "PASS", oManual: "MANUAL", oNeedTest: "NEED_TEST",
      none: "no snapshot in force", version: "version", age: "in force for", expires: "expires", never: "never",
      ago: "ago", cursor: "cursor", pending: "pending upload", acked: "acknowledged", readerUp: "reader connected",
      readerDown: "READER DISCONNECTED", noReader: "no reader", gate: "gate openings", noGate: "no gate",
      alone: "alone", stale: "STALE", lastSync: "last sync", behind: "behind", link: "link", commuter: "commuter",
      gateOpened: "gate opened", entry: "entry", overrideBtn: "override", done: "recorded",
      queued: "queued for central approval; effective at 00:00 the day after approval",
      readOnly: "no officer PIN configured on this device: read-only",
    },
  };
  let lang = new URLSearchParams(location.search).get("lang") === "en" ? "en" : (localStorage.getItem("gc-lang") || "zh");
  let token = sessionStorage.getItem("gc-token") || "";
  let officer = sessionStorage.getItem("gc-officer") || "";
  let lastStatus = null;
  const $ = (id) => document.getElementById(id);
  const t = (k) => T[lang][k] || k;

  function dur(sec) {
    if (sec < 0) return "-";
    const d = Math.floor(sec / 86400), h = Math.floor(sec % 86400 / 3600), m = Math.floor(sec % 3600 / 60);
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    return m + "m " + Math.floor(sec % 60) + "s";
  }
  function fmtTime(s) {
    const d = new Date(s);
    return d.toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: "Asia/Shanghai", hour12: false });
  }
  function text(el, s) { el.textContent = s; return el; }
  function el(tag, cls, s) { const e = document.createElement(tag); if (cls) e.className = cls; if (s !== undefined) e.textContent = s; return e; }

  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-t]").forEach((e) => { e.textContent = t(e.dataset.t); });
    document.querySelectorAll("[data-ph]").forEach((e) => { e.placeholder = t(e.dataset.ph); });
    $("lang").textContent = lang === "zh" ? "English" : "中文";
    document.title = "gatecheck " + t("title");
    if (lastStatus) renderStatus(lastStatus);
    reloadFeed();
  }

  function renderStatus(s) {
    lastStatus = s;
    text($("device"), s.device + (s.lane ? " · " + s.lane : "") + " · " + s.kind);
    const alerts = $("alerts");
    alerts.replaceChildren(...s.alerts.map((a) => el("div", a.level, lang === "zh" ? a.zh + " / " + a.en : a.en)));
    if (s.snapshot) {
      text($("snapshot"), t("version") + " " + s.snapshot.version);
      text($("snapshot-s"), s.snapshot.name + " · " + t("age") + " " + dur(s.snapshot.age_seconds) + " · " + t("expires") + " " + fmtTime(s.snapshot.expires_at));
      $("c-snapshot").classList.toggle("stale", s.snapshot.expires_in_seconds <= 0);
    } else {
      text($("snapshot"), t("none")); text($("snapshot-s"), ""); $("c-snapshot").classList.add("stale");
    }
    const sy = s.sync;
    text($("sync"), (sy.stale ? t("stale") + " · " : "") + t("cursor") + " " + sy.cursor);
    let ss = t("lastSync") + ": " + (sy.lag_seconds < 0 ? t("never") : dur(sy.lag_seconds) + " " + t("ago"));
    if (sy.behind_peers > 0) ss += " · " + t("behind") + " " + sy.behind_peers;
    if (sy.last_error) ss += " · " + sy.last_error;
    text($("sync-s"), ss);
    $("c-sync").classList.toggle("stale", sy.stale);
    text($("audit"), s.audit.seq);
    text($("audit-s"), t("pending") + " " + s.audit.pending + " · " + t("acked") + " " + s.audit.acked);
    text($("reader"), !s.reader.configured ? t("noReader") : s.reader.up ? t("readerUp") : t("readerDown"));
    $("c-reader").classList.toggle("stale", s.reader.configured && !s.reader.up);
    text($("gate"), s.gate.configured ? t("gate") + " " + (s.gate.opens || 0) : t("noGate"));
    text($("peers-n"), s.peers.length ? String(s.peers.length) : t("alone"));
    text($("peers"), s.peers.map((p) => (p.lane || p.name) + " v" + p.snapshot + " #" + p.cursor + (p.link ? " (" + t("link") + ")" : "")).join(" · "));
    $("register").hidden = !s.registration;
    if (!s.officer_actions) { $("login").hidden = true; text($("result"), t("readOnly")); }
  }

  function item(d, fresh) {
    const li = el("li", fresh ? "fresh" : "");
    li.dataset.seq = d.seq;
    li.append(el("span", "out o-" + d.outcome, d.outcome));
    const reason = el("span", "reason", lang === "zh" ? d.reason_zh : d.reason_en);
    if (d.commuter) reason.append(el("span", "commuter", t("commuter")));
    li.append(reason);
    if (token && d.source !== "officer" && d.source !== "registration") {
      const b = el("button", "ovr", t("overrideBtn"));
      b.type = "button";
      b.addEventListener("click", () => { $("override-ref").value = d.seq; $("override-reason").focus(); });
      li.append(b);
    } else li.append(el("span"));
    li.append(el("span", "meta", fmtTime(d.time) + " · " + d.masked_id + " · " + d.source + " · " + t("entry") + " " + d.seq +
      (d.ref ? " → " + d.ref : "") + (d.opens ? " · " + t("gateOpened") : "") + " · " + d.rule));
    return li;
  }
  function addDecision(d) {
    const feed = $("feed");
    feed.prepend(item(d, true));
    while (feed.children.length > 200) feed.lastChild.remove();
  }
  async function reloadFeed() {
    try {
      const r = await fetch("/decisions?n=100");
      const list = await r.json();
      $("feed").replaceChildren(...list.map((d) => item(d, false)));
    } catch (e) { /* the stream reconnects */ }
  }

  function connect() {
    const es = new EventSource("/events");
    es.addEventListener("open", () => { const c = $("conn"); c.className = "pill ok"; c.dataset.t = "live"; text(c, t("live")); reloadFeed(); });
    es.addEventListener("error", () => { const c = $("conn"); c.className = "pill bad"; c.dataset.t = "offline"; text(c, t("offline")); });
    es.addEventListener("status", (e) => renderStatus(JSON.parse(e.data)));
    es.addEventListener("decision", (e) => addDecision(JSON.parse(e.data)));
    es.addEventListener("reload", reloadFeed);
  }

  async function api(path, body) {
    const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token }, body: JSON.stringify(body) });
    const j = await r.json().catch(() => ({ error: r.statusText }));
    if (r.status === 401 && path !== "/api/login") setSession("", "");
    if (!r.ok) throw new Error(j.error || r.statusText);
    return j;
  }
  function show(msg, err) { const r = $("result"); r.className = err ? "err" : ""; text(r, msg); }
  function setSession(tok, who) {
    token = tok; officer = who;
    if (tok) { sessionStorage.setItem("gc-token", tok); sessionStorage.setItem("gc-officer", who); }
    else { sessionStorage.removeItem("gc-token"); sessionStorage.removeItem("gc-officer"); }
    $("login").hidden = !!tok; $("actions").hidden = !tok; text($("who"), who);
    reloadFeed();
  }
  function passageText(p) {
    const d = p.decision;
    let s = t("entry") + " " + p.audit_seq + ": " + d.outcome + " - " + (lang === "zh" ? d.reason_zh : d.reason_en);
    if (p.gate_opened) s += " (" + t("gateOpened") + ")";
    return s;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("gc-lang", lang); applyLang(); });
    $("login").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const j = await api("/api/login", { officer: $("login-officer").value, pin: $("login-pin").value });
        setSession(j.token, j.officer); show("");
      } catch (err) { show(err.message, true); }
      $("login-pin").value = "";
    });
    $("logout").addEventListener("click", async () => { try { await api("/api/logout", {}); } catch (e) { } setSession("", ""); });
    $("manual").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const p = await api("/api/check", { id: $("manual-id").value, test_only: $("manual-testonly").checked });
        $("manual-id").value = ""; show(passageText(p));
      } catch (err) { show(err.message, true); }
    });
    $("override").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const p = await api("/api/override", { ref: Number($("override-ref").value), outcome: $("override-outcome").value, reason: $("override-reason").value });
        $("override-reason").value = ""; $("override-ref").value = ""; show(passageText(p));
      } catch (err) { show(err.message, true); }
    });
    $("register").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const j = await api("/api/register", { id: $("register-id").value, work_proof: $("register-work").value, residence_proof: $("register-residence").value, test_proof: $("register-test").value });
        ["register-id", "register-work", "register-residence", "register-test"].forEach((id) => { $(id).value = ""; });
        show(t("entry") + " " + j.audit_seq + ": " + t("queued"));
      } catch (err) { show(err.message, true); }
    });
    setSession(token, officer);
    applyLang();
    connect();
  });
})();
