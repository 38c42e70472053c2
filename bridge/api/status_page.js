// The status page's live part: refresh the figures, "sync now", "work offline", and
// confirming mailboxes emptied on the server.
"use strict";
(function () {
  const CLASSES = {
    online: "ok", syncing: "busy", offline: "off", "local-only": "off",
    "auth-failed": "bad", error: "bad",
  };
  const $ = (id) => document.getElementById(id);
  const note = (text) => { $("note").textContent = text; };

  function when(epoch) {
    return typeof epoch === "number" ? new Date(epoch * 1000).toLocaleString() : "never";
  }

  function show(s) {
    const state = $("state");
    state.textContent = s.state;
    state.className = "dot " + (CLASSES[s.state] || "off");
    $("message").textContent = s.message || "";
    $("last_sync").textContent = when(s.last_sync);
    $("journal_pending").textContent = String(s.journal_pending || 0);
    if (s.outbox && $("outbox")) $("outbox").textContent = String(s.outbox.queued || 0);
    const button = $("offline");
    button.dataset.offline = String(Boolean(s.work_offline));
    button.textContent = s.work_offline ? "Work online" : "Work offline";
    document.title = "kbridge: " + s.state;
  }

  async function call(method, path, body) {
    const init = { method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || response.statusText);
    return data;
  }

  async function refresh() {
    try {
      show(await call("GET", "/api/v1/sync/status"));
    } catch (err) {
      note("cannot reach the bridge: " + err.message);
    }
  }

  $("sync").addEventListener("click", async () => {
    try { show(await call("POST", "/api/v1/sync/run")); note("sync started"); }
    catch (err) { note(err.message); }
  });
  $("offline").addEventListener("click", async () => {
    const offline = $("offline").dataset.offline !== "true";
    try { show(await call("POST", "/api/v1/sync/offline", { offline })); note(""); }
    catch (err) { note(err.message); }
  });
  const confirm = $("confirm_empty");
  if (confirm) {
    confirm.addEventListener("click", async () => {
      const mailboxes = JSON.parse(confirm.dataset.mailboxes || "[]");
      try {
        await call("POST", "/api/v1/sync/confirm-empty", { mailboxes });
        confirm.disabled = true;
        note("confirmed: " + mailboxes.join(", ") + " will be emptied here too");
      } catch (err) { note(err.message); }
    });
  }
  setInterval(refresh, 3000);
})();
