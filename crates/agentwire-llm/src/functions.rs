//! `ToolMenu`: the tools an agent offers the model in one run, as OpenAI function definitions,
//! and the way back from a function name the model calls to the agentwire tool.
//!
//! Selectors ending in `*` (`mcp:files/*`) name every registered tool whose name starts with
//! what comes before the `*`; they are expanded when the run starts, so a tool a server adds
//! later (`notifications/tools/list_changed`) is offered from the next run on.
//!
//! OpenAI function names allow only `[a-zA-Z0-9_-]{1,64}`, while agentwire names may hold `:`
//! and `/` (`mcp:files/read_file`): the model sees `mcp__files__read_file`, events show the
//! agentwire name.

use std::collections::HashMap;

use agentwire_agent_registry::{RunContext, ToolInfo};
use serde_json::{Value, json};

/// The longest function name OpenAI accepts.
const MAX_FUNCTION_NAME: usize = 64;

/// The functions offered in one run.
#[derive(Debug, Default)]
pub(crate) struct ToolMenu {
    definitions: Vec<Value>,
    /// Function name → agentwire tool name.
    tools: HashMap<String, String>,
}

impl ToolMenu {
    /// The registered tools `selectors` name, in selector order, each once. A name that is not
    /// registered (any more) is left out; startup checked it existed.
    pub(crate) fn resolve(selectors: &[String], ctx: &RunContext) -> Self {
        let mut registered: Option<Vec<ToolInfo>> = None;
        let mut menu = Self::default();
        for selector in selectors {
            if let Some(prefix) = selector.strip_suffix('*') {
                let all = registered.get_or_insert_with(|| ctx.tools());
                for tool in all.iter().filter(|t| t.name.starts_with(prefix)) {
                    menu.offer(tool);
                }
            } else if let Some(tool) = ctx.tool(selector) {
                menu.offer(&ToolInfo::of(tool.as_ref()));
            }
        }
        menu
    }

    fn offer(&mut self, tool: &ToolInfo) {
        if self.tools.values().any(|t| *t == tool.name) {
            return;
        }
        let function = self.unique_function_name(&tool.name);
        self.definitions
            .push(json!({"type": "function", "function": {
                "name": function,
                "description": tool.description,
                "parameters": tool.parameters,
            }}));
        self.tools.insert(function, tool.name.clone());
    }

    /// [`function_name`], with a numbered suffix when two tools map to the same name.
    fn unique_function_name(&self, tool: &str) -> String {
        let base = function_name(tool);
        let mut name = base.clone();
        let mut n = 1;
        while self.tools.contains_key(&name) {
            n += 1;
            let suffix = format!("_{n}");
            let keep = base.len().min(MAX_FUNCTION_NAME - suffix.len());
            name = format!("{}{suffix}", &base[..keep]);
        }
        name
    }

    /// The function definitions for the request's `tools`.
    pub(crate) fn definitions(&self) -> &[Value] {
        &self.definitions
    }

    /// The agentwire tool behind the function the model called.
    pub(crate) fn tool(&self, function: &str) -> Option<&str> {
        self.tools.get(function).map(String::as_str)
    }

    /// The function names offered, for an error message.
    pub(crate) fn function_names(&self) -> Vec<&str> {
        self.definitions
            .iter()
            .filter_map(|d| d["function"]["name"].as_str())
            .collect()
    }
}

/// The OpenAI function name of an agentwire tool: `:` and `/` become `__`, any other character
/// outside `[a-zA-Z0-9_-]` becomes `_`, and a name over 64 characters keeps its first 55 and a
/// hash of the whole.
pub(crate) fn function_name(tool: &str) -> String {
    let mut name = String::with_capacity(tool.len());
    for c in tool.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => name.push(c),
            ':' | '/' => name.push_str("__"),
            _ => name.push('_'),
        }
    }
    if name.is_empty() {
        name.push('_');
    }
    if name.len() > MAX_FUNCTION_NAME {
        // FNV-1a: stable across runs and builds, unlike the std hasher.
        let hash = tool.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        name.truncate(MAX_FUNCTION_NAME - 9);
        name.push_str(&format!("_{:08x}", hash as u32));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agentwire_names_map_to_valid_function_names() {
        assert_eq!(function_name("calculator"), "calculator");
        assert_eq!(
            function_name("mcp:files/read_file"),
            "mcp__files__read_file"
        );
        assert_eq!(function_name("mcp:my.db/q ry"), "mcp__my_db__q_ry");
        let long = format!("mcp:files/{}", "x".repeat(80));
        let mapped = function_name(&long);
        assert_eq!(mapped.len(), 64);
        assert!(
            mapped
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert_ne!(mapped, function_name(&format!("{long}y")));
    }

    #[test]
    fn colliding_names_get_a_numbered_suffix_and_map_back() {
        let mut menu = ToolMenu::default();
        for name in ["mcp:a/b", "mcp__a__b", "mcp:a/b"] {
            menu.offer(&ToolInfo {
                name: name.into(),
                description: String::new(),
                parameters: json!({"type": "object"}),
            });
        }
        assert_eq!(menu.function_names(), ["mcp__a__b", "mcp__a__b_2"]);
        assert_eq!(menu.tool("mcp__a__b"), Some("mcp:a/b"));
        assert_eq!(menu.tool("mcp__a__b_2"), Some("mcp__a__b"));
        assert_eq!(menu.tool("mcp:a/b"), None);
    }
}
