// The demo chat page: threads, one timeline card per run, a connection badge.
// Built on /agentwire.js only; no framework, no build step.
import { AgentwireClient } from "/agentwire.js";

const $ = (id) => document.getElementById(id);

/** Test and debugging hook: what the page was delivered, in order. */
const debug = (window.__agentwire = { events: [], statuses: [], gaps: [], client: null });

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null && c !== false) el.append(c);
  }
  return el;
}

const json = (v) => (typeof v === "string" ? v : JSON.stringify(v, null, 2));
// The server sends whole milliseconds: 0 means under one.
const duration = (ms) => (ms === undefined ? "" : ms === 0 ? "<1 ms" : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// ---------- identity ----------

const params = new URLSearchParams(location.search);
const stored = JSON.parse(localStorage.getItem("agentwire.demo.identity") || "{}");
let identity = params.get("token")
  ? { mode: "jwt", token: params.get("token") }
  : params.get("user")
    ? { mode: "dev", user: params.get("user") }
    : stored.mode
      ? stored
      : { mode: "dev", user: "guest" };

function showIdentity() {
  $("who").textContent = identity.mode === "jwt" ? "JWT token" : identity.user;
  document.querySelector(`input[name=mode][value=${identity.mode}]`).checked = true;
  $("user").value = identity.user || "";
  $("token").value = identity.token || "";
  toggleFields();
}

function toggleFields() {
  const jwt = document.querySelector("input[name=mode]:checked").value === "jwt";
  $("user-field").hidden = jwt;
  $("token-field").hidden = !jwt;
}

document.querySelectorAll("input[name=mode]").forEach((r) => r.addEventListener("change", toggleFields));
$("identity").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const mode = document.querySelector("input[name=mode]:checked").value;
  const next = mode === "jwt"
    ? { mode, token: $("token").value.trim() }
    : { mode, user: $("user").value.trim() || "guest" };
  if (mode === "jwt" && !next.token) return $("token").focus();
  identity = next;
  localStorage.setItem("agentwire.demo.identity", JSON.stringify(identity));
  $("identity-menu").open = false;
  showIdentity();
  start();
});

// ---------- state ----------

const threads = new Map(); // thread_id -> { id, title, runs: [run_id], unread }
const runs = new Map(); // run_id -> card view
let selected = null; // thread_id, or null for a new thread
let client = null;
let replayLeft = 0; // events still to come from the current connection's replay
let marking = false; // whether they come from a resume (else: the history on the first connection)

function resetView() {
  threads.clear();
  runs.clear();
  selected = null;
  debug.events.length = 0;
  $("runs").replaceChildren($("empty"));
  renderThreads();
}

// ---------- threads ----------

function ensureThread(id, title) {
  let t = threads.get(id);
  if (!t) {
    t = { id, title: title || "Untitled thread", runs: [], unread: false };
    threads.set(id, t);
    renderThreads();
  }
  return t;
}

function renderThreads() {
  const items = [...threads.values()].reverse().map((t) =>
    h("li", {},
      h("button", {
        type: "button",
        class: t.unread ? "unread" : "",
        "aria-current": t.id === selected ? "true" : "false",
        "data-testid": "thread",
        "data-thread-id": t.id,
        title: t.title,
        onclick: () => select(t.id),
      }, t.title, " ", h("span", { class: "count", text: `(${t.runs.length})` }))));
  $("thread-list").replaceChildren(...items);
  $("new-thread").setAttribute("aria-pressed", selected === null ? "true" : "false");
}

function select(threadId) {
  selected = threadId;
  const t = threadId && threads.get(threadId);
  if (t) t.unread = false;
  $("conversation-title").textContent = t ? t.title : "New thread";
  for (const view of runs.values()) view.card.hidden = view.threadId !== selected;
  $("empty").hidden = Boolean(t && t.runs.length);
  renderThreads();
}

$("new-thread").addEventListener("click", () => {
  select(null);
  $("message").focus();
});

// ---------- run cards ----------

function runView(event, question) {
  let view = runs.get(event.run_id);
  if (view) return view;
  const thread = ensureThread(event.thread_id, question);
  thread.runs.push(event.run_id);
  if (event.thread_id !== selected) thread.unread = true;
  const titleId = `run-${event.run_id}-title`;
  const state = h("span", { class: "run-state", "data-state": "running", "data-testid": "run-state", text: "running…" });
  const cancel = h("button", {
    type: "button",
    "data-testid": "cancel",
    "aria-label": "Cancel this run",
    onclick: () => client.cancel(event.run_id).catch((e) => notice(`Cancel failed: ${e.message}`)),
  }, "Cancel");
  const timeline = h("ol", { class: "timeline", "data-testid": "timeline", "aria-label": "Run timeline" });
  const answer = h("div", { class: "answer", "data-testid": "answer", "aria-live": "off" });
  const answerItem = h("li", { "data-kind": "answer", hidden: true },
    h("span", { class: "label" }, "Answer"), answer);
  const card = h("article", {
    class: "run",
    "data-testid": "run-card",
    "data-run-id": event.run_id,
    "data-thread-id": event.thread_id,
    "data-state": "running",
    "aria-labelledby": titleId,
  },
  h("header", {},
    h("h3", { id: titleId, text: question || "…" }),
    h("span", { class: "tag", text: event.agent || "agent" }),
    state, cancel),
  timeline);
  card.hidden = event.thread_id !== selected;
  $("runs").append(card);
  view = { card, title: card.querySelector("h3"), state, cancel, timeline, answer, answerItem,
           tools: new Map(), threadId: event.thread_id, seqs: [] };
  runs.set(event.run_id, view);
  renderThreads();
  if (!card.hidden) $("empty").hidden = true;
  return view;
}

