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
  },
})
