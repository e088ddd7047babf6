// The official suite with `subscriptions: true` (its CLI has no flag for it), which adds the
// "Reserved subscription APIs" block (PROTOCOL.md §6, §7). tests/durable_streams/main.rs runs it
// with `-t "Reserved subscription APIs"` against a server whose stream root is
// `$CONFORMANCE_TEST_URL/v1/stream/`, the root those cases address.
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.CONFORMANCE_TEST_URL
if (!baseUrl) throw new Error("CONFORMANCE_TEST_URL is required")
runConformanceTests({ baseUrl, subscriptions: true })
