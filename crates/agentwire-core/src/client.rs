//! Frames a client sends (docs/protocol.md, client → server) and how they are decoded.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::wire::{ErrorCode, FrameError};
use crate::{RunId, ThreadId};

/// `user_message`: start a run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserMessage {
    /// The client's request id, echoed in the `ack`.
    pub id: String,
    /// The user's text.
    pub content: String,
    /// The agent to run.
    #[serde(default = "default_agent")]
    pub agent: String,
    /// The thread to continue; a new one when absent.
    #[serde(default)]
    pub thread_id: Option<ThreadId>,
}

/// The agent a run goes to when the client names none (`user_message` on `/ws`, `POST /v1/runs`).
pub const DEFAULT_AGENT: &str = "demo";

fn default_agent() -> String {
    DEFAULT_AGENT.to_owned()
}

/// A frame a client sends (docs/protocol.md, client → server).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientFrame {
    /// Start a run.
    UserMessage(UserMessage),
    /// Cancel one of the user's runs.
    Cancel {
        /// The client's request id.
        id: String,
        /// The run to cancel.
        run_id: RunId,
    },
    /// Replay what was missed after `last_seq`, then go on live.
    Resume {
        /// The last seq the client saw.
        last_seq: u64,
        /// The epoch that seq belongs to.
        epoch: Option<String>,
    },
    /// Liveness probe, answered with `pong`.
    Ping {
        /// The client's request id.
        id: String,
    },
    /// New credentials for the connection, sent before the old ones expire.
    Refresh {
        /// The client's request id.
        id: String,
        /// The new token; it must prove the connection's user.
        token: String,
    },
}

impl ClientFrame {
    /// Parses one text frame.
    ///
    /// # Errors
    /// `bad_json` when the text is not a JSON object, `unknown_type` for a missing or unknown
    /// `type`, `invalid_field` when a field is missing, mistyped or out of range. The error carries
    /// the request `id` whenever the frame had one, so the client can match it.
    pub fn decode(text: &str) -> Result<Self, FrameError> {
        match fast::decode(text) {
            Some(frame) => Ok(frame),
            None => Self::decode_exact(text),
        }
    }

    /// The reference decoder: every frame, every error with its exact message.
    fn decode_exact(text: &str) -> Result<Self, FrameError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            FrameError::new(ErrorCode::BadJson, format!("not valid JSON: {e}"), None)
        })?;
        let Value::Object(mut map) = value else {
            return Err(FrameError::new(
                ErrorCode::BadJson,
                "a frame must be a JSON object",
                None,
            ));
        };
        let id = map.get("id").and_then(Value::as_str).map(str::to_owned);
        let ty = take_type(&mut map, &id)?;
        let invalid = |e: serde_json::Error| {
            FrameError::new(ErrorCode::InvalidField, format!("{ty}: {e}"), id.clone())
        };
        let rest = Value::Object(map);
        match ty.as_str() {
            "user_message" => {
                let m: UserMessage = serde_json::from_value(rest).map_err(invalid)?;
                check_user_message(&m, id)?;
                Ok(ClientFrame::UserMessage(m))
            }
            "cancel" => decode_cancel(rest).map_err(invalid),
            "resume" => decode_resume(rest).map_err(invalid),
            "ping" => decode_ping(rest).map_err(invalid),
            "refresh" => decode_refresh(rest, id.clone()),
            other => Err(FrameError::new(
                ErrorCode::UnknownType,
                format!(
                    "unknown frame type {:?}; expected user_message, cancel, resume, ping or refresh",
                    truncate(other, 40)
                ),
                id,
            )),
        }
    }
}

fn decode_cancel(rest: Value) -> serde_json::Result<ClientFrame> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cancel {
        id: String,
        run_id: RunId,
    }
    let c: Cancel = serde_json::from_value(rest)?;
    Ok(ClientFrame::Cancel {
        id: c.id,
        run_id: c.run_id,
    })
}

fn decode_resume(rest: Value) -> serde_json::Result<ClientFrame> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Resume {
        #[serde(default, rename = "id")]
        _id: Option<String>,
        last_seq: u64,
        #[serde(default)]
        epoch: Option<String>,
    }
    let r: Resume = serde_json::from_value(rest)?;
    Ok(ClientFrame::Resume {
        last_seq: r.last_seq,
        epoch: r.epoch,
    })
}

fn decode_ping(rest: Value) -> serde_json::Result<ClientFrame> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ping {
        id: String,
    }
    let p: Ping = serde_json::from_value(rest)?;
    Ok(ClientFrame::Ping { id: p.id })
}

