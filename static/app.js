// The browser client: cookie login with CSRF, documents with progress, streamed chat with sources.
// Untrusted text (documents, answers, questions) only ever reaches the page through textContent:
// the Markdown renderer builds elements itself and never parses HTML, so nothing can run script
// or load a remote resource (no <img>, no links), and the CSP forbids inline script besides.

const $ = (id) => document.getElementById(id);
const state = {
  user: null, sessionId: null, sessions: [], streaming: null, polling: null,
  workspaces: [], space: "", scope: null, workspace: null,  // space: the Documents panel's ("" = your own)
};

// --- HTTP ---------------------------------------------------------------------------------------

function cookie(name) {
  const found = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

async function refreshLogin() {
  const response = await fetch("/auth/session/refresh", {
    method: "POST", credentials: "same-origin", headers: { "X-CSRF-TOKEN": cookie("docchat_refresh_csrf") },
  });
  return response.ok;
}

async function request(method, path, { json, signal, retried = false, accept = "application/json" } = {}) {
  const headers = { Accept: accept };
  if (method !== "GET") headers["X-CSRF-TOKEN"] = cookie("docchat_csrf");
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, signal, credentials: "same-origin", body: json === undefined ? undefined : JSON.stringify(json),
  });
  if (response.status === 401 && !retried && state.user && (await refreshLogin())) {
    return request(method, path, { json, signal, accept, retried: true });
  }
  if (response.status === 401 && state.user) showLogin("Your login has ended; please log in again.");
  return response;
}

async function api(method, path, json) {
  const response = await request(method, path, { json });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

async function pages(path, key) {
  // Every page of a list the server answers a page at a time (limit/cursor): the first page's
  // other fields, with the items of all pages under `key`.
  const first = await api("GET", path);
  const items = [...first[key]];
  for (let cursor = first.next_cursor; cursor;) {
    const separator = path.includes("?") ? "&" : "?";
    const page = await api("GET", `${path}${separator}cursor=${encodeURIComponent(cursor)}`);
    items.push(...page[key]);
    cursor = page.next_cursor;
  }
  return { ...first, [key]: items, next_cursor: null };
}

// --- Safe Markdown ------------------------------------------------------------------------------

function inline(text, parent) {
  // **bold**, *em*, `code`; everything else (including <tags> and ![images](urls)) stays plain text.
  const pattern = /(\*\*[^*]+\*\*|`[^`]+`|\*[^*\s][^*]*\*)/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    parent.append(text.slice(last, match.index));
    const token = match[0];
    const tag = token.startsWith("**") ? "strong" : token.startsWith("`") ? "code" : "em";
    const element = document.createElement(tag);
    element.textContent = token.slice(tag === "strong" ? 2 : 1, tag === "strong" ? -2 : -1);
    parent.append(element);
    last = match.index + token.length;
  }
  parent.append(text.slice(last));
}

