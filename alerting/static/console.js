"use strict";
// The operator console: plain JS, no build step. Views: #queue (and #alert/ID), #registry, #dashboard.

const TEXT = {
  "zh-CN": {
    nav_queue: "告警队列", nav_registry: "登记信息", nav_dashboard: "主管看板",
    role_operator: "值班员", role_supervisor: "主管", role_admin: "管理员",
    connecting: "连接中…", live: "实时", offline: "已断开，重连中…", logout: "退出",
    sound_on: "♪ 提示音：开", sound_off: "提示音：关",
    severity: "级别", cause: "原因", resident: "老人", community: "社区", waiting: "已等待", status: "状态",
    messages: "通知", ack: "确认", arrived: "已到达现场", empty: "当前没有告警。", notifications: "通知记录", audit: "处理记录",
    sos: "SOS 呼叫", fall: "跌倒", gas_alarm: "燃气报警", co_alarm: "一氧化碳报警", water_leak: "漏水",
    device_offline: "设备离线", possible_leak: "疑似漏水", inactivity: "长时间无活动", long_water_flow: "长时间用水", long_gas_flow: "长时间用气",
    night_wandering: "夜间活动异常", activity_decline: "活动量下降",
    critical: "紧急", high: "高", medium: "中", low: "低",
    open: "待处理", acknowledged: "已确认", resolved: "已解决",
    pending: "待发送", sending: "发送中", sent: "已发送", dry_run: "未发送（演示）", failed: "失败",
    sms: "短信", voice: "电话",
    age: "岁", conditions: "健康状况", address: "地址", access_notes: "入户说明", none: "无",
    what_happened: "发生了什么", evidence: "检测依据", chart: "近24小时 用水 · 用气 · 步数",
    water_l: "用水（升）", gas_m3: "用气（立方米）", steps: "步数", anomaly: "告警时间", no_data: "暂无数据",
    escalation: "通知与处理", actions: "操作", call: "拨打电话", note: "添加备注", note_placeholder: "备注内容…",
    resolve: "解决", away: "外出登记", away_until: "预计回家", away_reason: "原因", declare_away: "登记外出",
    declare_back: "已回家", is_away: "外出中", until: "至",
    resident_ok: "老人安好", false_alarm: "误报", visited: "已上门查看", ambulance_called: "已叫救护车",
    hospitalised: "已住院", deceased: "已去世",
    created: "告警产生", folded: "再次触发", acknowledged_a: "已确认", arrived_a: "已到达现场", resolved_a: "已解决", note_a: "备注",
    sms_queued: "短信排队", sms_sent: "短信已发送", sms_dry_run: "短信（演示）", sms_failed: "短信失败",
    voice_queued: "电话排队", voice_sent: "电话已拨出", voice_dry_run: "电话（演示）", voice_failed: "电话失败",
    no_responder: "没有联系人",
    ev_event: "事件", ev_seq: "序号", ev_flow_l_min: "水流（升/分钟）", ev_ch4_lel_pct: "甲烷（%LEL）",
    ev_alarm_lel_pct: "报警值（%LEL）", ev_co_ppm: "一氧化碳（ppm）", ev_level_ppm: "报警值（ppm）",
    ev_sustained_min: "持续（分钟）", ev_device_kind: "设备类型", ev_silent_min: "无消息（分钟）",
    import_title: "批量导入", import_button: "导入",
    import_help: "YAML 或 CSV 文件；有任何错误时不导入任何内容，并列出每个错误所在的行和字段。",
    imported: "已导入家庭数：", import_failed: "文件有错误，未导入任何内容：", row: "行", field: "字段", problem: "问题",
    homes: "家庭", residents: "老人", devices: "设备", responders: "联系人", policies: "通知规则",
    home: "家庭", kind: "类型", last_seen: "最后上报", battery: "电量", online_s: "在线", offline_s: "离线",
    never: "从未上报", name: "姓名", relation: "关系", phone: "电话", language: "语言", position: "顺序",
    policy_default: "默认逐级通知：紧急告警立即短信并致电第一联系人，60 秒内无人按 1 确认则通知下一位，最多 3 轮，并同时提示值班员；高级别每步等 2 分钟；中、低级别只发短信（免打扰时段不打扰）。各家庭可单独设置（API：/api/v1/homes/{id}/escalation-policies/{级别}）。",
    wearable: "手环", water_meter: "水表", gas_sensor: "燃气探测器",
    dash_title: "主管看板（近7天）", all: "全部社区", alerts_n: "告警数", open_n: "未解决",
    ack_p50: "确认用时中位数", ack_p90: "确认用时90%", ack_max: "最长确认用时", sent_p50: "首条通知用时中位数",
    within60: "60秒内确认", within180: "180秒内确认", devices_offline: "离线设备",
    forbidden: "您没有查看此页面的权限。", sec: "秒", min: "分", hr: "小时",
  },
  en: {
    nav_queue: "Alert queue", nav_registry: "Registry", nav_dashboard: "Dashboard",
    role_operator: "operator", role_supervisor: "supervisor", role_admin: "admin",
    connecting: "connecting…", live: "live", offline: "disconnected, retrying…", logout: "Sign out",
    sound_on: "♪ Sound: on", sound_off: "Sound: off",
    severity: "Severity", cause: "Cause", resident: "Resident", community: "Community", waiting: "Waiting",
    status: "Status", messages: "Messages", ack: "Acknowledge", arrived: "Responder arrived", empty: "No alerts right now.",
    notifications: "Messages", audit: "History",
    sos: "SOS call", fall: "Fall", gas_alarm: "Gas alarm", co_alarm: "CO alarm", water_leak: "Water leak",
    device_offline: "Device offline", possible_leak: "Possible leak", inactivity: "Inactivity", long_water_flow: "Long water flow",
    long_gas_flow: "Long gas flow", night_wandering: "Night wandering", activity_decline: "Activity decline",
    critical: "critical", high: "high", medium: "medium", low: "low",
    open: "open", acknowledged: "acknowledged", resolved: "resolved",
    pending: "pending", sending: "sending", sent: "sent", dry_run: "not sent (dry run)", failed: "failed",
    sms: "SMS", voice: "Call",
    age: "years", conditions: "Conditions", address: "Address", access_notes: "Access notes", none: "none",
    what_happened: "What happened", evidence: "Evidence", chart: "Last 24 h · water · gas · steps",
    water_l: "Water (L)", gas_m3: "Gas (m³)", steps: "Steps", anomaly: "alert", no_data: "no data yet",
    escalation: "Messages and history", actions: "Actions", call: "Call", note: "Add note",
    note_placeholder: "Note…", resolve: "Resolve", away: "Away", away_until: "Back by", away_reason: "Reason",
    declare_away: "Declare away", declare_back: "Back home", is_away: "Away", until: "until",
    resident_ok: "Resident OK", false_alarm: "False alarm", visited: "Visited", ambulance_called: "Ambulance called",
    hospitalised: "Hospitalised", deceased: "Deceased",
    created: "alert created", folded: "triggered again", acknowledged_a: "acknowledged", arrived_a: "responder arrived", resolved_a: "resolved",
    note_a: "note", sms_queued: "SMS queued", sms_sent: "SMS sent", sms_dry_run: "SMS (dry run)",
    sms_failed: "SMS failed", voice_queued: "call queued", voice_sent: "call placed", voice_dry_run: "call (dry run)",
    voice_failed: "call failed", no_responder: "no responder",
    ev_event: "event", ev_seq: "sequence", ev_flow_l_min: "flow (L/min)", ev_ch4_lel_pct: "methane (% LEL)",
    ev_alarm_lel_pct: "alarm level (% LEL)", ev_co_ppm: "CO (ppm)", ev_level_ppm: "alarm level (ppm)",
    ev_sustained_min: "sustained (min)", ev_device_kind: "device", ev_silent_min: "silent (min)",
    import_title: "Bulk import", import_button: "Import",
    import_help: "A YAML or CSV file; if anything is wrong nothing is imported, and each error is listed with its row and field.",
    imported: "Homes imported: ", import_failed: "The file has errors; nothing was imported:", row: "Row",
    field: "Field", problem: "Problem",
    homes: "Homes", residents: "Residents", devices: "Devices", responders: "Responders", policies: "Escalation",
    home: "Home", kind: "Kind", last_seen: "Last seen", battery: "Battery", online_s: "online", offline_s: "offline",
    never: "never", name: "Name", relation: "Relation", phone: "Phone", language: "Language", position: "Order",
    policy_default: "Default escalation: a critical alert texts and calls the first responder at once, moves to the next if nobody presses 1 within 60 s, up to 3 rounds, and tells the operators at once; high waits 2 min a step; medium and low send SMS only (respecting quiet hours). Each home can have its own (API: /api/v1/homes/{id}/escalation-policies/{severity}).",
    wearable: "wearable", water_meter: "water meter", gas_sensor: "gas sensor",
    dash_title: "Supervisor dashboard (last 7 days)", all: "All communities", alerts_n: "Alerts", open_n: "Open",
    ack_p50: "Ack p50", ack_p90: "Ack p90", ack_max: "Ack max", sent_p50: "First message p50",
    within60: "Acked ≤ 60 s", within180: "Acked ≤ 180 s", devices_offline: "Devices offline",
    forbidden: "You do not have the rights to see this page.", sec: "s", min: "min", hr: "h",
  },
};

