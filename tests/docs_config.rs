//! Keeps `docs/configuration.md` honest: its key table must list exactly the leaf keys of
//! `AgentwireConfig`, each with the env name the loader reads and the default the code has.
//!
//! Run with: `cargo test --test docs_config`

use std::collections::{BTreeMap, BTreeSet};

use agentwire_llm::OpenAiAgentConfig;
use agentwire_startup::{AgentDefinition, AgentwireConfig, ConfigOverrides};
use serde_json::Value;

const DOC: &str = include_str!("../docs/configuration.md");

/// Dotted leaf keys of a serialized config, with their values. `null` (an unset `Option`) is a
/// leaf, like any scalar.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_owned(), leaf.clone());
        }
    }
}

/// The cells of one markdown table row, trimmed. `\|` is a pipe inside a cell.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().expect("one cell").push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().expect("one cell").push(c),
        }
    }
    out.iter().map(|c| c.trim().to_owned()).collect()
}

/// The text of the first `code span` in a cell.
fn first_code(cell: &str) -> Option<&str> {
    let start = cell.find('`')? + 1;
    let len = cell[start..].find('`')?;
    Some(&cell[start..start + len])
}

/// One documented key: its row's cells by column name.
struct Row {
    key: String,
    env: String,
    default: String,
}

/// The rows of the key table: the table whose header's first cell is `key`.
fn documented_rows() -> Vec<Row> {
    table_rows("key")
}

/// The rows of the table whose header's first cell is `first`.
fn table_rows(first: &str) -> Vec<Row> {
    let mut lines = DOC.lines().skip_while(|l| {
        let l = l.trim();
        !(l.starts_with('|') && cells(l).first().is_some_and(|c| c == first))
    });
    let header = cells(
        lines
            .next()
            .unwrap_or_else(|| panic!("docs/configuration.md has a table headed `| {first} |`")),
    );
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("the key table has a `{name}` column: {header:?}"))
    };
    let (env_col, default_col) = (col("env"), col("default"));
    lines
        .skip(1) // the |---| separator
        .take_while(|l| l.trim().starts_with('|'))
        .map(|l| {
            let c = cells(l);
            let key = first_code(&c[0])
                .unwrap_or_else(|| panic!("first cell is a `key` in backticks: {l}"))
                .to_owned();
            Row {
                key,
                env: c.get(env_col).cloned().unwrap_or_default(),
                default: c.get(default_col).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

fn code_keys() -> BTreeMap<String, Value> {
    let json = serde_json::to_value(AgentwireConfig::default()).expect("the config serializes");
    let mut keys = BTreeMap::new();
    flatten("", &json, &mut keys);
    keys
}

#[test]
fn the_key_table_lists_exactly_the_config_keys() {
    let code = code_keys();
    let rows = documented_rows();
    let documented: BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(documented.len(), rows.len(), "a key is documented twice");
    let in_code: BTreeSet<&str> = code.keys().map(String::as_str).collect();
    let missing: Vec<_> = in_code.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&in_code).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/configuration.md is out of date.\n  keys in AgentwireConfig but not documented: {missing:?}\n  documented keys that AgentwireConfig does not have: {extra:?}"
    );
}

#[test]
fn every_env_name_is_the_prefixed_upper_case_path() {
    for row in documented_rows() {
        let expected = format!(
            "AGENTWIRE_{}",
            row.key.to_ascii_uppercase().replace('.', "__")
        );
        assert_eq!(
            first_code(&row.env),
            Some(expected.as_str()),
            "env name of `{}`",
            row.key
        );
    }
}

#[test]
fn every_documented_default_is_the_code_default() {
    let code = code_keys();
    for row in documented_rows() {
        let Some(value) = code.get(&row.key) else {
            continue; // reported by the_key_table_lists_exactly_the_config_keys
        };
        match value {
            Value::Null => assert!(
                row.default.starts_with("none"),
                "`{}` is unset by default; its default cell must start with `none`: {:?}",
                row.key,
                row.default
            ),
            Value::String(s) => assert_eq!(
                first_code(&row.default),
                Some(s.as_str()),
                "default of `{}`",
                row.key
            ),
            other => assert_eq!(
                first_code(&row.default),
                Some(other.to_string().as_str()),
                "default of `{}`",
                row.key
            ),
        }
    }
}

/// The keys of an `[agents.<name>]` table with `kind = "openai"`, every optional key set so it
/// shows up, and the defaults of a config with only the required keys.
fn agent_keys() -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
    let mut full = OpenAiAgentConfig::new("http://127.0.0.1:1/v1", "m");
    full.api_key_env = Some("KEY".into());
    full.description = Some("d".into());
    full.system_prompt = Some("p".into());
    full.temperature = Some(0.5);
    full.max_tokens = Some(10);
    let mut keys = BTreeMap::new();
    let json = serde_json::to_value(AgentDefinition::Openai(full)).unwrap();
    flatten("", &json, &mut keys);
    let mut defaults = BTreeMap::new();
    let json = serde_json::to_value(OpenAiAgentConfig::new("http://127.0.0.1:1/v1", "m")).unwrap();
    flatten("", &json, &mut defaults);
    (keys, defaults)
}

