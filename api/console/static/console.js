// SorAPI console: plain JavaScript, no build step. Every figure comes from the public API, called with
// the pasted key (kept in sessionStorage only). Text from the API is always set as text, never as HTML.
"use strict";

(() => {
  const KEY = "sorapi.console.key";
  const config = JSON.parse(document.getElementById("console-config").textContent);
  const page = document.body.dataset.page;
  const $ = (id) => document.getElementById(id);
  const apiKey = () => sessionStorage.getItem(KEY) || "";

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const error = (body && body.error) || {};
      super(error.message || `HTTP ${status}`);
      this.status = status;
      this.code = error.code || "";
      this.details = error.details || [];
      this.retryAfter = retryAfter;
    }
  }

  async function api(path, { method = "GET", body, key = apiKey(), allow401 = false } = {}) {
    const headers = { Authorization: `Bearer ${key}`, Accept: "application/json" };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const answer = await fetch(path, init);
    const text = await answer.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (answer.status === 401 && !allow401) signOut("Your key was refused (invalid or revoked): sign in again.");
    if (!answer.ok) throw new ApiError(answer.status, data, answer.headers.get("Retry-After"));
    return data;
  }

  // ---- small DOM helpers -------------------------------------------------------------------------
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
  const bytes = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`);
  const badge = (status) => el("span", { className: `badge s-${status}`, text: status });
  const taskLink = (id) => el("a", { href: `/console/tasks/${encodeURIComponent(id)}` }, el("code", { text: id }));
  const labels = (metadata) =>
    Object.entries(metadata || {})
      .map(([k, v]) => `${k}=${v}`)
      .join(", ");

  function show(node, message) {
    node.textContent = message;
    node.hidden = !message;
  }
  function explain(error) {
    if (!(error instanceof ApiError)) return `The API could not be reached (${error.message}).`;
    const wait = error.retryAfter ? ` Retry in ${error.retryAfter} s.` : "";
    return `${error.message} (${error.code || error.status}).${wait}`;
  }
  function parseLabels(text, separator) {
    // "k=v" items → object; throws a message naming the bad item.
    const found = {};
    for (const raw of text.split(separator)) {
      const item = raw.trim();
      if (!item) continue;
      const at = item.indexOf("=");
      if (at <= 0) throw new Error(`"${item}" is not key=value`);
      found[item.slice(0, at).trim()] = item.slice(at + 1).trim();
    }
    return found;
  }

  // ---- session -------------------------------------------------------------------------------------
  function signOut(message) {
    sessionStorage.removeItem(KEY);
    if (message) sessionStorage.setItem("sorapi.console.notice", message);
    const next = location.pathname + location.search;
    location.assign(`/console/sign-in?next=${encodeURIComponent(next)}`);
  }
  function safeNext() {
    const next = new URLSearchParams(location.search).get("next") || "/console";
    return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/console";
  }
  function header() {
    const key = apiKey();
    if (!key) return;
    $("session-key").textContent = `Key ${key.slice(0, 14)}…`;
    $("sign-out").hidden = false;
    $("sign-out").addEventListener("click", () => signOut(""));
  }

  // ---- sign-in ---------------------------------------------------------------------------------------
  function signInPage() {
    const notice = sessionStorage.getItem("sorapi.console.notice");
    sessionStorage.removeItem("sorapi.console.notice");
    if (notice) show($("err-key"), notice);
    $("sign-in-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = $("f-key").value.trim();
      if (!key) return fieldError("key", "Paste your API key.");
      try {
        await api("/api/credits", { key, allow401: true });
      } catch (error) {
        // 403: a valid key without the `read` scope; it may still generate.
        if (!(error instanceof ApiError && error.status === 403)) {
          return fieldError("key", error.status === 401 ? "This key is invalid or revoked." : explain(error));
        }
      }
      sessionStorage.setItem(KEY, key);
      location.assign(safeNext());
    });
  }
  function fieldError(name, message) {
    const box = $(`err-${name}`);
    const input = $(`f-${name}`);
    show(box, message);
    if (input) input.setAttribute("aria-invalid", "true");
    if (input) input.focus();
  }

  // ---- new video -------------------------------------------------------------------------------------
  const FIELDS = [
    "prompt",
    "model_version",
    "duration",
    "resolution",
    "aspect_ratio",
    "guidance",
    "seed",
    "negative_prompt",
    "metadata",
    "callback_url",
    "idempotency_key",
  ];
  function clearErrors() {
    for (const name of FIELDS) {
      show($(`err-${name}`), "");
      $(`f-${name}`).removeAttribute("aria-invalid");
    }
    show($("form-error"), "");
  }
  function showErrors(details, fallback) {
    const loose = [];
    for (const detail of details) {
      const name = String(detail.field || "").split(/[.[]/)[0];
      const box = FIELDS.includes(name) ? $(`err-${name}`) : null;
      if (!box) {
        loose.push(`${detail.field}: ${detail.message}`);
        continue;
      }
      show(box, box.hidden ? detail.message : `${box.textContent} ${detail.message}`);
      $(`f-${name}`).setAttribute("aria-invalid", "true");
    }
    if (loose.length || (!details.length && fallback)) show($("form-error"), [fallback, ...loose].filter(Boolean).join(" "));
  }
  function readForm() {
    // The generate body as the API takes it; throws [{field, message}] for what cannot be sent at all.
    const value = (name) => $(`f-${name}`).value;
    const problems = [];
    const number = (name) => {
      const input = $(`f-${name}`);
      if (input.validity.badInput) problems.push({ field: name, message: "Enter a number." });
      return input.value === "" ? undefined : Number(input.value);
    };
    const text = (name) => (value(name).trim() === "" ? undefined : value(name));
    let metadata;
    try {
      const parsed = parseLabels(value("metadata"), /\n/);
      metadata = Object.keys(parsed).length ? parsed : undefined;
    } catch (error) {
      problems.push({ field: "metadata", message: `${error.message}: write one key=value per line.` });
    }
    const body = {
      prompt: value("prompt"),
      model_version: value("model_version"),
      duration: number("duration"),
      resolution: text("resolution"),
      aspect_ratio: text("aspect_ratio"),
      guidance: number("guidance"),
      seed: number("seed"),
      negative_prompt: text("negative_prompt"),
      metadata,
      callback_url: text("callback_url"),
      idempotency_key: text("idempotency_key"),
    };
    if (problems.length) throw problems;
    return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
  }

  function newVideoPage() {
    const form = $("generate-form");
    const quote = $("quote");
    let timer = 0;
    let asked = 0;
    const modelHint = () => {
      const model = config.models.find((m) => m.name === $("f-model_version").value);
      if (!model) return;
      $("f-duration").max = String(model.max_duration_s);
      $("hint-duration").textContent =
        `Longer clips cost more. ${model.name} renders up to ${model.max_duration_s} s` +
        (model.resolutions.length ? ` at ${model.resolutions.join(", ")}.` : ".");
    };
    async function requote() {
      const mine = ++asked;
      let body;
      try {
        body = readForm();
      } catch (problems) {
        clearErrors();
        showErrors(problems);
        quote.textContent = "—";
        return;
      }
      if (!body.prompt || !body.prompt.trim()) body.prompt = "price quote"; // the prompt changes no price
      try {
        const price = await api("/api/credits/estimate", { method: "POST", body });
        if (mine !== asked) return;
        clearErrors();
        const afford = price.affordable ? `${price.available} available` : `only ${price.available} available`;
        quote.textContent =
          `${price.credits} credits — ${price.duration} s at ${price.resolution} (${price.tier}), ` +
          `${price.credits_per_second}/s × ${price.credit_multiplier}; ${afford}`;
        quote.dataset.credits = String(price.credits);
      } catch (error) {
        if (mine !== asked) return;
        clearErrors();
        quote.textContent = "—";
        delete quote.dataset.credits;
        if (error instanceof ApiError && error.status === 422) showErrors(error.details.filter((d) => d.field !== "prompt"));
        else show($("form-error"), explain(error));
      }
    }
    const later = () => {
      clearTimeout(timer);
      timer = setTimeout(requote, 300);
    };
    form.addEventListener("input", later);
    form.addEventListener("change", () => {
      modelHint();
      later();
    });
    modelHint();
    requote();

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearTimeout(timer);
      asked++; // a quote still in flight must not wipe what the submit finds
      clearErrors();
      let body;
      try {
        body = readForm();
      } catch (problems) {
        showErrors(problems);
        return focusFirstError();
      }
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const created = await api("/api/generate", { method: "POST", body });
        location.assign(`/console/tasks/${encodeURIComponent(created.task_id)}`);
      } catch (error) {
        button.disabled = false;
        if (error instanceof ApiError && error.status === 422) showErrors(error.details, error.message);
        else show($("form-error"), explain(error));
        focusFirstError();
      }
    });
  }
  function focusFirstError() {
    const first = document.querySelector("[aria-invalid=true]");
    if (first) first.focus();
    else if (!$("form-error").hidden) $("form-error").focus?.();
  }

  // ---- one task ---------------------------------------------------------------------------------------
  function taskPage() {
    const id = document.body.dataset.taskId;
    const path = `/api/tasks/${encodeURIComponent(id)}`;
    const shown = new Set();
    let percent = 0;
    let lastEventId = 0;
    let current = null;
    $("task-webhooks").href = `/console/webhooks?task=${encodeURIComponent(id)}`;

    function setProgress(value) {
      if (typeof value !== "number" || value < percent) return; // progress only moves forward
      percent = Math.min(100, Math.round(value));
      $("task-progress").value = percent;
      $("task-progress").textContent = `${percent}%`;
      $("task-percent").textContent = `${percent}%`;
    }
    function addEvents(events) {
      const list = $("task-events");
      for (const event of events) {
        if (shown.has(event.id)) continue;
        shown.add(event.id);
        lastEventId = Math.max(lastEventId, event.id);
        const data = event.data || {};
        const extra = ["credits", "error_code", "attempt", "status_code"]
          .filter((k) => data[k] !== undefined && data[k] !== null)
          .map((k) => `${k} ${data[k]}`)
          .join(", ");
        list.append(
          el("li", {}, el("time", { datetime: event.created_at, text: when(event.created_at) }), " ", el("strong", { text: event.kind }), extra ? ` — ${extra}` : ""),
        );
      }
    }
    function render(view) {
      current = view;
      const status = $("task-status");
      status.textContent = view.status;
      status.className = `badge s-${view.status}`;
      if (view.status === "succeeded" || view.status === "expired") setProgress(100);
      else setProgress(view.progress);
      const live = view.live;
      $("task-phase").textContent = live ? `· ${live.phase}${live.total_steps ? ` ${live.step}/${live.total_steps}` : ""}` : "";
      $("task-live").textContent =
        view.queue_position ? `Place in line: ${view.queue_position}.` : view.eta_seconds ? `About ${view.eta_seconds} s left.` : "";
      show($("task-error"), view.error_message ? `${view.error_message} (${view.error_code})` : "");
      $("task-cancel").disabled = !["queued", "running"].includes(view.status);
      $("task-delete").disabled = view.status !== "succeeded";
      renderRequest(view);
      renderOutputs(view);
    }
    function renderRequest(view) {
      const facts = $("task-request");
      facts.replaceChildren();
      const request = view.request || {};
      const rows = [
        ["Prompt", request.prompt],
        ["Model", request.model_version],
        ["Duration", `${request.duration} s`],
        ["Resolution", `${request.resolution} (${request.aspect_ratio})`],
        ["Guidance", request.guidance],
        ["Seed", request.seed],
        ["Negative prompt", request.negative_prompt],
        ["Metadata", labels(Object.fromEntries(Object.entries(view.metadata || {}).filter(([, v]) => v !== null)))],
        ["Credits", `${view.credits_charged || view.credits_reserved} (${view.credits_charged ? "charged" : "held"})`],
        ["Created", when(view.created_at)],
        ["Finished", when(view.finished_at)],
        ["Assets deleted", when(view.expires_at)],
      ];
      for (const [name, value] of rows) {
        if (value === null || value === undefined || value === "") continue;
        facts.append(el("dt", { text: name }), el("dd", { text: value }));
      }
    }
    function renderOutputs(view) {
      const outputs = view.status === "succeeded" ? view.outputs || [] : [];
      const card = $("video-card");
      card.hidden = outputs.length === 0;
      const video = $("task-video");
      const downloads = $("task-downloads");
      if (!outputs.length) {
        video.removeAttribute("src");
        video.replaceChildren();
        downloads.replaceChildren();
        return;
      }
      if (video.dataset.task === view.task_id) return; // already showing it: keep the player's state
      video.dataset.task = view.task_id;
      const byFormat = Object.fromEntries(outputs.map((o) => [o.format, o]));
      video.replaceChildren();
      for (const format of ["mp4", "webm"]) {
        if (byFormat[format]) video.append(el("source", { src: byFormat[format].url, type: byFormat[format].content_type }));
      }
      if (byFormat.jpg) video.poster = byFormat.jpg.url;
      video.load();
      downloads.replaceChildren();
      for (const [format, label] of [["mp4", "MP4"], ["webm", "WEBM"], ["jpg", "Thumbnail (JPEG)"]]) {
        const output = byFormat[format];
        if (!output) continue;
        const link = el("a", { href: output.url, download: `${view.task_id}.${format}`, className: "download" }, `Download ${label}`);
        link.addEventListener("click", (event) => download(event, output.url, `${view.task_id}.${format}`));
        downloads.append(el("li", {}, link, el("span", { className: "hint", text: ` ${bytes(output.size_bytes)}` })));
      }
    }

    async function reload() {
      const view = await api(`/api/status?task_id=${encodeURIComponent(id)}&expand=events&events_limit=200`);
      render(view);
      addEvents((view.events && view.events.data) || []);
      return view;
    }

    async function follow() {
      // fetch(), not EventSource: the stream needs the Authorization header.
      let failures = 0;
      while (failures < 5) {
        const headers = { Authorization: `Bearer ${apiKey()}`, Accept: "text/event-stream" };
        if (lastEventId) headers["Last-Event-ID"] = String(lastEventId);
        try {
          const answer = await fetch(`${path}/events`, { headers, cache: "no-store" });
          if (answer.status === 401) return signOut("Your key was refused: sign in again.");
          if (!answer.ok) {
            const body = await answer.json().catch(() => null);
            throw new ApiError(answer.status, body, answer.headers.get("Retry-After"));
          }
          if (await readStream(answer.body)) return;
          console.warn("event stream ended before the task did: resuming after event", lastEventId);
          failures = 0; // ended early (a proxy or restart): resume after the last event
        } catch (error) {
          failures++;
          console.warn("event stream interrupted", error);
          $("task-live").textContent = `Live updates interrupted: ${explain(error)} Reconnecting…`;
          const wait = error instanceof ApiError && error.retryAfter ? Number(error.retryAfter) * 1000 : 1000 * failures;
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
      $("task-live").textContent = "Live updates stopped: reload the page to resume.";
    }
    async function readStream(stream) {
      // Server-Sent Events, parsed by hand; true once the terminal event arrived.
      const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let message = { event: "message", data: [] };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return false;
        buffer += value;
        const lines = buffer.split("\n");
        buffer = lines.pop();
        for (const raw of lines) {
          const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
          if (line === "") {
            if (message.data.length && (await dispatch(message))) {
              reader.cancel().catch(() => {});
              return true;
            }
            message = { event: "message", data: [] };
          } else if (!line.startsWith(":")) {
            const at = line.indexOf(":");
            const field = at < 0 ? line : line.slice(0, at);
            const content = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
            if (field === "event") message.event = content;
            else if (field === "data") message.data.push(content);
            else if (field === "id") message.id = content;
          }
        }
      }
    }
    async function dispatch(message) {
      // A keep-alive comment arrives with an empty `data:` line: nothing to act on.
      const text = message.data.join("\n");
      if (message.event === "message" || text === "") return false;
      const data = JSON.parse(text);
      if (message.event === "progress") {
        setProgress(data.percent);
        const step = data.total_steps ? ` ${data.step}/${data.total_steps}` : "";
        $("task-phase").textContent = `· ${data.phase}${step}`;
        $("task-live").textContent = data.eta_seconds ? `About ${data.eta_seconds} s left.` : "";
        return false;
      }
      if (message.id) addEvents([{ id: Number(message.id), kind: message.event, created_at: data.at, data }]);
      if (config.terminal.includes(message.event)) {
        render(data); // a terminal event carries the whole task, as /api/status shows it
        await reload(); // and the bookkeeping events (credits captured or released)
        return true;
      }
      render({ ...current, status: data.status || message.event, live: null });
      return false;
    }

    $("task-cancel").addEventListener("click", async () => {
      try {
        render(await api(`${path}/cancel`, { method: "POST" }));
        $("task-live").textContent = "Cancel requested: the render stops within one step.";
      } catch (error) {
        show($("task-error"), explain(error));
      }
    });
    $("task-delete").addEventListener("click", async () => {
      if (!window.confirm("Delete this task's videos and thumbnail now? The task record stays.")) return;
      try {
        render(await api(path, { method: "DELETE" }));
        $("task-live").textContent = "Assets deleted.";
      } catch (error) {
        show($("task-error"), explain(error));
      }
    });

    reload()
      .then((view) => {
        if (!config.terminal.includes(view.status)) return follow();
      })
      .catch((error) => show($("task-error"), explain(error)));
  }

  async function download(event, url, name) {
    // Fetch the presigned URL into a blob so the browser saves it (a cross-origin `download` attribute
    // is ignored); a store without CORS falls back to plain navigation.
    event.preventDefault();
    try {
      const answer = await fetch(url, { credentials: "omit", referrerPolicy: "no-referrer" });
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      const blob = URL.createObjectURL(await answer.blob());
      const link = el("a", { href: blob, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(blob), 60_000);
    } catch {
      location.assign(url);
    }
  }

  // ---- task list --------------------------------------------------------------------------------------
  function tasksPage() {
    const params = new URLSearchParams(location.search);
    $("filter-status").value = params.get("status") || "";
    $("filter-metadata").value = params.get("metadata") || "";
    const pageSize = Math.min(100, Math.max(1, Number.parseInt(params.get("limit") || "20", 10) || 20));
    let cursor = null;
    let more = true;
    let loading = false;
    let count = 0;

    function query() {
      const q = new URLSearchParams({ limit: String(pageSize) });
      if ($("filter-status").value) q.set("status", $("filter-status").value);
      for (const [k, v] of Object.entries(parseLabels($("filter-metadata").value, ","))) q.append(`metadata[${k}]`, v);
      if (cursor) q.set("cursor", cursor);
      return q;
    }
    let generation = 0; // a new filter drops the answers still in flight for the old one
    async function loadPage() {
      if (loading || !more) return;
      loading = true;
      const mine = generation;
      $("task-list-state").textContent = "Loading…";
      try {
        const found = await api(`/api/tasks?${query()}`);
        if (mine !== generation) return;
        for (const task of found.data) {
          $("task-rows").append(
            el(
              "tr",
              { "data-task": task.task_id },
              el("td", {}, taskLink(task.task_id)),
              el("td", {}, badge(task.status)),
              el("td", { className: "prompt", title: task.prompt, text: task.prompt }),
              el("td", {}, el("time", { datetime: task.created_at, text: when(task.created_at) })),
              el("td", { text: task.credits_reserved }),
              el("td", { text: labels(task.metadata) }),
            ),
          );
        }
        count += found.data.length;
        cursor = found.next_cursor;
        more = found.has_more && Boolean(cursor);
        $("task-more").hidden = !more;
        $("task-list-state").textContent = count ? `${count} task${count === 1 ? "" : "s"} shown${more ? "" : ", all of them"}.` : "No task matches.";
      } catch (error) {
        show($("err-filter"), explain(error));
        $("task-list-state").textContent = "";
      } finally {
        if (mine === generation) loading = false;
      }
      if (mine !== generation) return;
      const sentinel = $("task-sentinel").getBoundingClientRect();
      if (more && sentinel.top < window.innerHeight) loadPage(); // a short page left the sentinel in view
    }
    function restart() {
      show($("err-filter"), "");
      try {
        query();
      } catch (error) {
        $("filter-metadata").setAttribute("aria-invalid", "true");
        return show($("err-filter"), `Metadata filter: ${error.message}.`);
      }
      $("filter-metadata").removeAttribute("aria-invalid");
      $("task-rows").replaceChildren();
      generation++;
      loading = false;
      cursor = null;
      more = true;
      count = 0;
      loadPage();
    }
    $("task-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      const shownQuery = new URLSearchParams();
      if ($("filter-status").value) shownQuery.set("status", $("filter-status").value);
      if ($("filter-metadata").value.trim()) shownQuery.set("metadata", $("filter-metadata").value.trim());
      if (params.get("limit")) shownQuery.set("limit", String(pageSize));
      history.replaceState(null, "", `${location.pathname}${shownQuery.size ? `?${shownQuery}` : ""}`);
      restart();
    });
    $("task-more").addEventListener("click", loadPage);
    new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) loadPage();
    }).observe($("task-sentinel"));
    restart();
  }

  // ---- credits ------------------------------------------------------------------------------------------
  function creditsPage() {
    let ledgerCursor = null;
    const fail = (error) => show($("credits-error"), explain(error));

    api("/api/credits")
      .then((credits) => {
        const figures = [
          ["Plan", credits.plan],
          ["Balance", credits.balance],
          ["Held by tasks", credits.reserved],
          ["Available", credits.available],
          ["Period", credits.period || "—"],
          ["Next refresh", when(credits.period_end)],
          ["Included each period", credits.included_credits],
          ["Running / queued", `${credits.running} / ${credits.queued} (at most ${credits.max_concurrent_jobs} at once)`],
        ];
        if (credits.overage && credits.overage.allowed) {
          figures.push(["Overage this period", `${credits.overage.credits_this_period} credits ($${credits.overage.amount_usd_this_period})`]);
        }
        $("credit-figures").replaceChildren(...figures.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
        const caps = Array.isArray(credits.spend_limits) ? credits.spend_limits : [];
        $("caps-card").hidden = caps.length === 0;
        $("cap-rows").replaceChildren(
          ...caps.map((cap) =>
            el(
              "tr",
              {},
              el("td", { text: cap.scope }),
              el("td", {}, cap.key_id ? el("code", { text: cap.key_id }) : "—"),
              el("td", { text: cap.monthly_credit_limit ?? "none" }),
              el("td", { text: cap.used }),
              el("td", { text: when(cap.resets_at) }),
            ),
          ),
        );
      })
      .catch(fail);

    api("/api/tasks?status=queued,running&limit=100")
      .then((found) => {
        const rows = found.data.map((task) =>
          el("tr", {}, el("td", {}, taskLink(task.task_id)), el("td", {}, badge(task.status)), el("td", { text: task.credits_reserved })),
        );
        $("hold-rows").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 3, text: "No open holds." }))]));
      })
      .catch(fail);

    async function ledgerPage() {
      try {
        const q = new URLSearchParams({ limit: "50" });
        if (ledgerCursor) q.set("cursor", ledgerCursor);
        const found = await api(`/api/credits/ledger?${q}`);
        for (const entry of found.data) {
          $("ledger-rows").append(
            el(
              "tr",
              {},
              el("td", {}, el("time", { datetime: entry.created_at, text: when(entry.created_at) })),
              el("td", { text: entry.kind }),
              el("td", { text: entry.amount }),
              el("td", {}, entry.task_id ? taskLink(entry.task_id) : "—"),
              el("td", { text: entry.reason }),
            ),
          );
        }
        ledgerCursor = found.next_cursor;
        $("ledger-more").hidden = !(found.has_more && ledgerCursor);
      } catch (error) {
        fail(error);
      }
    }
    $("ledger-more").addEventListener("click", ledgerPage);
    ledgerPage();
  }

  // ---- webhooks -----------------------------------------------------------------------------------------
  function webhooksPage() {
    const reveal = $("secret-reveal");
    reveal.addEventListener("click", async () => {
      const value = $("secret-value");
      if (!value.hidden) {
        value.hidden = true;
        value.textContent = "";
        reveal.textContent = "Reveal secret";
        reveal.setAttribute("aria-expanded", "false");
        return;
      }
      try {
        const secret = await api("/api/webhooks/secret");
        value.textContent = secret.secret;
        value.hidden = false;
        reveal.textContent = "Hide secret";
        reveal.setAttribute("aria-expanded", "true");
        show($("secret-error"), secret.previous_secret_valid_until ? `The previous secret also signs until ${when(secret.previous_secret_valid_until)}.` : "");
      } catch (error) {
        const scope = error instanceof ApiError && error.code === "insufficient_scope";
        show($("secret-error"), scope ? "Only admin-scope keys may read the signing secret." : explain(error));
      }
    });

    let task = "";
    let cursor = null;
    async function deliveries(first) {
      if (first) {
        cursor = null;
        $("delivery-rows").replaceChildren();
      }
      const q = new URLSearchParams({ limit: "50" });
      if (cursor) q.set("cursor", cursor);
      try {
        const log = await api(`/api/tasks/${encodeURIComponent(task)}/webhooks?${q}`);
        for (const a of log.deliveries) {
          $("delivery-rows").append(
            el(
              "tr",
              {},
              el("td", {}, el("time", { datetime: a.attempted_at, text: when(a.attempted_at) })),
              el("td", { text: a.event_type }),
              el("td", { text: a.trigger }),
              el("td", { text: a.attempt }),
              el("td", { text: a.outcome }),
              el("td", { text: a.status_code ?? "—" }),
              el("td", { text: a.latency_ms === null || a.latency_ms === undefined ? "—" : `${a.latency_ms} ms` }),
              el("td", { text: a.error || "" }),
            ),
          );
        }
        cursor = log.next_cursor;
        $("delivery-more").hidden = !(log.has_more && cursor);
        const count = $("delivery-rows").children.length;
        $("delivery-state").textContent = log.callback_url
          ? `${count} attempt${count === 1 ? "" : "s"} to ${log.callback_url}.`
          : "This task has no callback_url: nothing is delivered.";
        $("redeliver").disabled = !log.callback_url;
      } catch (error) {
        $("delivery-state").textContent = explain(error);
        $("redeliver").disabled = true;
      }
    }
    $("delivery-form").addEventListener("submit", (event) => {
      event.preventDefault();
      task = $("delivery-task").value.trim();
      if (!task) return;
      history.replaceState(null, "", `${location.pathname}?task=${encodeURIComponent(task)}`);
      show($("redeliver-state"), "");
      deliveries(true);
    });
    $("delivery-more").addEventListener("click", () => deliveries(false));
    $("redeliver").addEventListener("click", async () => {
      try {
        const queued = await api(`/api/tasks/${encodeURIComponent(task)}/webhooks/redeliver`, { method: "POST" });
        show($("redeliver-state"), `Redelivery of ${queued.event_type} queued (webhook-id ${queued.event_id}).`);
      } catch (error) {
        show($("redeliver-state"), explain(error));
      }
    });
    const asked = new URLSearchParams(location.search).get("task");
    if (asked) {
      $("delivery-task").value = asked;
      task = asked;
      deliveries(true);
    }
  }

  // ---- keys ---------------------------------------------------------------------------------------------
  function keysPage() {
    $("key-prefix").textContent = `${apiKey().slice(0, 14)}…`;
    const nowhere = `/api/tasks/sora2${"0".repeat(32)}`;
    const probes = [
      ["read", "read tasks, credits and the ledger", () => api("/api/credits")],
      ["generate", "create, cancel and delete tasks; redeliver webhooks", () => api(`${nowhere}/cancel`, { method: "POST" })],
      ["audit", "read the audit log (Scale plans)", () => api("/api/audit-log?limit=1")],
      ["admin", "every scope above, and the webhook signing secret", () => api("/api/webhooks/secret")],
    ];
    (async () => {
      for (const [scope, allows, probe] of probes) {
        let answer;
        try {
          await probe();
          answer = "yes";
        } catch (error) {
          if (!(error instanceof ApiError)) answer = "unknown";
          else if (error.code === "insufficient_scope") answer = "no";
          else if (error.code === "plan_feature_unavailable") answer = "yes (not on this plan)";
          else if (error.status === 404) answer = "yes";
          else answer = `unknown (${error.code || error.status})`;
        }
        $("scope-rows").append(el("tr", { "data-scope": scope }, el("th", { scope: "row", text: scope }), el("td", { text: allows }), el("td", { text: answer })));
      }
    })();
  }

  // ---- start --------------------------------------------------------------------------------------------
  if (page !== "sign-in" && !apiKey()) {
    location.replace(`/console/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
    return;
  }
  header();
  const pages = {
    "sign-in": signInPage,
    new: newVideoPage,
    task: taskPage,
    tasks: tasksPage,
    credits: creditsPage,
    webhooks: webhooksPage,
    keys: keysPage,
  };
  pages[page]();
  document.body.dataset.ready = page;
})();
