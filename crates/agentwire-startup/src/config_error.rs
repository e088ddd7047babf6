//! A configuration error in the words of the place it came from: the key as written in the
//! TOML file (`history.ttl`) or in the environment (`AGENTWIRE_HISTORY__TTL`), without the
//! loader's profile name and without nested quoting.

use figment::error::Kind;

/// The key as the user wrote it, and what is wrong with it (naming the file when there is one).
pub(crate) fn describe(error: &figment::Error) -> (String, String) {
    let mut path = error.path.clone();
    let problem = match &error.kind {
        // figment's path usually ends with the unknown field already, but not inside a
        // flattened table (`[agents.<name>]`).
        Kind::UnknownField(field, expected) => {
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            format!("unknown key; the keys here are {}", expected.join(", "))
        }
        Kind::UnknownVariant(found, expected) => {
            format!(
                "unknown value {found:?}; use one of {}",
                expected.join(", ")
            )
        }
        Kind::MissingField(field) => {
            path.push(field.to_string());
            "missing".into()
        }
        other => other.to_string(),
    };
    let provider = error
        .metadata
        .as_ref()
        .map(|m| m.name.as_ref())
        .unwrap_or("");
    if provider.contains("environment") {
        let key = format!("AGENTWIRE_{}", path.join("__").to_ascii_uppercase());
        return (key, format!("{problem} (environment variable)"));
    }
    let source = error
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .map(|s| format!(" (in {s})"))
        .unwrap_or_default();
    let key = if path.is_empty() {
        "configuration".to_owned()
    } else {
        path.join(".")
    };
    (key, format!("{problem}{source}"))
}

#[cfg(test)]
mod tests {
    use crate::{AgentwireConfig, ConfigOverrides};

    fn load_error(toml: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentwire.toml");
        std::fs::write(&path, toml).unwrap();
        AgentwireConfig::load(Some(&path), &ConfigOverrides::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn file_errors_name_the_key_as_written_in_toml() {
        let e = load_error("[history]\nttl = \"forever\"\n");
        assert!(e.contains(": history.ttl: invalid value"), "{e}");
        assert!(e.contains("agentwire.toml"), "{e}");
        assert!(!e.contains("default."), "{e}");

        let e = load_error("nonsense = 1\n");
        assert!(
            e.contains(": nonsense: unknown key; the keys here are listen, "),
            "{e}"
        );
        assert!(!e.contains("``") && !e.contains("`one of"), "{e}");

        let e = load_error("[auth]\nmode = \"ldap\"\n");
        assert!(
            e.contains("auth.mode: unknown value \"ldap\"; use one of dev, jwt"),
            "{e}"
        );
    }
}