function seqTag(event, replayed) {
  const tags = [h("span", { class: "seq", title: "seq: this event's position in your stream (1, 2, 3 … across all your runs); a reconnect resumes after the last one received", text: `#${event.seq}` })];
  if (replayed) tags.push(replayedMark());
  return tags;
}

function replayedMark() {
  return h("span", { class: "replayed-mark", title: "delivered by the resume after a reconnect", text: "↻ replayed" });
}

function item(view, event, kind, replayed, ...content) {
  const li = h("li", { "data-kind": kind, "data-testid": "step", "data-seq": event.seq, "data-type": event.type },
    ...content, seqTag(event, replayed));
  view.timeline.append(li);
  return li;
}

function finish(view, state, text) {
  view.card.dataset.state = state;
  view.state.dataset.state = state;
  view.state.textContent = text;
  view.cancel.remove();
}

function render(event, replayed) {
  const d = event.data || {};
  const view = runView(event, event.type === "agent_started" ? d.input : undefined);
  view.seqs.push(event.seq);
  view.card.dataset.seqs = view.seqs.join(" ");
  switch (event.type) {
    case "agent_started":
      if (d.input && view.title.textContent === "…") view.title.textContent = d.input;
      item(view, event, "started", replayed, h("span", { class: "label" }, "Started"));
      break;
    case "agent_thinking":
      item(view, event, "thinking", replayed,
        h("span", { class: "label" }, d.step ? `Thinking (step ${d.step}) ` : "Thinking "),
        h("span", { class: "thinking", text: d.thought }));
      break;
    case "tool_executing": {
      const summary = h("summary", {}, h("span", { class: "label" }, "Tool "), h("code", { text: d.tool }),
        " ", h("span", { "data-testid": "tool-status", text: "running…" }), seqTag(event, replayed));
      const body = h("div", {}, h("div", { class: "hint" }, "Arguments"), h("pre", { text: json(d.args) }));
      const details = h("details", { class: "tool" }, summary, body);
      const li = h("li", { "data-kind": "tool", "data-seq": event.seq, "data-type": event.type }, details);
      view.timeline.append(li);
      li.dataset.testid = "tool-call";
      li.dataset.state = "running";
      li.dataset.callId = d.call_id;
      view.tools.set(d.call_id, { li, summary, body });
      break;
    }
    case "tool_completed": {
      let tool = view.tools.get(d.call_id);
      if (!tool) {
        // Its tool_executing is older than the retained history.
        const summary = h("summary", {}, h("span", { class: "label" }, "Tool "), h("code", { text: d.tool }), " ",
          h("span", { "data-testid": "tool-status" }));
        const body = h("div", {});
        const li = h("li", { "data-kind": "tool", "data-testid": "tool-call", "data-type": event.type },
          h("details", { class: "tool" }, summary, body));
        view.timeline.append(li);
        tool = { li, summary, body };
      }
      tool.summary.append(...seqTag(event, replayed));
      tool.li.dataset.state = d.ok ? "ok" : "failed";
      tool.li.dataset.completedSeq = event.seq;
      tool.summary.querySelector("[data-testid=tool-status]").textContent =
        `${d.ok ? "✓" : "✗ failed"} · ${duration(d.duration_ms)}`;
      tool.body.append(
        h("div", { class: "hint" }, d.ok ? "Result" : "Error"),
        h("pre", { class: d.ok ? "" : "error-text", text: d.ok ? json(d.result) : d.error }));
      break;
    }
    case "agent_message_delta":
      if (!view.answerItem.isConnected) view.timeline.append(view.answerItem);
      view.answerItem.hidden = false;
      view.answer.append(d.delta);
      if (replayed && !view.answerItem.querySelector(".replayed-mark")) {
        view.answer.before(replayedMark());
      }
      break;
    case "agent_completed": {
      if (!view.answer.textContent && d.result !== undefined) {
        if (!view.answerItem.isConnected) view.timeline.append(view.answerItem);
        view.answerItem.hidden = false;
        view.answer.textContent = typeof d.result === "object" && d.result?.answer ? d.result.answer : json(d.result);
      }
      item(view, event, "completed", replayed,
        h("span", { class: "label" }, "Completed"), ` in ${duration(d.duration_ms)}`);
      finish(view, "completed", `completed · ${duration(d.duration_ms)}`);
      break;
    }
    case "agent_error":
      item(view, event, "error", replayed,
        h("span", { class: "label error-text" }, `Error: ${d.code}`), ` ${d.message || ""}`);
      finish(view, "error", d.code === "cancelled" ? "cancelled" : `error · ${d.code}`);
      break;
    default:
      break;
  }
}

