// dtredis dashboard: live updates of the overview from /events (server-sent events).
// Values are written with textContent only, never as HTML.
"use strict";

function points(values, max) {
  const n = Math.max(values.length, 2) - 1;
  return values.map((v, i) => (i * 120 / n).toFixed(1) + "," + (24 - v / max * 22).toFixed(1)).join(" ");
}

function updateRow(row) {
  document.querySelectorAll("[data-stream]").forEach((el) => {
    if (el.dataset.stream !== row.name) return;
    const field = el.dataset.field;
    if (field) {
      let value = row[field];
      if (field.endsWith("_rate")) value = Number(value).toFixed(1);
      const target = el.querySelector("a") || el;
      if (target.textContent !== String(value)) target.textContent = String(value);
    } else if (el.dataset.spark !== undefined) {
      const max = Math.max(1, ...row.in_history, ...row.out_history);
      el.querySelector("polyline.in").setAttribute("points", points(row.in_history, max));
      el.querySelector("polyline.out").setAttribute("points", points(row.out_history, max));
    }
  });
}

function start() {
  if (!document.getElementById("streams") || !window.EventSource) return;
  const page = new URLSearchParams(location.search).get("page") || "1";
  const live = document.getElementById("live");
  const source = new EventSource("/events?page=" + encodeURIComponent(page));
  source.addEventListener("overview", (event) => {
    const data = JSON.parse(event.data);
    data.streams.forEach(updateRow);
    if (data.server) {
      document.querySelectorAll("[data-server]").forEach((el) => {
        el.textContent = String(data.server[el.dataset.server]);
      });
    }
    if (live) live.textContent = data.error ? "live (error: " + data.error + ")" : "live · " + new Date().toLocaleTimeString();
  });
  source.onerror = () => { if (live) live.textContent = "disconnected, retrying"; };
}

document.addEventListener("DOMContentLoaded", start);
