// agentwire browser client: an ES module with no dependencies (docs/browser-client.md).
//
// Connects to /ws (dev user or JWT), reconnects with exponential backoff and jitter, resumes
// with the last delivered seq, and delivers every event exactly once (deduplicated by seq),
// to handlers per event type and per run. With a token callback it refreshes the connection's
// token before the server's expiry (the `refresh` frame), so the connection stays open.

/** The WebSocket subprotocol of the native protocol (docs/protocol.md). */
export const PROTOCOL = "agentwire.v1";

/** The run event types, in lifecycle order. */
export const EVENT_TYPES = Object.freeze([
  "agent_started",
  "agent_thinking",
  "tool_executing",
  "tool_completed",
  "agent_message_delta",
  "agent_completed",
  "agent_error",
]);

const TERMINAL = new Set(["agent_completed", "agent_error"]);
// Close codes after which reconnecting cannot help (1008: policy, e.g. too many connections).
const FINAL_CLOSE_CODES = new Set([1008]);
// A refresh is sent this long before the server's expiry at most (half the time left when
// less is left).
const REFRESH_AHEAD_MS = 30000;

/** Error of a request the server refused, or that was lost with its connection. */
export class AgentwireError extends Error {
  constructor(code, message, frame) {
    super(message);
    this.name = "AgentwireError";
    this.code = code;
    this.frame = frame;
  }
}