function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const blocks = text.split(/```/);
  blocks.forEach((block, number) => {
    if (number % 2 === 1) {
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      code.textContent = block.replace(/^[\w-]*\n/, "");
      pre.append(code);
      fragment.append(pre);
      return;
    }
    for (const paragraph of block.split(/\n{2,}/)) {
      const lines = paragraph.split("\n").filter((line) => line.trim());
      if (!lines.length) continue;
      const listItem = /^\s*(?:[-*•]|\d+[.)])\s+/;
      const quoteLine = /^\s*>\s?/;
      if (lines.every((line) => quoteLine.test(line))) {
        const quote = document.createElement("blockquote");
        const p = document.createElement("p");
        lines.forEach((line, index) => {
          if (index) p.append(document.createElement("br"));
          inline(line.replace(quoteLine, ""), p);
        });
        quote.append(p);
        fragment.append(quote);
      } else if (lines.every((line) => listItem.test(line))) {
        const list = document.createElement(/^\s*\d/.test(lines[0]) ? "ol" : "ul");
        for (const line of lines) {
          const item = document.createElement("li");
          inline(line.replace(listItem, ""), item);
          list.append(item);
        }
        fragment.append(list);
      } else {
        const p = document.createElement("p");
        lines.forEach((line, index) => {
          if (index) p.append(document.createElement("br"));
          inline(line, p);
        });
        fragment.append(p);
      }
    }
  });
  return fragment;
}

// --- Views --------------------------------------------------------------------------------------

function showLogin(message = "") {
  state.user = null;
  clearInterval(state.polling);
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message;
  $("login-username").focus();
}

async function showApp(user) {
  state.user = user;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("who").textContent = user.username + (user.role === "admin" ? " (admin)" : "");
  $("admin-tab").hidden = user.role !== "admin";
  $("password-required").hidden = !user.must_change_password;
  if (user.must_change_password) return showPanel("account-panel");  // nothing else answers until then
  await loadWorkspaces();
  await Promise.all([loadSessions(), loadDocuments(), loadServerState(), loadModels().catch(() => {})]);
  if (state.sessions.length) await openSession(state.sessions[0].sessionId);
  else startNewChat();
  setInterval(loadServerState, 10000);
}

function showPanel(id) {
  for (const button of document.querySelectorAll(".tabs button")) {
    const active = button.dataset.panel === id;
    button.setAttribute("aria-pressed", String(active));
    $(button.dataset.panel).hidden = !active;
  }
  if (id === "admin-panel") loadAdmin();
  if (id === "documents-panel") loadDocuments();
  if (id === "workspaces-panel") loadWorkspaces();
}

function showError(element, error) {
  element.hidden = !error;
  element.textContent = error ? (error.message || String(error)) : "";
}

// --- Server state -------------------------------------------------------------------------------

async function loadServerState() {
  try {
    const response = await fetch("/health", { headers: { Accept: "application/json" } });
    const health = await response.json();
    const model = health.model_loaded ? health.model : `${health.model} (loading…)`;
    $("server-state").textContent = `Model ${model} · ${health.device} · queue ${health.queue_depth}`;
  } catch {
    $("server-state").textContent = "server unreachable";
  }
}

// --- Sessions -----------------------------------------------------------------------------------

async function loadSessions() {
  state.sessions = (await pages("/chat/sessions", "sessions")).sessions;
  const list = $("session-list");
  list.replaceChildren();
  for (const session of state.sessions) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = session.title;
    button.title = `${session.title} · ${session.message_count} messages`;
    button.setAttribute("aria-current", String(session.sessionId === state.sessionId));
    button.addEventListener("click", () => openSession(session.sessionId));
    item.append(button);
    list.append(item);
  }
}

function startNewChat() {
  state.sessionId = null;
  showScope(null);
  showModel(null);
  $("chat-title").textContent = "New chat";
  $("session-actions").hidden = true;
  $("messages").replaceChildren();
  $("composer-input").focus();
  loadSessions();
}

async function openSession(sessionId) {
  const session = await pages(`/chat/sessions/${encodeURIComponent(sessionId)}`, "messages");
  state.sessionId = session.sessionId;
  showScope(session.scope);
  showModel(session.model);
  $("chat-title").textContent = session.title;
  $("session-actions").hidden = false;
  $("analytics").hidden = true;
  $("analytics-button").setAttribute("aria-expanded", "false");
  const base = `/chat/sessions/${encodeURIComponent(session.sessionId)}/export`;
  $("export-md").href = `${base}?format=markdown`;
  $("export-json").href = `${base}?format=json`;
  $("messages").replaceChildren(...session.messages.map((message) => messageElement(message)));
  scrollToEnd();
  await loadSessions();
}

function messageElement(message) {
  const item = document.createElement("li");
  item.className = `message ${message.role}`;
  if (message.index !== undefined && message.index !== null) item.dataset.index = message.index;
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = document.createElement("span");
  who.textContent = message.role === "user" ? "You" : "Assistant";
  meta.append(who);
  if (message.index !== undefined && message.index !== null) meta.append(branchButton(message.index));
  const body = document.createElement("div");
  body.className = "body";
  body.append(renderMarkdown(message.content || ""));
  if (message.grounding) markUnsupported(body, message.grounding);
  if (message.answer_kind === "quote") {
    // The model's own answer was empty or only echoed its prompt: this is the documents' text.
    item.classList.add("quoted");
    const note = document.createElement("p");
    note.className = "small quote-note";
    note.textContent = "A quote from your documents, not a generated answer.";
    body.prepend(note);
  }
  if (message.finish_reason === "cancelled" || message.finish_reason === "error") {
    const note = document.createElement("p");
    note.className = "small";
    note.textContent = message.finish_reason === "cancelled" ? "(stopped)" : "(interrupted by an error)";
    body.append(note);
  }
  item.append(meta, body);
  if (message.grounding) item.append(groundingElement(message.grounding));
  if (message.role === "assistant") item.append(sourcesElement(message.sources || []));
  return item;
}

function markUnsupported(body, grounding) {
  // Each sentence the sources do not back is marked where it stands in the answer (its text found
  // in one text node of the rendered answer; a sentence split by formatting stays listed below).
  for (const sentence of grounding.sentences.filter((item) => item.supported === false)) {
    const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const at = node.textContent.indexOf(sentence.text);
      if (at < 0) continue;
      const mark = document.createElement("mark");
      mark.className = "unsupported";
      mark.title = "Not found in the sources";
      const rest = node.splitText(at);
      rest.splitText(sentence.text.length);
      rest.replaceWith(mark);
      mark.append(rest);
      break;
    }
  }
}

function groundingElement(grounding) {
  // Which sentences of the answer its sources back (a similarity check on the server).
  const judged = grounding.sentences.filter((sentence) => sentence.supported !== null);
  const box = document.createElement("div");
  box.className = "grounding small";
  const line = document.createElement("p");
  const backed = judged.length - grounding.unsupported;
  line.textContent = `${backed} of ${judged.length} sentence${judged.length === 1 ? "" : "s"} supported by the sources`;
  box.append(line);
  const unsupported = judged.filter((sentence) => !sentence.supported);
  if (unsupported.length) {
    box.classList.add("has-unsupported");
    const list = document.createElement("ul");
    list.setAttribute("aria-label", "Not found in the sources");
    for (const sentence of unsupported) {
      const item = document.createElement("li");
      const mark = document.createElement("mark");
      mark.className = "unsupported";
      mark.textContent = sentence.text;
      item.append("Not found in the sources: ", mark);
      list.append(item);
    }
    box.append(list);
  }
  return box;
}

function branchButton(index) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary branch";
  button.textContent = "Branch from here";
  button.title = "Start a new session holding the conversation up to this message";
  button.addEventListener("click", async () => {
    const branch = await api("POST", `/chat/sessions/${encodeURIComponent(state.sessionId)}/branch`, { at: index + 1 });
    await openSession(branch.sessionId);
  });
  return button;
}

function sourcesElement(sources) {
  const details = document.createElement("details");
  details.className = "sources";
  details.open = sources.length > 0;
  const summary = document.createElement("summary");
  summary.textContent = sources.length ? `Sources (${sources.length})` : "No sources";
  const list = document.createElement("ol");
  for (const source of sources) {
    const item = document.createElement("li");
    const name = document.createElement("strong");
    name.textContent = source.filename;
    const where = [source.page ? `page ${source.page}` : "", source.section ? `“${source.section}”` : "",
      source.row ? `row ${source.row}` : ""].filter(Boolean).join(", ");
    if (source.version > 1) name.textContent += ` (v${source.version})`;
    item.append(name);
    if (source.workspace_id) item.append(spaceTag(source.workspace_id));
    item.append(where ? ` (${where}) ` : " ", `— ${source.excerpt}`);
    list.append(item);
  }
  details.append(summary, list);
  return details;
}

function scrollToEnd() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

// --- Asking, streamed ---------------------------------------------------------------------------

async function ask(text) {
  showError($("chat-error"), null);
  if (!state.sessionId) {
    const started = await api("POST", "/chat/start", {
      scope: state.scope || undefined, model: $("model-picker").value || undefined,
    });
    state.sessionId = started.sessionId;
    $("session-actions").hidden = false;
  }
  const turnEnds = document.querySelectorAll("#messages .message").length + 2;  // messages once stored
  $("messages").append(messageElement({ role: "user", content: text }));
  const answer = messageElement({ role: "assistant", content: "" });
  answer.setAttribute("aria-busy", "true");
  const progress = pendingStatus(answer);  // what is happening, until the first words arrive
  $("messages").append(answer);
  scrollToEnd();
  const controller = new AbortController();
  state.streaming = controller;
  setBusy(true);
  let text_so_far = "";
  let stopped = false;
  try {
    const send = () => request("POST", "/chat/message", {
      json: { sessionId: state.sessionId, message: text, stream: true }, signal: controller.signal,
      accept: "text/event-stream",
    });
    if ($("model-picker").value) await modelLoaded($("model-picker").value);
    let response = await send();
    if (response.status === 503 && $("model-picker").value) {  // the session's model loads on first use
      progress.phase("Loading the model");
      await modelLoaded($("model-picker").value);
      response = await send();
    }
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    for await (const [event, data] of serverEvents(response)) {
      if (event === "sources") {
        answer.querySelector(".sources").replaceWith(sourcesElement(data));
        progress.phase("Generating the answer");
      } else if (event === "token") {
        progress.stop();
        text_so_far += data.text;
        answer.querySelector(".body").replaceChildren(renderMarkdown(text_so_far));
        scrollToEnd();
      } else if (event === "error") throw new ApiError(500, data);
      else if (event === "done") answer.replaceWith(messageElement(data.reply));
    }
  } catch (error) {
    if (error.name !== "AbortError") showError($("chat-error"), error);
    else {
      stopped = true;
      answer.replaceWith(messageElement({ role: "assistant", content: text_so_far, finish_reason: "cancelled" }));
    }
  } finally {
    progress.stop();
    state.streaming = null;
    // What the server stored is what the page shows. After Stop the server stores the turn once it
    // notices the closed connection, a moment later: wait for it rather than show a session without it.
    if (stopped) await storedTurn(state.sessionId, turnEnds).catch(() => {});
    await openSession(state.sessionId).catch(() => {});
    setBusy(false);
  }
}

// --- The model a chat answers with ---------------------------------------------------------------

async function loadModels() {
  // Every models.json entry but the active one, which answers by default; a failed one is left out.
  const listed = await api("GET", "/models");
  const picker = $("model-picker");
  const chosen = picker.value;
  picker.replaceChildren(new Option(`Default (${listed.active})`, ""), ...listed.models
    .filter((model) => model.id !== listed.active && model.state !== "failed")
    .map((model) => new Option(model.state === "ready" ? `${model.name} (loaded)` : model.name, model.id)));
  picker.value = chosen;
}

function showModel(modelId) {
  // A session keeps the model it was started with: shown, and fixed once it has begun.
  const picker = $("model-picker");
  if (modelId && ![...picker.options].some((option) => option.value === modelId)) picker.append(new Option(modelId, modelId));
  picker.value = modelId || "";
  picker.disabled = Boolean(state.sessionId);
}

async function modelLoaded(modelId) {
  // Load the model if it is not yet (POST /models/load), its progress (0-1) in a bar until it is ready.
  const started = await api("POST", "/models/load", { model: modelId });
  if (started.state === "ready") return;
  const bar = $("model-progress");
  bar.value = started.progress;
  $("model-loading").hidden = false;
  try {
    for (let attempt = 0; attempt < 1200; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const model = (await api("GET", "/models")).models.find((item) => item.id === modelId);
      if (!model || model.state !== "loading") return;
      bar.value = model.progress || 0;
    }
  } finally {
    $("model-loading").hidden = true;
    loadModels().catch(() => {});
  }
}

async function storedTurn(sessionId, count, tries = 40) {
  for (let attempt = 0; attempt < tries; attempt++) {
    const session = await pages(`/chat/sessions/${encodeURIComponent(sessionId)}`, "messages");
    if (session.messages.length >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function pendingStatus(answer) {
  // "Searching your documents · 1.4 s", then "Generating the answer · 3.0 s" once the sources are
  // in, until the first words arrive. A pending answer shows no "No sources" label.
  const status = document.createElement("p");
  status.className = "pending small";
  status.setAttribute("role", "status");
  const pendingSources = answer.querySelector(".sources");
  const waiting = document.createElement("p");
  waiting.className = "sources small";
  waiting.textContent = "Sources: searching…";
  pendingSources.replaceWith(waiting);
  answer.querySelector(".body").append(status);
  const started = performance.now();
  let label = "Searching your documents";
  const draw = () => { status.textContent = `${label} · ${((performance.now() - started) / 1000).toFixed(1)} s`; };
  draw();
  const timer = setInterval(draw, 100);
  return {
    phase(next) { label = next; draw(); },
    stop() { clearInterval(timer); status.remove(); },
  };
}

async function* serverEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields = Object.fromEntries(block.split("\n").map((line) => {
        const at = line.indexOf(": ");
        return [line.slice(0, at), line.slice(at + 2)];
      }));
      if (fields.event) yield [fields.event, JSON.parse(fields.data || "null")];
    }
  }
}

function setBusy(busy) {
  document.body.dataset.busy = String(busy);
  $("send-button").disabled = busy;
  $("stop-button").hidden = !busy;
  for (const item of document.querySelectorAll(".message[aria-busy]")) if (!busy) item.removeAttribute("aria-busy");
}

// --- Documents ----------------------------------------------------------------------------------

async function loadDocuments() {
  const space = state.space;
  const path = space ? `/documents?workspace=${encodeURIComponent(space)}` : "/documents";
  const { documents } = await pages(path, "documents");
  if (space !== state.space) return;  // another space was chosen meanwhile
  const list = $("document-list");
  const open = new Set([...list.querySelectorAll("li[data-document-id] > .versions[open]")]
    .map((details) => details.parentElement.dataset.documentId));
  list.replaceChildren(...documents.map(documentElement));
  for (const item of list.querySelectorAll("li[data-document-id]")) {  // a redraw keeps Versions lists open
    const details = item.querySelector(":scope > .versions");
    if (details && open.has(item.dataset.documentId)) details.open = true;
  }
  const busy = documents.some((doc) => doc.status === "queued" || doc.status === "processing");
  clearTimeout(state.polling);
  if (busy) state.polling = setTimeout(loadDocuments, 1000);
}

function documentElement(doc) {
  const item = document.createElement("li");
  item.dataset.documentId = doc.id;
  item.dataset.status = doc.status;
  const name = document.createElement("span");
  name.className = "doc-name";
  name.textContent = doc.filename;
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "danger";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete ${doc.filename}`);
  remove.hidden = !canEdit(doc.workspace_id);
  remove.addEventListener("click", async () => {
    await api("DELETE", `/documents/${encodeURIComponent(doc.id)}`);
    loadDocuments();
  });
  const status = document.createElement("span");
  status.className = "doc-status small";
  const percent = Math.round(doc.progress * 100);
  status.textContent = doc.status === "processing" ? `processing ${percent}%`
    : doc.status === "ready" ? `ready · ${doc.chunks} chunks${doc.pages ? ` · ${doc.pages} ${doc.type === "pptx" ? "slides" : "pages"}` : ""}${doc.ocr_pages ? ` (${doc.ocr_pages} by OCR)` : ""}${doc.table_pages_skipped ? ` · tables not looked for on ${doc.table_pages_skipped} pages` : ""}`
      : doc.status === "failed" ? `failed: ${doc.error}` : doc.status;
  if (doc.versions > 1) status.textContent = `v${doc.version} · ${status.textContent}`;
  if (doc.current_version !== null && doc.current_version !== doc.version) {
    status.textContent += ` · answers use v${doc.current_version}`;
  }
  const bar = document.createElement("progress");
  bar.max = 1;
  bar.value = doc.progress;
  bar.setAttribute("aria-label", `Ingestion of ${doc.filename}`);
  if (doc.workspace_id) name.append(spaceTag(doc.workspace_id));
  item.append(name, remove, status);
  if (doc.status !== "ready" && doc.status !== "failed") item.append(bar);
  if (doc.versions > 1) item.append(versionsElement(doc));
  return item;
}