#[test]
fn the_agent_key_table_lists_exactly_the_openai_agent_keys_with_their_defaults() {
    let (keys, defaults) = agent_keys();
    let rows = table_rows("agent key");
    let documented: BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let in_code: BTreeSet<&str> = keys.keys().map(String::as_str).collect();
    assert_eq!(
        documented, in_code,
        "docs/configuration.md's agent key table is out of date"
    );
    for row in &rows {
        let env = format!(
            "AGENTWIRE_AGENTS__<NAME>__{}",
            row.key.to_ascii_uppercase().replace('.', "__")
        );
        assert_eq!(
            first_code(&row.env),
            Some(env.as_str()),
            "env of `{}`",
            row.key
        );
        if row.default.starts_with("required") || row.default.starts_with("none") {
            assert!(
                !defaults.contains_key(&row.key)
                    || ["base_url", "model"].contains(&row.key.as_str()),
                "`{}` has a default in code",
                row.key
            );
            continue;
        }
        let value = &defaults[&row.key];
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(
            first_code(&row.default),
            Some(text.as_str()),
            "default of `{}`",
            row.key
        );
    }
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail decides the closure's error type
fn an_agent_table_loads_and_env_overrides_its_keys() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "agentwire.toml",
            r#"
                [agents.demo]
                step_delay = "0ms"

                [agents.assistant]
                kind = "openai"
                base_url = "http://127.0.0.1:11434/v1"
                model = "qwen2.5:7b"
                api_key_env = "OPENAI_API_KEY"
                system_prompt = "You are a helpful assistant."
                tools = ["calculator", "clock"]
                max_steps = 8
                temperature = 0.2
                request_timeout = "60s"
            "#,
        )?;
        jail.set_env("AGENTWIRE_AGENTS__ASSISTANT__MODEL", "llama3.2");
        jail.set_env("AGENTWIRE_AGENTS__ASSISTANT__MEMORY__MAX_TURNS", "3");
        jail.set_env("OPENAI_API_KEY", "sk-never-printed");
        // An agent defined by env alone (the README's two lines).
        jail.set_env("AGENTWIRE_AGENTS__LOCAL__KIND", "openai");
        jail.set_env(
            "AGENTWIRE_AGENTS__LOCAL__BASE_URL",
            "http://127.0.0.1:11434/v1",
        );
        jail.set_env("AGENTWIRE_AGENTS__LOCAL__MODEL", "qwen2.5:7b");
        let config = AgentwireConfig::load(
            Some(std::path::Path::new("agentwire.toml")),
            &ConfigOverrides::default(),
        )
        .map_err(|e| e.to_string())?;
        let AgentDefinition::Openai(agent) = &config.agents.defined["assistant"] else {
            return Err("not an openai agent".into());
        };
        assert_eq!(agent.model, "llama3.2");
        assert_eq!(agent.memory.max_turns, 3);
        assert_eq!(agent.tools, ["calculator", "clock"]);
        assert_eq!(agent.temperature, Some(0.2));
        assert_eq!(agent.request_timeout, std::time::Duration::from_secs(60));
        assert_eq!(config.agents.demo.step_delay, std::time::Duration::ZERO);
        let AgentDefinition::Openai(local) = &config.agents.defined["local"] else {
            return Err("not an openai agent".into());
        };
        assert_eq!(local.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(local.model, "qwen2.5:7b");
        assert!(!format!("{config:?}").contains("sk-never-printed"));
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail decides the closure's error type
fn an_unknown_kind_or_agent_key_is_a_config_error() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "bad_kind.toml",
            "[agents.x]\nkind = \"magic\"\nbase_url = \"http://h/v1\"\nmodel = \"m\"\n",
        )?;
        let e = AgentwireConfig::load(
            Some(std::path::Path::new("bad_kind.toml")),
            &ConfigOverrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
        jail.create_file(
            "bad_key.toml",
            "[agents.x]\nkind = \"openai\"\nbase_url = \"http://h/v1\"\nmodel = \"m\"\nmodle = 1\n",
        )?;
        let e = AgentwireConfig::load(
            Some(std::path::Path::new("bad_key.toml")),
            &ConfigOverrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("modle"), "{e}");
        jail.create_file(
            "bad_url.toml",
            "[agents.x]\nkind = \"openai\"\nbase_url = \"localhost/v1\"\nmodel = \"m\"\n",
        )?;
        let e = AgentwireConfig::load(
            Some(std::path::Path::new("bad_url.toml")),
            &ConfigOverrides::default(),
        )
        .unwrap_err();
        assert_eq!(e.component, "agents.x");
        Ok(())
    });
}
