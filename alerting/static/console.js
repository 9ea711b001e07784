"use strict";

const TEXT = {
  "zh-CN": {
    title: "告警队列", connecting: "连接中…", live: "实时", offline: "已断开，重连中…", logout: "退出",
    time: "时间", resident: "老人", cause: "原因", severity: "级别", status: "状态", count: "次数",
    sms: "短信", ack: "确认", empty: "当前没有告警。", notifications: "通知", audit: "记录",
    sos: "SOS 呼叫", fall: "跌倒", gas_alarm: "燃气报警", co_alarm: "一氧化碳报警", water_leak: "漏水",
    device_offline: "设备离线", critical: "紧急", high: "高", medium: "中", low: "低",
    open: "待处理", acknowledged: "已确认", resolved: "已解决",
    pending: "待发送", sending: "发送中", sent: "已发送", dry_run: "未发送（演示）", failed: "失败",
  },
  en: {
    title: "Alert queue", connecting: "connecting…", live: "live", offline: "disconnected, retrying…", logout: "Sign out",
    time: "Time", resident: "Resident", cause: "Cause", severity: "Severity", status: "Status", count: "Count",
    sms: "SMS", ack: "Acknowledge", empty: "No alerts right now.", notifications: "Notifications", audit: "History",
    sos: "SOS call", fall: "Fall", gas_alarm: "Gas alarm", co_alarm: "CO alarm", water_leak: "Water leak",
    device_offline: "Device offline", critical: "critical", high: "high", medium: "medium", low: "low",
    open: "open", acknowledged: "acknowledged", resolved: "resolved",
    pending: "pending", sending: "sending", sent: "sent", dry_run: "not sent (dry run)", failed: "failed",
  },
};

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const timeZone = document.querySelector('meta[name="timezone"]').content;
let lang = localStorage.getItem("carebed-lang") || "zh-CN";
let selected = null;

const t = (key) => TEXT[lang][key] ?? key;
const fmt = (iso) => new Intl.DateTimeFormat(lang, {
  timeZone, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
}).format(new Date(iso));

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function applyLanguage() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.getElementById("lang").textContent = lang === "zh-CN" ? "EN" : "中文";
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options, headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" }, credentials: "same-origin",
  });
  if (response.status === 401) { window.location = "/login"; throw new Error("login required"); }
  if (!response.ok) throw new Error(`${response.status} ${path}`);
  return response.json();
}

async function refresh() {
  const alerts = await api("/api/v1/alerts");
  const tbody = document.querySelector("#alerts tbody");
  tbody.replaceChildren(...alerts.map((alert) => {
    const tr = document.createElement("tr");
    tr.dataset.alertId = alert.id;
    if (alert.status === "open" && alert.severity === "critical") tr.className = "urgent";
    tr.append(
      cell(`#${alert.id}`), cell(fmt(alert.first_ts)), cell(alert.resident ?? alert.home_id),
      cell(t(alert.code)), cell(t(alert.severity), `sev-${alert.severity}`),
      cell(t(alert.status), `st-${alert.status}`), cell(String(alert.finding_count)),
      cell(alert.notifications.map((n) => t(n.status)).join(", ") || "—"), cell(""),
    );
    if (alert.status === "open") {
      const button = document.createElement("button");
      button.textContent = t("ack");
      button.addEventListener("click", async (event) => {
        event.stopPropagation();
        await api(`/api/v1/alerts/${alert.id}/ack`, { method: "POST" });
      });
      tr.lastChild.append(button);
    }
    tr.addEventListener("click", () => { selected = alert.id; showDetail(); });
    return tr;
  }));
  document.getElementById("empty").hidden = alerts.length > 0;
  if (selected !== null) await showDetail();
}

async function showDetail() {
  const alert = await api(`/api/v1/alerts/${selected}`);
  const section = document.getElementById("detail");
  const h2 = document.createElement("h2");
  h2.textContent = `#${alert.id} ${t(alert.code)} · ${alert.resident ?? alert.home_id}`;
  const summary = document.createElement("p");
  summary.textContent = alert.summary;
  const h3n = document.createElement("h3");
  h3n.textContent = t("notifications");
  const notes = alert.notifications.map((n) => {
    const pre = document.createElement("pre");
    pre.textContent = `${n.channel.toUpperCase()} → ${n.recipient} · ${t(n.status)}\n${n.body}`;
    return pre;
  });
  const h3a = document.createElement("h3");
  h3a.textContent = t("audit");
  const list = document.createElement("ul");
  list.append(...alert.audit.map((entry) => {
    const li = document.createElement("li");
    li.textContent = `${fmt(entry.at)} · ${entry.action} · ${entry.source}${entry.actor ? " · " + entry.actor : ""}`;
    return li;
  }));
  section.replaceChildren(h2, summary, h3n, ...notes, h3a, list);
  section.hidden = false;
}

function listen() {
  const live = document.getElementById("live");
  const events = new EventSource("/api/v1/alerts/events");
  events.addEventListener("change", () => {
    live.textContent = t("live");
    live.classList.add("on");
    refresh().catch(console.error);
  });
  events.onerror = () => { live.textContent = t("offline"); live.classList.remove("on"); };
}

document.getElementById("lang").addEventListener("click", () => {
  lang = lang === "zh-CN" ? "en" : "zh-CN";
  localStorage.setItem("carebed-lang", lang);
  applyLanguage();
  refresh().catch(console.error);
});

applyLanguage();
listen();