function versionsElement(doc) {
  const details = document.createElement("details");
  details.className = "versions small";
  const summary = document.createElement("summary");
  summary.textContent = `Versions (${doc.versions})`;
  const list = document.createElement("ol");
  list.className = "version-list";
  details.append(summary, list);
  details.addEventListener("toggle", async () => {
    if (!details.open) return;
    const { versions } = await pages(`/documents/${encodeURIComponent(doc.id)}/versions`, "versions");
    list.replaceChildren(...versions.map((version) => versionElement(doc, version)));
  });
  return details;
}

function versionElement(doc, version) {
  const item = document.createElement("li");
  item.dataset.version = String(version.version);
  const when = new Date(version.created_at).toLocaleString();
  const label = document.createElement("span");
  label.textContent = `v${version.version} · ${version.status} · ${when}${version.current ? " · current" : ""}`;
  item.append(label);
  const base = `/documents/${encodeURIComponent(doc.id)}/versions/${version.version}`;
  if (!canEdit(doc.workspace_id)) return item;
  if (!version.current && version.status === "ready") {
    item.append(actionButton("Restore", `Restore version ${version.version} of ${doc.filename}`,
      () => api("POST", `${base}/restore`)));
  }
  if (doc.versions > 1) {
    item.append(actionButton("Delete", `Delete version ${version.version} of ${doc.filename}`,
      () => api("DELETE", base), "danger"));
  }
  return item;
}

