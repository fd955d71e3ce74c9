// Documents: uploads sent one file at a time with a progress bar each, then each new
// document's index status followed until it is indexed or failed. Without this script the
// upload form posts all files at once and the list shows what was accepted or refused.
"use strict";

(() => {
  const POLL_MS = 1000;
  const SETTLED = new Set(["indexed", "failed"]);

  const el = (tag, attrs = {}, text = "") => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text) node.textContent = text;
    return node;
  };

  const setBadge = (badge, status) => {
    badge.textContent = status;
    badge.className = `badge ${status}`;
  };

  // Follow a document's index status until it settles; onChange(status, body) each time.
  const follow = (url, onChange) => {
    let last = null;
    const tick = async () => {
      let body;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!response.ok) return;
        body = await response.json();
      } catch (_) {
        window.setTimeout(tick, POLL_MS * 3);
        return;
      }
      if (body.index_status !== last) {
        last = body.index_status;
        onChange(last, body);
      }
      if (!SETTLED.has(last)) window.setTimeout(tick, POLL_MS);
    };
    tick();
  };

  const send = (form, file, row) =>
    new Promise((resolve) => {
      const data = new FormData();
      data.append("files", file, file.name);
      const tags = form.querySelector('[name="tags"]');
      if (tags && tags.value) data.append("tags", tags.value);
      const xhr = new XMLHttpRequest();
      const bar = row.querySelector("progress");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) bar.value = Math.round((event.loaded / event.total) * 100);
      });
      xhr.addEventListener("load", () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
        resolve({ status: xhr.status, body });
      });
      xhr.addEventListener("error", () => resolve({ status: 0, body: {} }));
      xhr.open("POST", form.action);
      xhr.setRequestHeader("x-csrftoken", Console.csrf());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.send(data);
    });

  const show = (row, result, name) => {
    const message = row.querySelector(".message");
    const item = (result.body.results || [])[0];
    if (!item) {
      message.textContent = `${name}: ${result.body.detail || result.body.message || "the upload failed"} (HTTP ${result.status || "error"})`;
      message.className = "message error";
      return;
    }
    if (!item.ok) {
      message.textContent = `${item.name}: ${item.error}`;
      message.className = "message error";
      return;
    }
    row.querySelector("progress").value = 100;
    message.textContent = "";
    const link = el("a", { href: item.href }, item.title);
    const badge = el("span", { class: `badge ${item.index_status}`, "data-upload-status": item.id }, item.index_status);
    message.append(link, " ", badge, item.deduplicated ? " (already stored)" : "");
    follow(item.status_url, (status, body) => {
      setBadge(badge, status);
      if (status === "failed" && body.index_error) badge.title = body.index_error;
    });
  };

  const form = document.getElementById("upload");
  const list = document.getElementById("uploads");
  if (form && list) {
    form.addEventListener("submit", async (event) => {
      const input = form.querySelector('input[type="file"]');
      if (!input || !input.files.length) return;
      event.preventDefault();
      const files = Array.from(input.files);
      const rows = files.map((file) => {
        const row = el("li", { class: "upload-item" });
        row.append(
          el("span", { class: "name" }, file.name),
          el("progress", { max: "100", value: "0", "aria-label": `Uploading ${file.name}` }),
          el("span", { class: "message", role: "status" }, "waiting"),
        );
        list.append(row);
        return row;
      });
      for (let i = 0; i < files.length; i += 1) {
        rows[i].querySelector(".message").textContent = "uploading…";
        show(rows[i], await send(form, files[i], rows[i]), files[i].name);
      }
      form.reset();
      if (!list.querySelector(".refresh")) {
        const again = el("li", { class: "refresh" });
        again.append(el("a", { href: window.location.pathname }, "Show the list with them"));
        list.append(again);
      }
    });
  }

  // Badges of documents still pending on the page follow their status too; the document's
  // own page reloads once it settles, to show its chunks (or why it failed).
  for (const badge of document.querySelectorAll("[data-status-of]")) {
    if (SETTLED.has(badge.textContent.trim())) continue;
    const reload = badge.hasAttribute("data-reload-when-settled");
    follow(`/console/documents/${badge.dataset.statusOf}/status`, (status) => {
      setBadge(badge, status);
      if (reload && SETTLED.has(status)) window.location.reload();
    });
  }
})();
