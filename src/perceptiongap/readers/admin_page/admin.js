// The admin page: progress per reader, link reissue. Data from /api/admin/* (same origin, cookie).
"use strict";

function cell(row, text, number) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (number) td.className = "number";
  row.appendChild(td);
}

function seconds(value) {
  return value === null ? null : value.toFixed(1);
}

async function reissue(reader) {
  if (!window.confirm(`Issue a new link for ${reader}? Their current link will stop working.`)) return;
  const reply = await fetch(`/api/admin/readers/${encodeURIComponent(reader)}/link`, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: "{}",
  });
  const out = document.getElementById("newlink");
  if (!reply.ok) { out.textContent = `Could not issue a link (${reply.status}).`; return; }
  const data = await reply.json();
  out.textContent = `New link for ${data.reader} (shown once): ${data.link}`;
  load();
}

async function load() {
  const reply = await fetch("/api/admin/progress");
  const summary = document.getElementById("summary");
  if (reply.status === 401 || reply.status === 403) {
    summary.textContent = "Open the admin link again to sign in.";
    return;
  }
  if (!reply.ok) { summary.textContent = `The server answered ${reply.status}.`; return; }
  const data = await reply.json();
  document.getElementById("title").textContent = `Reader study: ${data.study.title}`;
  summary.textContent = `${data.study.mode} study (${data.study.design}), ${data.study.readers} readers, ` +
    `${data.study.exams} exams, ${data.study.practice} practice; ${data.missing_readings} readings to go.`;
  const body = document.querySelector("#progress tbody");
  body.replaceChildren();
  for (const reader of data.readers) {
    const row = document.createElement("tr");
    cell(row, reader.id); cell(row, reader.name);
    cell(row, `${reader.done} / ${reader.total}`, true);
    cell(row, `${reader.practice_done} / ${reader.practice_total}`, true);
    cell(row, seconds(reader.median_seconds), true); cell(row, seconds(reader.median_active_seconds), true);
    cell(row, reader.last_activity);
    const td = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button"; button.textContent = "New link";
    button.addEventListener("click", () => reissue(reader.id));
    td.appendChild(button); row.appendChild(td);
    body.appendChild(row);
  }
}

document.addEventListener("DOMContentLoaded", () => { load(); setInterval(load, 30000); });