function actionButton(text, label, action, className = "") {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.textContent = text;
  button.setAttribute("aria-label", label);
  button.addEventListener("click", async () => {
    showError($("documents-error"), null);
    try {
      await action();
    } catch (error) {
      showError($("documents-error"), error);
    }
    loadDocuments();
  });
  return button;
}

function uploadFiles(files) {
  for (const file of files) uploadOne(file);
}

function uploadOne(file) {
  const item = document.createElement("li");
  const label = document.createElement("span");
  label.textContent = `Uploading ${file.name}`;
  const bar = document.createElement("progress");
  bar.max = 1;
  bar.value = 0;
  bar.setAttribute("aria-label", `Upload of ${file.name}`);
  item.append(label, document.createElement("span"), bar);
  $("upload-list").append(item);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", state.space ? `/upload?workspace=${encodeURIComponent(state.space)}` : "/upload");
  xhr.setRequestHeader("X-CSRF-TOKEN", cookie("docchat_csrf"));
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) bar.value = event.loaded / event.total;
  });
  xhr.addEventListener("load", () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch { /* not JSON: shown as a status */ }
    if (xhr.status >= 200 && xhr.status < 300) item.remove();
    else {
      label.textContent = `${file.name}: ${(body && body.error) || `HTTP ${xhr.status}`}`;
      label.className = "error";
      bar.remove();
    }
    loadDocuments();
  });
  xhr.addEventListener("error", () => { label.textContent = `${file.name}: upload failed`; label.className = "error"; });
  const form = new FormData();
  form.append("file", file);
  xhr.send(form);
}