const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const csrf = meta("csrf-token");
const timeZone = meta("timezone");
let lang = localStorage.getItem("carebed-lang") || "zh-CN";
let soundOn = localStorage.getItem("carebed-sound") !== "off";
let alerts = [];
let selected = null;

const t = (key) => TEXT[lang][key] ?? key;
const fmt = (iso, withDate = true) => new Intl.DateTimeFormat(lang, {
  timeZone, ...(withDate ? { month: "2-digit", day: "2-digit" } : {}), hour: "2-digit", minute: "2-digit",
  second: "2-digit", hour12: false,
}).format(new Date(iso));

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} ${t("sec")}`;
  if (s < 3600) return `${Math.floor(s / 60)} ${t("min")} ${s % 60} ${t("sec")}`;
  return `${Math.floor(s / 3600)} ${t("hr")} ${Math.floor((s % 3600) / 60)} ${t("min")}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "on") Object.entries(value).forEach(([event, fn]) => node.addEventListener(event, fn));
    else if (key === "class") node.className = value;
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined).map(
    (c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return node;
}

const table = (headers, rows, attrs = {}) => el("table", attrs,
  el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
  el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))));

class Forbidden extends Error {}

async function api(path, options = {}) {
  const headers = { "X-CSRF-Token": csrf };
  if (options.body && !(options.body instanceof FormData)) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (response.status === 401) { window.location = "/login"; throw new Error("login required"); }
  if (response.status === 403) throw new Forbidden(path);
  if (!response.ok && response.status !== 422) throw new Error(`${response.status} ${path}`);
  return response.json();
}
const post = (path, body) => api(path, { method: "POST", body: body && JSON.stringify(body) });

