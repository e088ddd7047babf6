// agentwire browser client (ES module, no dependencies).
// Connects to /ws, reconnects with backoff, resumes with the last seq, delivers each event once.
export class AgentwireClient {
  constructor({ url, user, token, onEvent, onStatus, onControl } = {}) {
    this.url = url || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    this.user = user; this.token = token;
    this.onEvent = onEvent || (() => {}); this.onStatus = onStatus || (() => {});
    this.onControl = onControl || (() => {});
    this.lastSeq = 0; this.epoch = null; this.attempt = 0; this.closed = false; this.nextId = 1;
  }
  connect() {
    const q = new URLSearchParams();
    if (this.user) q.set("user", this.user);
    if (this.token) q.set("token", this.token);
    if (this.epoch) { q.set("last_seq", String(this.lastSeq)); q.set("epoch", this.epoch); }
    this.onStatus(this.attempt ? "reconnecting" : "connecting");
    const ws = new WebSocket(`${this.url}?${q}`, ["agentwire.v1"]);
    this.ws = ws;
    ws.onmessage = (m) => this.#frame(JSON.parse(m.data));
    ws.onclose = () => { if (!this.closed) this.#retry(); };
  }
  #frame(f) {
    if (f.type === "connection_established") {
      if (this.epoch && f.data.epoch !== this.epoch) this.lastSeq = 0;
      this.epoch = f.data.epoch; this.attempt = 0;
      this.onStatus(f.data.resumed ? "resumed" : "connected", f.data);
      return;
    }
    if (typeof f.seq === "number") {
      if (f.seq <= this.lastSeq) return; // already delivered
      this.lastSeq = f.seq;
      this.onEvent(f);
      return;
    }
    this.onControl(f);
  }
  #retry() {
    this.attempt += 1;
    const delay = Math.min(10000, 250 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.onStatus("reconnecting");
    setTimeout(() => this.connect(), delay);
  }
  send(content, { agent = "demo", threadId } = {}) {
    const id = `c${this.nextId++}`;
    const frame = { type: "user_message", id, content, agent };
    if (threadId) frame.thread_id = threadId;
    this.ws.send(JSON.stringify(frame));
    return id;
  }
  cancel(runId) {
    const id = `c${this.nextId++}`;
    this.ws.send(JSON.stringify({ type: "cancel", id, run_id: runId }));
    return id;
  }
  close() { this.closed = true; this.ws && this.ws.close(1000); }
}