// --- Workspaces and the chat's scope ------------------------------------------------------------

function workspaceNamed(id) {
  return state.workspaces.find((workspace) => workspace.id === id);
}

function spaceTag(workspaceId) {
  const tag = document.createElement("span");
  tag.className = "space-tag";
  tag.textContent = (workspaceNamed(workspaceId) || { name: "a workspace" }).name;
  tag.title = "Shared in this workspace";
  return tag;
}

function canEdit(workspaceId) {
  if (!workspaceId) return true;
  const workspace = workspaceNamed(workspaceId);
  return Boolean(workspace) && workspace.role !== "viewer";
}

async function loadWorkspaces() {
  state.workspaces = (await api("GET", "/workspaces")).workspaces;
  if (state.space && !workspaceNamed(state.space)) state.space = "";
  const select = $("space-select");
  select.replaceChildren(new Option("My documents", ""),
    ...state.workspaces.map((workspace) => new Option(`${workspace.name} (${workspace.role})`, workspace.id)));
  select.value = state.space;
  showSpaceNote();
  const list = $("workspace-list");
  list.replaceChildren(...state.workspaces.map((workspace) => {
    const item = document.createElement("li");
    item.dataset.workspaceId = workspace.id;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "secondary";
    open.textContent = workspace.name;
    open.addEventListener("click", () => openWorkspace(workspace.id).catch((error) => showError($("workspaces-error"), error)));
    const about = document.createElement("span");
    about.className = "small";
    about.textContent = `your role: ${workspace.role} · ${workspace.members} member${workspace.members === 1 ? "" : "s"}`;
    item.append(open, about);
    return item;
  }));
  if (state.workspace && !workspaceNamed(state.workspace)) {
    state.workspace = null;
    $("workspace-detail").hidden = true;
  }
  showScope(state.scope);
}