function applyLanguage() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = t(node.dataset.i18n); });
  document.getElementById("lang").textContent = lang === "zh-CN" ? "EN" : "中文";
  document.getElementById("sound").textContent = t(soundOn ? "sound_on" : "sound_off");
}

// --- queue -----------------------------------------------------------------------------------

const urgent = (alert) => alert.status === "open" && alert.severity === "critical";

function renderQueue() {
  const tbody = document.querySelector("#alerts tbody");
  const now = Date.now();
  tbody.replaceChildren(...alerts.map((alert) => {
    const ack = alert.status === "open"
      ? el("button", { class: "ack", on: { click: (event) => { event.stopPropagation(); acknowledge(alert.id); } } }, t("ack"))
      : "";
    const waited = ((alert.resolved_at ? Date.parse(alert.resolved_at) : now) - Date.parse(alert.created_at)) / 1000;
    const row = el("tr", {
      "data-alert-id": alert.id,
      class: [urgent(alert) ? "urgent" : "", alert.id === selected ? "selected" : ""].join(" ").trim(),
      on: { click: () => { window.location.hash = `#alert/${alert.id}`; } },
    },
    el("td", {}, `#${alert.id}`), el("td", { class: `sev-${alert.severity}` }, t(alert.severity)),
    el("td", {}, t(alert.code)), el("td", {}, alert.resident ?? alert.home_id),
    el("td", {}, alert.community ?? ""), el("td", { class: "age", "data-created": alert.created_at }, duration(waited)),
    el("td", { class: `st-${alert.status}` }, t(alert.status)),
    el("td", {}, alert.notifications.map((n) => `${t(n.channel)} ${t(n.status)}`).join(", ") || "—"),
    el("td", {}, ack));
    return row;
  }));
  document.getElementById("empty").hidden = alerts.length > 0;
}

