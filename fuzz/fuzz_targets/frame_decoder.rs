//! Any inbound text frame: the decoder never panics, and every refusal carries a wire code and
//! a message; an accepted frame re-validates its own fields.
#![no_main]

use agentwire_core::ClientFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match ClientFrame::decode(text) {
        Ok(ClientFrame::UserMessage(m)) => {
            assert!(!m.id.is_empty() && m.id.len() <= 128);
            assert!(!m.content.trim().is_empty());
        }
        Ok(_) => {}
        Err(e) => {
            assert!(!e.message.is_empty());
            // The error frame itself must serialize to JSON.
            let frame = e.to_frame();
            let _: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
        }
    }
});
