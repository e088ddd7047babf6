// The conformance CLI (`server-conformance-tests --run <url>`) runs vitest in this folder on
// its own test-runner file, which lives under node_modules: vitest's default include/exclude
// patterns skip it ("No test files found"). This config lets the CLI find it.
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: [
      "node_modules/@durable-streams/server-conformance-tests/dist/test-runner.js",
    ],
    exclude: [],
    // vitest's default is 5 s per case. "should handle chunk-size pagination correctly" checks
    // 100 KB byte by byte in Node (100k expect calls): 5.3-7.1 s on a loaded 2-core machine,
    // with the server long done. A timeout is not what the suite tests; 30 s leaves room.
    testTimeout: 30000,
  },
})