fn decode_refresh(rest: Value, id: Option<String>) -> Result<ClientFrame, FrameError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Refresh {
        id: String,
        token: String,
    }
    let r: Refresh = serde_json::from_value(rest).map_err(|e| {
        FrameError::new(ErrorCode::InvalidField, format!("refresh: {e}"), id.clone())
    })?;
    if r.token.is_empty() {
        return Err(FrameError::new(
            ErrorCode::InvalidField,
            "refresh: `token` must not be empty",
            id,
        ));
    }
    Ok(ClientFrame::Refresh {
        id: r.id,
        token: r.token,
    })
}

/// Removes the frame's `type` from `map`.
fn take_type(
    map: &mut serde_json::Map<String, Value>,
    id: &Option<String>,
) -> Result<String, FrameError> {
    match map.remove("type") {
        Some(Value::String(t)) => Ok(t),
        Some(_) => Err(FrameError::new(
            ErrorCode::InvalidField,
            "`type` must be a string",
            id.clone(),
        )),
        None => Err(FrameError::new(
            ErrorCode::UnknownType,
            "the frame has no `type`",
            id.clone(),
        )),
    }
}

/// The limits of a decoded `user_message` (docs/protocol.md).
fn check_user_message(m: &UserMessage, id: Option<String>) -> Result<(), FrameError> {
    if m.id.is_empty() || m.id.len() > crate::ids::MAX_ID_LEN {
        return Err(FrameError::new(
            ErrorCode::InvalidField,
            "`id` must be 1 to 128 bytes",
            id,
        ));
    }
    if m.content.trim().is_empty() {
        return Err(FrameError::new(
            ErrorCode::InvalidField,
            "`content` must not be empty",
            id,
        ));
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The common frames (`user_message`, `ping`) in one borrowed pass, without building a JSON
/// value first: every run starts with one. It accepts only frames that [`ClientFrame::decode_exact`]
/// accepts with the same result, and returns `None` for everything else — an error, another
/// type, an unknown field, a `null` — which then takes the exact path for its error message.
mod fast {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Flat<'a> {
        #[serde(rename = "type", borrow)]
        ty: Cow<'a, str>,
        #[serde(default, borrow, deserialize_with = "present")]
        id: Option<Cow<'a, str>>,
        #[serde(default, borrow, deserialize_with = "present")]
        content: Option<Cow<'a, str>>,
        #[serde(default, borrow, deserialize_with = "present")]
        agent: Option<Cow<'a, str>>,
        /// `Some(None)` for an explicit `null`, which `user_message` allows and `ping` does not.
        #[serde(default, borrow, deserialize_with = "present_or_null")]
        thread_id: Option<Option<Cow<'a, str>>>,
    }

    /// A field that is there: a string (`null` is refused, unlike a plain `Option`).
    fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
        Cow::<'de, str>::deserialize(d).map(Some)
    }

    fn present_or_null<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<Cow<'de, str>>>, D::Error> {
        Option::<Cow<'de, str>>::deserialize(d).map(Some)
    }

    pub(super) fn decode(text: &str) -> Option<ClientFrame> {
        let flat: Flat<'_> = serde_json::from_str(text).ok()?;
        match &*flat.ty {
            "user_message" => {
                let thread_id = match flat.thread_id.flatten() {
                    Some(t) => Some(ThreadId::new(t.into_owned()).ok()?),
                    None => None,
                };
                let m = UserMessage {
                    id: flat.id?.into_owned(),
                    content: flat.content?.into_owned(),
                    agent: flat.agent.map_or_else(default_agent, Cow::into_owned),
                    thread_id,
                };
                check_user_message(&m, None).ok()?;
                Some(ClientFrame::UserMessage(m))
            }
            "ping"
                if flat.content.is_none() && flat.agent.is_none() && flat.thread_id.is_none() =>
            {
                Some(ClientFrame::Ping {
                    id: flat.id?.into_owned(),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        ClientFrame::decode(text).unwrap_err().code
    }

    #[test]
    fn decodes_each_client_frame() {
        let m = ClientFrame::decode(r#"{"type":"user_message","id":"c1","content":"hi"}"#).unwrap();
        let ClientFrame::UserMessage(m) = m else {
            panic!("not a user_message")
        };
        assert_eq!(
            (m.id.as_str(), m.agent.as_str(), m.thread_id),
            ("c1", "demo", None)
        );
        assert!(matches!(
            ClientFrame::decode(r#"{"type":"ping","id":"p"}"#),
            Ok(ClientFrame::Ping { .. })
        ));
        assert!(matches!(
            ClientFrame::decode(r#"{"type":"resume","last_seq":3}"#),
            Ok(ClientFrame::Resume {
                last_seq: 3,
                epoch: None
            })
        ));
        assert!(matches!(
            ClientFrame::decode(r#"{"type":"cancel","id":"x","run_id":"r_1"}"#),
            Ok(ClientFrame::Cancel { .. })
        ));
        assert_eq!(
            ClientFrame::decode(r#"{"type":"refresh","id":"f1","token":"a.b.c"}"#),
            Ok(ClientFrame::Refresh {
                id: "f1".into(),
                token: "a.b.c".into()
            })
        );
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(code("{not json"), ErrorCode::BadJson);
        assert_eq!(code("[1,2]"), ErrorCode::BadJson);
        assert_eq!(code(r#"{"id":"x"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"dance","id":"x"}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type":"user_message","id":"x"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"user_message","id":"x","content":"  "}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"user_message","id":"x","content":"a","thread_id":"bad id"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"resume","last_seq":-1}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::InvalidField);
        assert_eq!(
            code(r#"{"type":"refresh","id":"f"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"refresh","id":"f","token":""}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"refresh","id":"f","token":7}"#),
            ErrorCode::InvalidField
        );
        let e = ClientFrame::decode(r#"{"type":"nope","id":"req-9"}"#).unwrap_err();
        assert_eq!(e.id.as_deref(), Some("req-9"));
    }

    #[test]
    fn the_fast_path_agrees_with_the_exact_decoder() {
        let frames = [
            r#"{"type":"user_message","id":"c1","content":"hi"}"#,
            r#"{"type":"user_message","id":"c1","content":"hi","agent":"echo"}"#,
            r#"{"type":"user_message","id":"c1","content":"h\u00e9 \"q\"","thread_id":"t_1"}"#,
            r#"{"type":"user_message","id":"c1","content":"hi","thread_id":null}"#,
            r#"{"type":"user_message","id":"c1","content":"hi","agent":null}"#,
            r#"{"type":"user_message","id":null,"content":"hi"}"#,
            r#"{"type":"user_message","id":"c1","content":"hi","thread_id":"bad id"}"#,
            r#"{"type":"user_message","id":"c1","content":"hi","extra":1}"#,
            r#"{"type":"user_message","id":"c1","content":"hi","id":"c2"}"#,
            r#"{"type":"user_message","id":"","content":"hi"}"#,
            r#"{"type":"user_message","id":"c1","content":" "}"#,
            r#"{"type":"user_message","id":"c1"}"#,
            r#"{"type":"ping","id":"p1"}"#,
            r#"{"type":"ping","id":"p1","content":"x"}"#,
            r#"{"type":"ping","id":"p1","thread_id":null}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"cancel","id":"x","run_id":"r_1"}"#,
            r#"{"type":"resume","last_seq":3}"#,
            r#"{"type":7}"#,
            r#"[1]"#,
            r#"{"#,
        ];
        for text in frames {
            let exact = ClientFrame::decode_exact(text);
            if let Some(fast) = fast::decode(text) {
                assert_eq!(Ok(fast), exact, "{text}");
            }
            assert_eq!(ClientFrame::decode(text), exact, "{text}");
        }
        assert!(
            fast::decode(frames[0]).is_some(),
            "the common frame is fast"
        );
        assert!(fast::decode(frames[12]).is_some(), "ping is fast");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        /// Frames assembled from the keys the decoders know (and one they do not) with values of
        /// every JSON kind: whenever the fast path answers, the exact decoder agrees.
        #[test]
        fn the_fast_path_never_disagrees(
            ty in 0usize..3,
            fields in proptest::collection::vec((1usize..8, 0usize..9), 0..6)
        ) {
            const KEYS: [&str; 8] =
                ["type", "id", "content", "agent", "thread_id", "last_seq", "extra", "type"];
            const VALUES: [&str; 9] = [
                r#""user_message""#, r#""ping""#, r#""c1""#, r#""t_1""#, r#""a \"b\" \u00e9""#,
                "null", "7", "true", r#"["x"]"#,
            ];
            let mut body = vec![format!("\"type\":{}", VALUES[ty])];
            body.extend(fields.iter().map(|(k, v)| format!("\"{}\":{}", KEYS[*k], VALUES[*v])));
            let text = format!("{{{}}}", body.join(","));
            if let Some(fast) = fast::decode(&text) {
                proptest::prop_assert_eq!(Ok(fast), ClientFrame::decode_exact(&text), "{}", text);
            }
        }
    }
}