// ---------- connection ----------

function notice(text) {
  $("toast").textContent = text;
}

function setBadge(status) {
  const badge = $("badge");
  badge.dataset.state = status.state;
  let text = status.state;
  if (status.state === "resumed") text = `resumed (${plural(status.replayed || 0, "event")} replayed)`;
  if (status.state === "reconnecting" && status.attempt) text = `reconnecting… (attempt ${status.attempt})`;
  if (status.state === "closed") text = `closed${status.code ? ` (${status.code})` : ""}`;
  badge.textContent = text;
  badge.title = status.reason || "";
}

// ---------- agent picker (GET /v1/agents) ----------

async function loadAgents() {
  const picker = $("agent");
  const query = identity.mode === "dev" ? `?user=${encodeURIComponent(identity.user)}` : "";
  const headers = identity.mode === "jwt" ? { authorization: `Bearer ${identity.token}` } : {};
  try {
    const res = await fetch(`/v1/agents${query}`, { headers });
    if (!res.ok) return; // keep "demo"
    const { agents, default: preferred } = await res.json();
    if (!agents?.length) return;
    const previous = picker.value;
    picker.replaceChildren(...agents.map((a) => {
      const option = h("option", { text: a.name });
      option.value = a.name;
      option.title = a.description || "";
      return option;
    }));
    const keep = agents.some((a) => a.name === previous) && previous !== "demo" ? previous : preferred;
    picker.value = keep || agents[0].name;
    describeAgent(agents);
    picker.onchange = () => describeAgent(agents);
  } catch {
    // The picker keeps "demo"; the page works as before.
  }
}

function describeAgent(agents) {
  const chosen = agents.find((a) => a.name === $("agent").value);
  $("agent-description").textContent = chosen?.description || "";
}

function start() {
  loadAgents();
  if (client) client.close();
  resetView();
  notice("");
  client = new AgentwireClient({
    user: identity.mode === "dev" ? identity.user : undefined,
    token: identity.mode === "jwt" ? identity.token : undefined,
    history: true, // show this user's earlier runs (the server's retained history)
  });
  debug.client = client;
  let everConnected = false;
  client.on("status", (s) => {
    debug.statuses.push({ ...s, at: Date.now() });
    setBadge(s);
    if (s.state === "connected" || s.state === "resumed") {
      everConnected = true;
      notice("");
      // The server says who we are (with a JWT: its `sub`).
      const id = client.connection?.user_id;
      if (id) $("who").textContent = identity.mode === "jwt" ? `${id} (JWT)` : id;
      replayLeft = s.replayed || 0;
      marking = s.state === "resumed";
    }
    if (s.state === "closed" && s.auth) {
      // Retrying cannot fix credentials: say why and ask for new ones.
      notice(`The server refused the credentials: ${s.reason}. Sign in below.`);
      $("identity-menu").open = true;
      return;
    }
    if (s.state === "closed" && s.code && s.code !== 1000) notice(`Disconnected: ${s.reason || s.code}`);
    if (s.state === "reconnecting" && !everConnected && s.attempt >= 2) {
      notice("Cannot connect. Check the user name, or sign in with a JWT if the server uses JWT auth.");
      if (s.attempt === 2) $("identity-menu").open = true;
    }
  });
  client.on("event", (e) => {
    const fromReplay = replayLeft > 0;
    if (fromReplay) replayLeft -= 1;
    const replayed = fromReplay && marking;
    debug.events.push({ seq: e.seq, type: e.type, run_id: e.run_id, replayed });
    render(e, replayed);
    // The first connection replays this user's history: then show its latest thread.
    if (fromReplay && !marking && replayLeft === 0) select(e.thread_id);
  });
  client.on("replay_gap", (g) => {
    debug.gaps.push(g.data);
    notice(`Events ${g.data.from_seq}–${g.data.to_seq} are no longer in the server's history.`);
  });
  client.on("error", (f) => {
    if (!f.id) notice(`Server: ${f.code}: ${f.message}`);
  });
  client.connect();
  $("who").textContent = identity.mode === "jwt" ? "JWT token" : identity.user;
}

// ---------- composer ----------

async function submit() {
  const input = $("message");
  const content = input.value.trim();
  if (!content) return;
  input.value = "";
  try {
    const ack = await client.send(content, { agent: $("agent").value || "demo", threadId: selected || undefined });
    const view = runs.get(ack.runId);
    const thread = ensureThread(ack.threadId, content);
    if (view && view.title.textContent === "…") view.title.textContent = content;
    if (selected !== ack.threadId) select(thread.id);
  } catch (e) {
    notice(`Not sent: ${e.message}`);
    if (!input.value) input.value = content;
  }
}

$("composer").addEventListener("submit", (ev) => {
  ev.preventDefault();
  submit();
});
$("message").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    submit();
  }
});
document.querySelectorAll("[data-example]").forEach((b) =>
  b.addEventListener("click", () => {
    $("message").value = b.textContent;
    $("message").focus();
  }));

showIdentity();
start();
