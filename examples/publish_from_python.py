#!/usr/bin/env python3
"""Publish a whole agent run to agentwire from Python, with the standard library only.

An agent written in any language reports its progress over HTTP: each event of the run is one
`POST /v1/publish` with the server API key. agentwire enforces the run grammar (docs/protocol.md#events), gives
each event the next `seq` of the user's stream, and delivers it to that user's WebSocket and SSE
clients.

Run with (the server needs an API key):
    AGENTWIRE_API_KEY=change-me-to-a-long-key agentwire serve
    python3 examples/publish_from_python.py --url http://127.0.0.1:8080 \
        --key change-me-to-a-long-key --user alice

Exits 0 when every event was accepted, 1 otherwise (the error body is printed).
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid


class PublishError(Exception):
    """agentwire refused an event; `code` is the wire error code (e.g. out_of_grammar)."""

    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


class Run:
    """One run of an external agent for one user."""

    def __init__(self, url, key, user, agent, thread_id=None):
        self.url = url.rstrip("/") + "/v1/publish"
        self.key, self.user, self.agent = key, user, agent
        self.run_id = "r_py_" + uuid.uuid4().hex[:16]
        self.thread_id = thread_id or "t_py_" + uuid.uuid4().hex[:16]
        self.started = time.monotonic()

    def publish(self, event_type, data):
        """Publishes one event; returns its seq."""
        body = json.dumps({
            "user_id": self.user, "run_id": self.run_id, "thread_id": self.thread_id,
            "agent": self.agent, "type": event_type, "data": data,
        }).encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.key}",
        })
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)["seq"]
        except urllib.error.HTTPError as e:
            try:
                error = json.load(e)["error"]
            except Exception:  # not our JSON body (a proxy, say)
                error = {"code": "http_error", "message": str(e)}
            raise PublishError(e.code, error["code"], error["message"]) from None

    def elapsed_ms(self):
        return int((time.monotonic() - self.started) * 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--key", default=os.environ.get("AGENTWIRE_API_KEY"))
    parser.add_argument("--user", default="alice")
    parser.add_argument("--question", default="How far is the moon?")
    args = parser.parse_args()
    if not args.key:
        parser.error("give --key or set AGENTWIRE_API_KEY")

    run = Run(args.url, args.key, args.user, agent="python-researcher")
    try:
        seqs = [run.publish("agent_started", {"input": args.question})]
        seqs.append(run.publish("agent_thinking", {"thought": "Looking it up", "step": 1}))
        call = {"call_id": "c_1", "tool": "search", "args": {"query": args.question}}
        seqs.append(run.publish("tool_executing", call))
        seqs.append(run.publish("tool_completed", {
            "call_id": "c_1", "tool": "search", "ok": True,
            "result": {"distance_km": 384400}, "duration_ms": 12,
        }))
        answer = "The moon is about 384,400 km away."
        message_id = "m_" + run.run_id
        for word in answer.split(" "):
            seqs.append(run.publish("agent_message_delta", {"message_id": message_id, "delta": word + " "}))
        seqs.append(run.publish("agent_completed", {"result": answer, "duration_ms": run.elapsed_ms()}))

        # The grammar is enforced: nothing may follow the terminal event.
        try:
            run.publish("agent_thinking", {"thought": "one more thing"})
            print("error: an event after agent_completed was accepted", file=sys.stderr)
            return 1
        except PublishError as e:
            if e.code != "out_of_grammar":
                raise
    except (PublishError, urllib.error.URLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"run_id": run.run_id, "thread_id": run.thread_id, "seqs": seqs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
