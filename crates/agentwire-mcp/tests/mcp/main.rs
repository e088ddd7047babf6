//! The MCP tool tests: stdio against the published server-everything, streamable HTTP against
//! The MCP tool tests: stdio against the published server-everything, streamable HTTP against
//! an rmcp server in the test, both through a real agentwire server, and the LLM agent driving
//! MCP tools (with the scripted model server of tests/llm).
//!
//! Runs on the `libtest-mimic` harness shared with the root suites (`harness = false`), so the
//! stdio tests run `npm ci` in `tests/mcp` themselves and, without Node, are reported as ignored
//! with the reason, unless `AGENTWIRE_REQUIRE_INTEROP=1` (as `.ci/run` sets) makes them fail.

#[allow(dead_code)] // each suite uses part of the shared harness
#[path = "../../../../tests/harness/mod.rs"]
mod harness;
mod http;
mod llm;
// The scripted OpenAI-compatible server of the LLM tests, shared rather than copied.
#[allow(dead_code)]
#[path = "../../../../tests/llm/scripted.rs"]
mod scripted;
mod server;
mod stdio;
mod support;

use std::path::PathBuf;

/// Node, and the pinned `@modelcontextprotocol/server-everything` installed in `tests/mcp`.
fn server_everything_ready() -> Result<(), String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp");
    harness::npm_ci(&dir, "@modelcontextprotocol/server-everything")
}

fn main() -> std::process::ExitCode {
    let mut trials = in_process_trials();
    trials.extend(stdio_trials());
    harness::run(trials)
}

/// The rmcp servers in the test, over streamable HTTP: nothing to provision.
fn in_process_trials() -> Vec<libtest_mimic::Trial> {
    vec![
        harness::trial_needing(
            "http::structured_content_and_is_error_come_back",
            Vec::new(),
            http::structured_content_and_is_error_come_back,
        ),
        harness::trial_needing(
            "http::a_call_that_times_out_fails_and_the_server_is_told",
            Vec::new(),
            http::a_call_that_times_out_fails_and_the_server_is_told,
        ),
        harness::trial_needing(
            "http::a_dropped_call_sends_notifications_cancelled",
            Vec::new(),
            http::a_dropped_call_sends_notifications_cancelled,
        ),
        harness::trial_needing(
            "http::list_changed_refreshes_the_tools",
            Vec::new(),
            http::list_changed_refreshes_the_tools,
        ),
        harness::trial_needing(
            "http::an_unreachable_server_fails_to_connect_with_the_reason",
            Vec::new(),
            http::an_unreachable_server_fails_to_connect_with_the_reason,
        ),
        harness::trial_needing(
            "server::a_websocket_client_sees_an_mcp_call_as_tool_events_in_order",
            Vec::new(),
            server::a_websocket_client_sees_an_mcp_call_as_tool_events_in_order,
        ),
        harness::trial_needing(
            "server::cancelling_a_run_cancels_its_mcp_call",
            Vec::new(),
            server::cancelling_a_run_cancels_its_mcp_call,
        ),
        harness::trial_needing(
            "server::a_required_server_that_cannot_start_stops_startup_with_one_clear_line",
            Vec::new(),
            server::a_required_server_that_cannot_start_stops_startup_with_one_clear_line,
        ),
        harness::trial_needing(
            "server::an_optional_server_that_cannot_start_is_skipped",
            Vec::new(),
            server::an_optional_server_that_cannot_start_is_skipped,
        ),
    ]
}

/// server-everything over stdio (needs Node), and the LLM agent driving MCP tools.
fn stdio_trials() -> Vec<libtest_mimic::Trial> {
    vec![
        harness::trial(
            "stdio::tools_are_listed_with_their_description_and_schema",
            "AGENTWIRE_REQUIRE_INTEROP",
            server_everything_ready,
            stdio::tools_are_listed_with_their_description_and_schema,
        ),
        harness::trial(
            "stdio::echo_add_and_an_error_reach_the_user_as_tool_events",
            "AGENTWIRE_REQUIRE_INTEROP",
            server_everything_ready,
            stdio::echo_add_and_an_error_reach_the_user_as_tool_events,
        ),
        harness::trial(
            "stdio::progress_of_a_long_operation_becomes_thinking_lines_of_the_call",
            "AGENTWIRE_REQUIRE_INTEROP",
            server_everything_ready,
            stdio::progress_of_a_long_operation_becomes_thinking_lines_of_the_call,
        ),
        harness::trial(
            "stdio::a_server_killed_mid_call_fails_the_call_and_is_restarted",
            "AGENTWIRE_REQUIRE_INTEROP",
            server_everything_ready,
            stdio::a_server_killed_mid_call_fails_the_call_and_is_restarted,
        ),
        harness::trial_needing(
            "llm::the_model_calls_mcp_tools_under_mapped_names_and_the_user_sees_their_names",
            Vec::new(),
            llm::the_model_calls_mcp_tools_under_mapped_names_and_the_user_sees_their_names,
        ),
        harness::trial_needing(
            "llm::an_agent_naming_an_unknown_mcp_server_or_tool_stops_startup",
            Vec::new(),
            llm::an_agent_naming_an_unknown_mcp_server_or_tool_stops_startup,
        ),
        harness::trial(
            "llm::progress_of_an_mcp_call_the_model_made_reaches_the_user_as_thinking_lines",
            "AGENTWIRE_REQUIRE_INTEROP",
            server_everything_ready,
            llm::progress_of_an_mcp_call_the_model_made_reaches_the_user_as_thinking_lines,
        ),
    ]
}