function tickAges() {
  document.querySelectorAll("#alerts tr").forEach((row) => {
    const alert = alerts.find((a) => String(a.id) === row.dataset.alertId);
    const cell = row.querySelector("td.age");
    if (alert && cell && !alert.resolved_at) cell.textContent = duration((Date.now() - Date.parse(alert.created_at)) / 1000);
  });
}

async function refreshQueue() {
  alerts = await api("/api/v1/alerts");
  renderQueue();
  if (selected !== null) await showDetail(selected);
}

async function acknowledge(id) {
  await post(`/api/v1/alerts/${id}/ack`);
  await refreshQueue();
}

// --- audible cue -----------------------------------------------------------------------------

let audio = null;
function beep() {
  if (!soundOn || !alerts.some(urgent)) return;
  audio = audio || new AudioContext();
  if (audio.state === "suspended") audio.resume();
  const oscillator = audio.createOscillator();
  const gain = audio.createGain();
  oscillator.frequency.value = 880;
  gain.gain.setValueAtTime(0.2, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.6);
  oscillator.connect(gain).connect(audio.destination);
  oscillator.start();
  oscillator.stop(audio.currentTime + 0.6);
}

// --- alert detail ----------------------------------------------------------------------------

function residentBlock(alert) {
  const home = alert.home;
  if (!home) return el("p", { class: "muted" }, alert.home_id);
  return el("div", { class: "resident" },
    home.residents.map((r) => el("p", {}, el("strong", {}, r.name),
      r.age ? ` · ${r.age} ${t("age")}` : "", ` · ${t("conditions")}: ${r.conditions.join("、") || t("none")}`)),
    el("p", {}, `${t("address")}: ${home.address || "—"} (${home.community})`),
    el("p", { class: "access" }, `${t("access_notes")}: ${home.access_notes || t("none")}`),
    home.away ? el("p", { class: "away" }, `${t("is_away")} ${home.away.until ? `${t("until")} ${fmt(home.away.until)}` : ""} ${home.away.reason}`) : null);
}