function defaultUrl() {
  // The server that served this module; falls back to the page's origin.
  const base = import.meta.url.startsWith("http") ? import.meta.url : globalThis.location?.href;
  const url = new URL("/ws", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

/**
 * A reconnecting, resuming agentwire connection.
 *
 *   const client = new AgentwireClient({ user: "alice" });  // or { token: jwt }
 *   client.on("agent_message_delta", (e) => out.append(e.data.delta));
 *   client.connect();
 *   const { runId } = await client.send("What is 6 * 7?");
 */
export class AgentwireClient {
  /**
   * @param {object} [options]
   * @param {string} [options.url] WebSocket URL of /ws (default: the server this module came from)
   * @param {string} [options.user] dev-auth user id (`?user=`)
   * @param {string | (() => string | Promise<string>)} [options.token] JWT, or a function
   *   returning a fresh one for each connection attempt (sent as the `bearer.<jwt>` subprotocol)
   *   and, when the server says the connection expires (`expires_in_ms`), shortly before that
   *   (sent in a `refresh` frame, so the connection stays open)
   * @param {number} [options.lastSeq] resume position from an earlier session (default 0)
   * @param {string} [options.epoch] the epoch `lastSeq` belongs to
   * @param {boolean} [options.history] ask for the retained history on the first connection
   * @param {{initialMs?: number, maxMs?: number}} [options.backoff] reconnect delays
   * @param {typeof WebSocket} [options.WebSocket] WebSocket implementation (default: global)
   */
  constructor(options = {}) {
    this.url = options.url || defaultUrl();
    this.user = options.user;
    this.token = options.token;
    this.lastSeq = options.lastSeq || 0;
    this.epoch = options.epoch || null;
    this.history = Boolean(options.history);
    this.backoff = { initialMs: 250, maxMs: 10000, ...options.backoff };
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    /** "idle" | "connecting" | "connected" | "reconnecting" | "resumed" | "closed" */
    this.state = "idle";
    /** The last `connection_established` data. */
    this.connection = null;
    this.attempt = 0;
    this.ws = null;
    this._handlers = new Map();
    this._runs = new Map();
    this._pending = new Map();
    this._outbox = [];
    this._nextId = 1;
    this._idPrefix = Math.random().toString(36).slice(2, 8);
    this._timer = null;
    this._watchdog = null;
    this._refreshTimer = null;
    this._expiresAt = null;
    this._everConnected = false;
    this._stopped = false;
    this._online = () => { if (this.state === "reconnecting") this._reconnectNow(); };
  }

  /** Whether the socket is open and greeted. */
  get connected() {
    return this.state === "connected" || this.state === "resumed";
  }

  /**
   * Subscribes to a run event type (`"agent_thinking"` …), `"event"` (every run event),
   * `"replay_gap"`, `"status"` ({state, …}), `"ack"`, `"error"`, `"pong"`,
   * `"connection_established"` or `"refresh"` ({ok, expiresInMs} or {ok: false, error}).
   * Returns a function that unsubscribes.
   */
  on(type, handler) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(handler);
    return () => this._handlers.get(type)?.delete(handler);
  }

  /** Subscribes to every event of one run; dropped after its terminal event. */
  onRun(runId, handler) {
    if (!this._runs.has(runId)) this._runs.set(runId, new Set());
    this._runs.get(runId).add(handler);
    return () => this._runs.get(runId)?.delete(handler);
  }

  /** Opens the connection (and keeps it open until `close()`). */
  connect() {
    this._stopped = false;
    globalThis.addEventListener?.("online", this._online);
    if (!this.ws) this._open();
    return this;
  }

  /**
   * Starts a run: sends a `user_message`. Resolves with `{id, runId, threadId}` on the server's
   * ack; rejects with an `AgentwireError` (`code` from the server, or `connection_lost` when the
   * connection closed before the ack: the run may still have started, and its events then
   * arrive after the resume). Sent at once if connected, else when the connection is back.
   *
   * @param {string} content
   * @param {{agent?: string, threadId?: string, onEvent?: (event) => void}} [options]
   */
  send(content, { agent = "demo", threadId, onEvent } = {}) {
    const frame = { type: "user_message", id: this._id(), content, agent };
    if (threadId) frame.thread_id = threadId;
    return this._request(frame, (ack) => {
      if (onEvent && ack.run_id) this.onRun(ack.run_id, onEvent);
      return { id: ack.id, runId: ack.run_id, threadId: ack.thread_id };
    });
  }

  /** Cancels a run of this user; resolves on the ack (the run then ends with `cancelled`). */
  cancel(runId) {
    const frame = { type: "cancel", id: this._id(), run_id: runId };
    return this._request(frame, (ack) => ({ id: ack.id, runId }));
  }

  /** Measures a round trip; resolves with milliseconds. */
  ping() {
    const started = performance.now();
    return this._request({ type: "ping", id: this._id() }, () => performance.now() - started);
  }

  /** Closes the connection for good (code 1000); pending requests are rejected. */
  close() {
    this._stopped = true;
    clearTimeout(this._timer);
    clearTimeout(this._refreshTimer);
    globalThis.removeEventListener?.("online", this._online);
    this._drop(1000, "client closed");
    this._setState("closed", { code: 1000 });
  }

  // ---- internals ----

  _id() {
    return `${this._idPrefix}-${this._nextId++}`;
  }

  _request(frame, onAck) {
    return new Promise((resolve, reject) => {
      this._pending.set(frame.id, { resolve: (f) => resolve(onAck(f)), reject, sent: false });
      this._transmit(frame);
    });
  }

  _transmit(frame) {
    if (this.connected && this.ws?.readyState === 1) {
      this.ws.send(JSON.stringify(frame));
      const p = this._pending.get(frame.id);
      if (p) p.sent = true;
    } else {
      this._outbox.push(frame);
    }
  }

  async _open() {
    clearTimeout(this._timer);
    this._setState(this._everConnected ? "reconnecting" : "connecting", { attempt: this.attempt });
    const query = new URLSearchParams();
    if (this.user) query.set("user", this.user);
    if (this.epoch) {
      query.set("last_seq", String(this.lastSeq));
      query.set("epoch", this.epoch);
    } else if (this.lastSeq > 0 || this.history) {
      query.set("last_seq", String(this.lastSeq));
    }
    const protocols = [PROTOCOL];
    let token = this.token;
    if (typeof token === "function") {
      try {
        token = await token();
      } catch (e) {
        this._scheduleReconnect({ reason: `token: ${e}` });
        return;
      }
    }
    if (this._stopped) return;
    if (token) protocols.push(`bearer.${token}`);
    const sep = this.url.includes("?") ? "&" : "?";
    const ws = new this.WebSocket(`${this.url}${sep}${query}`, protocols);
    this.ws = ws;
    ws.onmessage = (m) => {
      this._lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(m.data);
      } catch {
        return;
      }
      this._frame(frame);
    };
    let opened = false;
    const ended = (code, reason) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (opened) this._lostConnection(code, reason);
      else this._refusedOrLost(code, reason, token);
    };
    ws.onopen = () => { opened = true; };
    // A failed handshake fires `error` (and, in browsers, `close` after it; not in every runtime).
    ws.onerror = () => { if (!opened) ended(1006, "connection failed"); };
    ws.onclose = (ev) => ended(ev.code, ev.reason);
  }

  // A browser shows a handshake refused with HTTP 401 as any failed connection (1006, no
  // status). Ask the HTTP API with the same credentials: a 401 there means retrying cannot help,
  // so the client stops ("closed", auth: true) and the page can ask for credentials.
  async _refusedOrLost(code, reason, token) {
    const refusal = await this._authRefusal(token);
    if (refusal && !this._stopped) {
      clearInterval(this._watchdog);
      this._setState("closed", { code: 401, reason: refusal, auth: true });
      return;
    }
    this._lostConnection(code, reason);
  }

  async _authRefusal(token) {
    if (typeof fetch !== "function") return null;
    try {
      const url = new URL(this.url.replace(/^ws/, "http"));
      url.pathname = url.pathname.replace(/\/ws$/, "/v1/events");
      url.search = "";
      url.searchParams.set("limit", "1");
      if (this.user) url.searchParams.set("user", this.user);
      const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      if (res.status !== 401) return null;
      const body = await res.json().catch(() => ({}));
      return body?.error?.message || "the server refused the credentials";
    } catch {
      return null;
    }
  }

  _frame(f) {
    if (f.type === "connection_established") return this._established(f.data);
    if (typeof f.seq === "number") {
      if (f.seq <= this.lastSeq) return; // delivered before (replay overlap): at most once
      this.lastSeq = f.seq;
      this._emit(f.type, f);
      this._emit("event", f);
      const handlers = this._runs.get(f.run_id);
      if (handlers) {
        for (const h of [...handlers]) this._call(h, f);
        if (TERMINAL.has(f.type)) this._runs.delete(f.run_id);
      }
      return;
    }
    if (f.type === "replay_gap") return this._emit("replay_gap", f);
    if (f.type === "ack" || f.type === "pong" || f.type === "error") {
      const p = f.id !== undefined ? this._pending.get(f.id) : undefined;
      if (p) {
        this._pending.delete(f.id);
        if (f.type === "error") p.reject(new AgentwireError(f.code, f.message, f));
        else p.resolve(f);
      }
    }
    this._emit(f.type, f);
  }

  _established(data) {
    if (this.epoch && data.epoch !== this.epoch) {
      // Our position belongs to an older stream; the server replays the new one from the start.
      this.lastSeq = 0;
    }
    this.epoch = data.epoch;
    this.connection = data;
    const wasReconnect = this._everConnected;
    this._everConnected = true;
    this.attempt = 0;
    const replayed = data.resumed ? data.resumed.replayed : 0;
    this._setState(wasReconnect ? "resumed" : "connected", { replayed, resumed: data.resumed });
    this._emit("connection_established", data);
    this._startWatchdog(data.heartbeat_ms);
    this._expiresAt = null;
    this._scheduleRefresh(data.expires_in_ms);
    const outbox = this._outbox.splice(0);
    for (const frame of outbox) this._transmit(frame);
  }

  // The server closes the connection (4001) `ms` from now unless it gets a fresh token. With a
  // token callback, ask it for one a little before and send it in a `refresh` frame.
  _scheduleRefresh(ms) {
    clearTimeout(this._refreshTimer);
    if (typeof ms !== "number" || typeof this.token !== "function") return;
    const expiresAt = Date.now() + ms;
    if (this._expiresAt !== null && expiresAt <= this._expiresAt + 1000) {
      // The callback gave no later expiry (a cached token?): let the connection end at its
      // expiry; the reconnect asks the callback again.
      return;
    }
    this._expiresAt = expiresAt;
    const delay = Math.max(0, ms - Math.min(REFRESH_AHEAD_MS, ms / 2));
    this._refreshTimer = setTimeout(() => this._refresh(), delay);
  }

  async _refresh() {
    const ws = this.ws;
    try {
      const token = await this.token();
      if (this.ws !== ws || !this.connected || !token) return;
      const ack = await this._request({ type: "refresh", id: this._id(), token }, (f) => f);
      this._emit("refresh", { ok: true, expiresInMs: ack.expires_in_ms });
      if (this.ws === ws) this._scheduleRefresh(ack.expires_in_ms);
    } catch (error) {
      // Refused, or the callback failed: the connection ends at its expiry and reconnects.
      this._emit("refresh", { ok: false, error });
    }
  }

  _lostConnection(code, reason) {
    clearInterval(this._watchdog);
    clearTimeout(this._refreshTimer);
    for (const [id, p] of this._pending) {
      if (!p.sent) continue; // still in the outbox: sent after the reconnect
      this._pending.delete(id);
      p.reject(new AgentwireError("connection_lost",
        "the connection closed before the server answered; a started run's events arrive after the resume"));
    }
    if (this._stopped) return;
    if (FINAL_CLOSE_CODES.has(code)) {
      this._setState("closed", { code, reason, auth: /auth|token|credential/i.test(reason || "") });
      return;
    }
    this._scheduleReconnect({ code, reason });
  }

  _scheduleReconnect(detail) {
    this.attempt += 1;
    const base = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** (this.attempt - 1));
    const delayMs = Math.round(base / 2 + (Math.random() * base) / 2);
    this._setState("reconnecting", { ...detail, attempt: this.attempt, delayMs });
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._open(), delayMs);
  }

  _reconnectNow() {
    clearTimeout(this._timer);
    if (!this.ws && !this._stopped) this._open();
  }

  _startWatchdog(heartbeatMs) {
    clearInterval(this._watchdog);
    const every = Math.max(1000, heartbeatMs || 30000);
    this._lastFrameAt = Date.now();
    this._watchdog = setInterval(() => {
      const quiet = Date.now() - this._lastFrameAt;
      if (quiet > 2 * every) {
        // No frame, not even a pong: the connection is dead without a close. Start over.
        const ws = this.ws;
        this.ws = null;
        if (ws) {
          ws.onclose = null;
          ws.onmessage = null;
          ws.close(1000, "heartbeat timeout");
        }
        this._lostConnection(1006, "heartbeat timeout");
      } else if (quiet > every) {
        this.ping().catch(() => {});
      }
    }, every);
  }

  _drop(code, reason) {
    clearInterval(this._watchdog);
    clearTimeout(this._refreshTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.close(code, reason);
    }
    for (const p of this._pending.values()) {
      p.reject(new AgentwireError("closed", "the client was closed"));
    }
    this._pending.clear();
    this._outbox.length = 0;
  }

  _setState(state, detail = {}) {
    this.state = state;
    this._emit("status", { state, ...detail });
  }

  _emit(type, payload) {
    const handlers = this._handlers.get(type);
    if (!handlers) return;
    for (const h of [...handlers]) this._call(h, payload);
  }

  _call(handler, payload) {
    try {
      handler(payload);
    } catch (e) {
      console.error("agentwire handler failed:", e);
    }
  }
}