function showSpaceNote() {
  const workspace = workspaceNamed(state.space);
  $("space-note").textContent = !workspace ? "Only you can see these."
    : workspace.role === "viewer" ? "Shared with the workspace's members; as a viewer you can read but not upload."
      : "Shared with the workspace's members.";
  $("drop-zone").hidden = Boolean(workspace) && workspace.role === "viewer";
}

async function openWorkspace(id) {
  const { workspace, members } = await api("GET", `/workspaces/${encodeURIComponent(id)}`);
  state.workspace = id;
  const owner = workspace.role === "owner";
  $("workspace-detail").hidden = false;
  $("workspace-title").textContent = `${workspace.name} (your role: ${workspace.role})`;
  $("rename-workspace").hidden = !owner;
  $("delete-workspace").hidden = !owner;
  $("member-form").hidden = !owner;
  $("member-rows").replaceChildren(...members.map((member) => memberRow(workspace, member, owner)));
}

function memberRow(workspace, member, owner) {
  const row = document.createElement("tr");
  row.dataset.username = member.username;
  const base = `/workspaces/${encodeURIComponent(workspace.id)}/members/${encodeURIComponent(member.username)}`;
  const actions = document.createElement("td");
  let role = member.role;
  if (owner) {
    const select = document.createElement("select");
    select.setAttribute("aria-label", `Role of ${member.username}`);
    select.append(...["viewer", "editor", "owner"].map((name) => new Option(name, name)));
    select.value = member.role;
    select.addEventListener("change", () => workspaceAction(() => api("PATCH", base, { role: select.value })));
    role = select;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove ${member.username}`);
    remove.addEventListener("click", () => workspaceAction(() => api("DELETE", base)));
    actions.append(remove);
  }
  const name = document.createElement("td");
  name.textContent = member.username;
  const roleCell = document.createElement("td");
  roleCell.append(role);
  row.append(name, roleCell, actions);
  return row;
}

async function workspaceAction(action, reopen = true) {
  showError($("workspaces-error"), null);
  try {
    await action();
  } catch (error) {
    showError($("workspaces-error"), error);
  }
  await loadWorkspaces();
  if (reopen && state.workspace) await openWorkspace(state.workspace).catch(() => {});
}

function showScope(scope) {
  state.scope = scope && (scope.workspaces.length || scope.documents.length) ? scope : null;
  const chosen = new Set(state.scope ? state.scope.workspaces : []);
  const box = (value, label) => {
    const wrapper = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = value;
    input.checked = chosen.has(value);
    input.addEventListener("change", changeScope);
    wrapper.append(input, label);
    return wrapper;
  };
  const options = $("scope-options");
  options.replaceChildren(options.querySelector("legend"), box("personal", "My documents"),
    ...state.workspaces.map((workspace) => box(workspace.id, workspace.name)));
  const names = [...chosen].map((id) => (id === "personal" ? "my documents" : (workspaceNamed(id) || { name: "a workspace" }).name));
  const singles = state.scope ? state.scope.documents.length : 0;
  if (singles) names.push(`${singles} document${singles === 1 ? "" : "s"}`);
  $("scope-summary").textContent = names.length ? `Searching: ${names.join(", ")}` : "Searching everything you can read";
}

async function changeScope() {
  const workspaces = [...$("scope-options").querySelectorAll("input:checked")].map((input) => input.value);
  const scope = { workspaces, documents: state.scope ? state.scope.documents : [] };
  showError($("chat-error"), null);
  try {
    if (state.sessionId) {
      const resumed = await api("POST", "/chat/start", { sessionId: state.sessionId, scope });
      showScope(resumed.scope);
    } else showScope(scope);
  } catch (error) {
    showError($("chat-error"), error);
  }
}

// --- Analytics ---------------------------------------------------------------------------------

async function toggleAnalytics() {
  const panel = $("analytics");
  const open = panel.hidden;
  panel.hidden = !open;
  $("analytics-button").setAttribute("aria-expanded", String(open));
  if (!open || !state.sessionId) return;
  const data = await api("GET", `/chat/sessions/${encodeURIComponent(state.sessionId)}/analytics`);
  const trend = data.sentiment.map((item) => (item.compound > 0.05 ? "+" : item.compound < -0.05 ? "−" : "·")).join(" ");
  const rows = [
    ["Messages", `${data.messages.user} questions, ${data.messages.assistant} answers`],
    ["Average length", `${data.average_length_chars.user ?? "–"} / ${data.average_length_chars.assistant ?? "–"} characters`],
    ["Answer time", data.response_seconds.average === null ? "–" : `${data.response_seconds.average} s on average`],
    ["Found context", data.retrieval_hit_rate === null ? "–" : `${Math.round(data.retrieval_hit_rate * 100)}% of answers`],
    ["Documents relied on", data.top_documents.map((d) => `${d.filename} (${d.citations})`).join(", ") || "none"],
    ["Keywords", data.top_keywords.join(", ") || "none"],
    ["Sentiment trend", trend || "none"],
  ];
  $("analytics-list").replaceChildren(...rows.flatMap(([term, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    return [dt, dd];
  }));
}

// --- Admin --------------------------------------------------------------------------------------

async function changePassword() {
  showError($("password-error"), null);
  $("password-result").textContent = "";
  try {
    await api("POST", "/auth/password", { current_password: $("current-password").value,
                                          new_password: $("new-password").value });
    $("current-password").value = $("new-password").value = "";
    $("password-result").textContent = "Password changed. Your other logins have ended.";
    if (state.user.must_change_password) {
      await showApp({ ...state.user, must_change_password: false });
      showPanel("chat-panel");
    }
  } catch (error) {
    showError($("password-error"), error);
  }
}

function adminButton(text, label, action, className) {
  // Like actionButton, for the admin panel: its errors show there.
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.textContent = text;
  button.setAttribute("aria-label", label);
  button.addEventListener("click", () => action().catch((error) => showError($("admin-error"), error)));
  return button;
}

function cells(row, values) {
  for (const value of values) {
    const cell = document.createElement("td");
    if (value instanceof Node) cell.append(value); else cell.textContent = String(value ?? "");
    row.append(cell);
  }
  return row;
}

async function loadUsers() {
  const query = encodeURIComponent($("user-query").value.trim());
  const found = await api("GET", `/admin/users?q=${query}&per_page=200`);
  $("user-total").textContent = `${found.total} user(s)` + (found.total > found.users.length ? ", first 200 shown" : "");
  $("user-rows").replaceChildren(...found.users.map((user) => {
    const change = async (body) => {
      showError($("admin-error"), null);
      try { await api("PATCH", `/admin/users/${user.id}`, body); } catch (error) { showError($("admin-error"), error); }
      loadUsers();
    };
    const actions = document.createElement("span");
    actions.append(
      adminButton(user.role === "admin" ? "Make user" : "Make admin", `Change the role of ${user.username}`,
                   () => change({ role: user.role === "admin" ? "user" : "admin" }), "secondary"),
      adminButton(user.disabled ? "Enable" : "Disable", `${user.disabled ? "Enable" : "Disable"} ${user.username}`,
                   () => change({ disabled: !user.disabled }), user.disabled ? "secondary" : "danger"),
      adminButton("Reset password", `Reset the password of ${user.username}`, async () => {
        if (!confirm(`Give ${user.username} a temporary password? Their logins end.`)) return;
        const reset = await api("POST", `/admin/users/${user.id}/password`);
        const notice = $("temporary-password");
        notice.textContent = `Temporary password for ${user.username}, shown once (they must change it at their ` +
          `next login): ${reset.temporary_password}`;
        notice.dataset.password = reset.temporary_password;
        loadAudit();
      }, "secondary"));
    const row = document.createElement("tr");
    row.dataset.username = user.username;
    return cells(row, [user.username, user.role, user.disabled ? "disabled" : "active",
                       user.last_login ? new Date(user.last_login).toLocaleString() : "never", actions]);
  }));
}

async function loadAudit() {
  const user = encodeURIComponent($("audit-user").value.trim());
  const event = encodeURIComponent($("audit-event").value.trim());
  const log = await api("GET", `/admin/audit?per_page=100${user ? `&user=${user}` : ""}${event ? `&event=${event}` : ""}`);
  $("audit-total").textContent = `${log.total} event(s)` + (log.total > log.events.length ? ", newest 100 shown" : "");
  $("audit-rows").replaceChildren(...log.events.map((entry) => cells(document.createElement("tr"), [
    new Date(entry.at).toLocaleString(), entry.actor ?? "(command line)", entry.event, entry.target, entry.address])));
}

async function loadAdmin() {
  loadUsers().catch((error) => showError($("admin-error"), error));
  loadAudit().catch((error) => showError($("admin-error"), error));
  const [models, errors] = await Promise.all([api("GET", "/models"), api("GET", "/stats/errors")]);
  $("model-list").replaceChildren(...models.models.map((model) => {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = `${model.name} — ${model.state}${model.error ? `: ${model.error}` : ""}`;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = model.state === "active" ? "Active" : "Activate";
    button.disabled = model.state === "active";
    button.addEventListener("click", async () => {
      button.disabled = true;
      button.textContent = "Loading…";
      try { await api("POST", "/models/swap", { model: model.id }); } catch (error) { alert(error.message); }
      loadAdmin();
      loadServerState();
    });
    item.append(name, button);
    return item;
  }));
  $("error-totals").textContent = `${errors.total_errors} errors: ` +
    Object.entries(errors.error_types).map(([code, count]) => `${code} ${count}`).join(", ");
  $("error-rows").replaceChildren(...errors.recent.slice().reverse().map((error) => {
    const row = document.createElement("tr");
    for (const value of [error.time, error.route, error.status, error.code, error.message]) {
      const cell = document.createElement("td");
      cell.textContent = String(value ?? "");
      row.append(cell);
    }
    return row;
  }));
}

// --- Wiring -------------------------------------------------------------------------------------

async function login(register) {
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  try {
    if (register) await api("POST", "/auth/register", { username, password });
    const { user } = await api("POST", "/auth/session", { username, password });
    $("login-password").value = "";
    await showApp(user);
  } catch (error) {
    showError($("login-error"), error);
  }
}

function wire() {
  $("login-form").addEventListener("submit", (event) => { event.preventDefault(); login(false); });
  $("register-button").addEventListener("click", () => {
    if ($("login-form").reportValidity()) login(true);
  });
  $("logout-button").addEventListener("click", async () => {
    await request("DELETE", "/auth/session");
    showLogin("You are logged out.");
  });
  for (const button of document.querySelectorAll(".tabs button")) {
    button.addEventListener("click", () => showPanel(button.dataset.panel));
  }
  $("new-chat").addEventListener("click", () => { showPanel("chat-panel"); startNewChat(); });
  $("model-picker").addEventListener("change", (event) => {  // start loading while the question is typed
    if (event.target.value) modelLoaded(event.target.value).catch((error) => showError($("chat-error"), error));
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("composer-input").value.trim();
    if (!text || state.streaming) return;
    $("composer-input").value = "";
    ask(text);
  });
  $("composer-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop-button").addEventListener("click", () => state.streaming && state.streaming.abort());
  $("password-form").addEventListener("submit", (event) => { event.preventDefault(); changePassword(); });
  $("user-search").addEventListener("submit", (event) => { event.preventDefault(); loadUsers(); });
  $("audit-filter").addEventListener("submit", (event) => { event.preventDefault(); loadAudit(); });
  $("analytics-button").addEventListener("click", toggleAnalytics);
  $("rename-session").addEventListener("click", async () => {
    const title = prompt("New title", $("chat-title").textContent);
    if (title && title.trim()) {
      await api("PATCH", `/chat/sessions/${encodeURIComponent(state.sessionId)}`, { title: title.trim() });
      openSession(state.sessionId);
    }
  });
  $("delete-session").addEventListener("click", async () => {
    if (!confirm("Delete this chat session and all its messages?")) return;
    await api("DELETE", `/chat/sessions/${encodeURIComponent(state.sessionId)}`);
    startNewChat();
  });
  $("space-select").addEventListener("change", (event) => {
    state.space = event.target.value;
    showSpaceNote();
    loadDocuments();
  });
  $("workspace-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("workspace-name").value.trim();
    workspaceAction(async () => {
      const { workspace } = await api("POST", "/workspaces", { name });
      $("workspace-name").value = "";
      state.workspace = workspace.id;
    });
  });
  $("member-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { username: $("member-name").value.trim(), role: $("member-role").value };
    workspaceAction(async () => {
      await api("POST", `/workspaces/${encodeURIComponent(state.workspace)}/members`, body);
      $("member-name").value = "";
    });
  });
  $("rename-workspace").addEventListener("click", () => {
    const name = prompt("New name", (workspaceNamed(state.workspace) || {}).name);
    if (name && name.trim()) workspaceAction(() => api("PATCH", `/workspaces/${encodeURIComponent(state.workspace)}`, { name: name.trim() }));
  });
  $("delete-workspace").addEventListener("click", () => {
    if (!confirm("Delete this workspace with all its documents, for every member?")) return;
    workspaceAction(async () => {
      await api("DELETE", `/workspaces/${encodeURIComponent(state.workspace)}`);
      state.workspace = null;
      $("workspace-detail").hidden = true;
    }, false);
  });
  $("leave-workspace").addEventListener("click", () => {
    if (!confirm("Leave this workspace? You will no longer see its documents.")) return;
    workspaceAction(async () => {
      await api("DELETE", `/workspaces/${encodeURIComponent(state.workspace)}/members/${encodeURIComponent(state.user.username)}`);
      state.workspace = null;
      $("workspace-detail").hidden = true;
    }, false);
  });
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", (event) => { uploadFiles(event.target.files); event.target.value = ""; });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("file-input").click(); }
  });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    uploadFiles(event.dataTransfer.files);
  });
}

async function boot() {
  wire();
  const response = await fetch("/auth/me", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.ok) return showApp(await response.json());
  if (response.status === 401 && cookie("docchat_refresh_csrf") && (await refreshLogin())) {
    const again = await fetch("/auth/me", { credentials: "same-origin" });
    if (again.ok) return showApp(await again.json());
  }
  showLogin();
}

boot();