function whatHappened(alert) {
  const evidence = Object.entries(alert.evidence).map(([key, value]) =>
    el("li", {}, `${t(`ev_${key}`)}: ${typeof value === "string" ? t(value) : value}`));
  return el("div", {},
    el("p", { class: "cause" }, `${alert.resident ?? alert.home_id} ${alert.cause[lang]}${lang === "zh-CN" ? "，" : ", "}${fmt(alert.first_ts)}`),
    el("p", { class: "muted" }, alert.summary),
    el("h4", {}, t("evidence")), el("ul", { class: "evidence" }, evidence));
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function chart(activity, alert) {
  const width = 640, laneHeight = 52, left = 110, series = ["water_l", "gas_m3", "steps"];
  const colors = { water_l: "#1c7ed6", gas_m3: "#e8590c", steps: "#2b8a3e" };
  const from = Date.parse(activity.from), until = Date.parse(activity.until);
  const x = (ms) => left + ((ms - from) / (until - from)) * (width - left - 10);
  const barWidth = Math.max(1, (width - left - 10) / (24 * 4) - 1);
  const root = svg("svg", { viewBox: `0 0 ${width} ${laneHeight * 3 + 24}`, class: "chart", role: "img" });
  series.forEach((name, lane) => {
    const top = lane * laneHeight + 4;
    const max = Math.max(...activity.buckets.map((b) => b[name]), 0);
    root.append(svg("text", { x: 0, y: top + 20, class: "label" }, t(name)),
      svg("text", { x: 0, y: top + 36, class: "scale" }, max ? `max ${Math.round(max * 100) / 100}` : t("no_data")),
      svg("line", { x1: left, x2: width - 10, y1: top + 44, y2: top + 44, class: "axis" }));
    activity.buckets.forEach((bucket) => {
      if (!max || !bucket[name]) return;
      const height = (bucket[name] / max) * 40;
      root.append(svg("rect", {
        x: x(Date.parse(bucket.start)), y: top + 44 - height, width: barWidth, height, fill: colors[name],
      }));
    });
  });
  for (let h = 0; h <= 24; h += 6) {
    const ms = from + h * 3600e3;
    root.append(svg("text", { x: x(ms) - 14, y: laneHeight * 3 + 18, class: "scale" }, fmt(new Date(ms).toISOString(), false).slice(0, 5)));
  }
  const onset = Date.parse(alert.first_ts);
  if (onset >= from && onset <= until) {
    root.append(svg("line", { x1: x(onset), x2: x(onset), y1: 0, y2: laneHeight * 3, class: "anomaly" }),
      svg("text", { x: x(onset) - 4, y: 12, class: "anomaly-label", "text-anchor": "end" }, t("anomaly")));
  }
  return root;
}

function escalation(alert) {
  const notes = alert.notifications.map((n) => [
    t(n.channel), n.recipient, t(n.status), n.sent_at ? fmt(n.sent_at) : "—", n.last_error ?? ""]);
  const audit = alert.audit.map((entry) => el("li", {},
    `${fmt(entry.at)} · ${t(`${entry.action}_a`) !== `${entry.action}_a` ? t(`${entry.action}_a`) : t(entry.action)}`,
    entry.actor ? ` · ${entry.actor}` : ` · ${entry.source}`,
    entry.detail.outcome ? ` · ${t(entry.detail.outcome)}` : "",
    entry.detail.text ? ` · “${entry.detail.text}”` : ""));
  return el("div", {},
    table([t("kind"), t("phone"), t("status"), t("sent"), ""], notes, { class: "notifications" }),
    el("ul", { class: "audit" }, audit));
}

function actions(alert) {
  const act = (fn) => async (event) => { event.preventDefault(); await fn(event); await refreshQueue(); };
  const responders = alert.home ? alert.home.responders : [];
  const who = el("select", { name: "responder" }, responders.map((r) =>
    el("option", { value: r.id }, `${r.name} (${r.relation}) ${r.phone}`)));
  const noteText = el("textarea", { name: "note", rows: 2, placeholder: t("note_placeholder") });
  const outcome = el("select", { name: "outcome" }, ["resident_ok", "false_alarm", "visited", "ambulance_called",
    "hospitalised", "deceased"].map((o) => el("option", { value: o }, t(o))));
  const until = el("input", { type: "datetime-local", name: "until" });
  const reason = el("input", { name: "reason", placeholder: t("away_reason") });
  const away = alert.home && alert.home.away;
  const closed = alert.status === "resolved";
  return el("div", { class: "actions" },
    el("div", {}, el("button", { class: "ack", disabled: alert.status !== "open", on: { click: act(() => post(`/api/v1/alerts/${alert.id}/ack`)) } }, t("ack")),
      el("button", { class: "arrived", disabled: closed || Boolean(alert.arrived_at), on: { click: act(() => post(`/api/v1/alerts/${alert.id}/arrived`)) } }, t("arrived"))),
    el("div", {}, who, el("button", { class: "call", disabled: !responders.length, on: { click: act(() => post(`/api/v1/alerts/${alert.id}/call`, { responder_id: Number(who.value) })) } }, t("call"))),
    el("div", {}, noteText, el("button", { class: "note", on: { click: act(() => noteText.value.trim() && post(`/api/v1/alerts/${alert.id}/notes`, { text: noteText.value.trim() })) } }, t("note"))),
    el("div", {}, away
      ? el("button", { class: "back", on: { click: act(() => api(`/api/v1/homes/${alert.home_id}/away`, { method: "DELETE" })) } }, t("declare_back"))
      : [el("label", {}, t("away_until"), until), reason,
        el("button", { class: "away", on: { click: act(() => post(`/api/v1/homes/${alert.home_id}/away`, {
          until: until.value ? new Date(until.value).toISOString() : null, reason: reason.value,
        })) } }, t("declare_away"))]),
    el("div", {}, outcome, el("button", { class: "resolve", disabled: closed, on: { click: act(() => post(`/api/v1/alerts/${alert.id}/resolve`, { outcome: outcome.value, note: noteText.value.trim() || null })) } }, t("resolve"))));
}

async function showDetail(id) {
  const section = document.getElementById("detail");
  const alert = await api(`/api/v1/alerts/${id}`);
  const activity = await api(`/api/v1/homes/${alert.home_id}/activity?hours=24`);
  section.replaceChildren(
    el("h2", {}, `#${alert.id} ${t(alert.code)} · `, el("span", { class: `sev-${alert.severity}` }, t(alert.severity)),
      " · ", el("span", { class: `st-${alert.status}` }, t(alert.status))),
    residentBlock(alert),
    el("h3", {}, t("what_happened")), whatHappened(alert),
    el("h3", {}, t("chart")), chart(activity, alert),
    el("h3", {}, t("escalation")), escalation(alert),
    el("h3", {}, t("actions")), actions(alert));
  section.hidden = false;
}

// --- registry --------------------------------------------------------------------------------

async function showRegistry() {
  const data = await api("/api/v1/registry");
  const homes = data.homes;
  const kindOf = (k) => t(k);
  document.getElementById("registry").replaceChildren(
    el("div", { class: "panel" }, el("h2", {}, t("homes")), table([t("home"), t("address"), t("community"), t("residents"), t("access_notes"), t("away")],
      homes.map((h) => [h.id, h.address, `${h.street} / ${h.community}`,
        h.residents.map((r) => `${r.name}${r.age ? ` (${r.age})` : ""}`).join("、"), h.access_notes || "—",
        h.away ? `${t("is_away")} ${h.away.until ? fmt(h.away.until) : ""}` : "—"]), { id: "homes" })),
    el("div", { class: "panel" }, el("h2", {}, t("devices")), table([t("home"), "ID", t("kind"), t("last_seen"), t("battery"), t("status")],
      homes.flatMap((h) => h.devices.map((d) => [h.id, d.id, kindOf(d.kind), d.last_seen ? fmt(d.last_seen) : t("never"),
        d.battery_pct === null ? "—" : `${Math.round(d.battery_pct)}%`,
        el("span", { class: d.offline ? "bad" : "good" }, t(d.offline ? "offline_s" : "online_s"))])), { id: "devices" })),
    el("div", { class: "panel" }, el("h2", {}, t("responders")), table([t("home"), t("position"), t("name"), t("relation"), t("phone"), t("language")],
      homes.flatMap((h) => h.responders.map((r, i) => [h.id, i + 1, r.name, r.relation, r.phone, r.language])), { id: "responders" })),
    el("div", { class: "panel" }, el("h2", {}, t("policies")), el("p", { class: "muted" }, t("policy_default")),
      table([t("home"), t("policies")], homes.map((h) => [h.id, h.responders.length ? `1. ${t("sms")} → ${h.responders[0].name}` : t("no_responder")]))));
}

async function importFile(event) {
  event.preventDefault();
  const input = document.getElementById("import-file");
  const form = new FormData();
  form.append("file", input.files[0]);
  const box = document.getElementById("import-result");
  try {
    const result = await api("/api/v1/registry/import", { method: "POST", body: form });
    box.replaceChildren(result.errors.length
      ? el("div", { class: "import-errors" }, el("p", { class: "error" }, t("import_failed")),
        table([t("row"), t("field"), t("problem")], result.errors.map((e) => [e.row, e.field, e.message])))
      : el("p", { class: "good" }, `${t("imported")}${result.imported}`));
    if (!result.errors.length) await showRegistry();
  } catch (error) {
    box.replaceChildren(el("p", { class: "error" }, error instanceof Forbidden ? t("forbidden") : String(error)));
  }
}

// --- dashboard -------------------------------------------------------------------------------

async function showDashboard() {
  const box = document.getElementById("dashboard");
  let data;
  try {
    data = await api("/api/v1/dashboard?days=7");
  } catch (error) {
    if (!(error instanceof Forbidden)) throw error;
    box.replaceChildren(el("p", { class: "error forbidden" }, t("forbidden")));
    return;
  }
  const pct = (v) => (v === null ? "—" : `${Math.round(v * 100)}%`);
  box.replaceChildren(el("h2", {}, t("dash_title")),
    table([t("community"), t("open_n"), t("alerts_n"), t("ack_p50"), t("ack_p90"), t("ack_max"), t("sent_p50"), t("within60"), t("within180"), t("devices_offline")],
      data.communities.map((c) => [c.community || t("all"), el("strong", { class: c.open ? "bad" : "" }, c.open), c.alerts,
        duration(c.ack_p50_s), duration(c.ack_p90_s), duration(c.ack_max_s), duration(c.sent_p50_s),
        pct(c.acked_within_60s), pct(c.acked_within_180s), `${c.devices_offline} / ${c.devices}`]), { id: "dashboard-table" }));
}

// --- routing and live updates ----------------------------------------------------------------

async function route() {
  const hash = window.location.hash || "#queue";
  const match = hash.match(/^#alert\/(\d+)$/);
  const view = match ? "queue" : hash.slice(1);
  selected = match ? Number(match[1]) : null;
  document.querySelectorAll(".view").forEach((node) => { node.hidden = node.id !== `view-${view}`; });
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === view));
  if (view === "queue") {
    renderQueue();
    if (selected === null) document.getElementById("detail").hidden = true;
    else await showDetail(selected);
  } else if (view === "registry") await showRegistry();
  else if (view === "dashboard") await showDashboard();
}

function listen() {
  const live = document.getElementById("live");
  const events = new EventSource("/api/v1/alerts/events");
  events.addEventListener("change", () => {
    live.textContent = t("live");
    live.dataset.i18n = "live";
    live.classList.add("on");
    refreshQueue().catch(console.error);
  });
  events.onerror = () => { live.textContent = t("offline"); live.dataset.i18n = "offline"; live.classList.remove("on"); };
}

document.getElementById("lang").addEventListener("click", () => {
  lang = lang === "zh-CN" ? "en" : "zh-CN";
  localStorage.setItem("carebed-lang", lang);
  applyLanguage();
  route().catch(console.error);
});
document.getElementById("sound").addEventListener("click", () => {
  soundOn = !soundOn;
  localStorage.setItem("carebed-sound", soundOn ? "on" : "off");
  applyLanguage();
});
document.getElementById("import-form").addEventListener("submit", importFile);
window.addEventListener("hashchange", () => route().catch(console.error));

applyLanguage();
route().catch(console.error);
listen();
setInterval(tickAges, 1000);
setInterval(beep, 4000);
