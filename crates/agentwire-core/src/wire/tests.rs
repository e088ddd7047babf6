use super::*;

#[test]
fn an_event_frame_knows_its_type_and_a_control_frame_has_none() {
    use crate::{AgentThinking, EventKind, RunEvent};
    let event = RunEvent::now(
        RunId::generate(),
        ThreadId::generate(),
        "demo".into(),
        EventKind::AgentThinking(AgentThinking {
            thought: "agent_started".into(),
            step: None,
        }),
    );
    let frame = Frame::event(3, event.to_envelope_json(3));
    assert_eq!(frame.event_type(), Some("agent_thinking"));
    assert_eq!(frame.accepted(), None);
    let live = frame.clone().accepted_at(Instant::now());
    assert!(live.accepted().is_some());
    assert_eq!(live, frame, "metadata is not part of equality");
    assert_eq!(
        Frame::control(&serde_json::json!({"type": "pong"})).event_type(),
        None
    );
    assert_eq!(
        Frame::event(1, br#"{"type":"agent_started_x"}"#.to_vec()).event_type(),
        None
    );
}

#[test]
fn ack_and_pong_are_written_as_serde_would() {
    let run = RunId::new("r_1").unwrap();
    let thread = ThreadId::new("t_2").unwrap();
    for id in ["c1", "", "a \"quoted\" \\ id\n", "é✓"] {
        for (run_id, thread_id) in [
            (None, None),
            (Some(&run), None),
            (None, Some(&thread)),
            (Some(&run), Some(&thread)),
        ] {
            let ack = ControlFrame::Ack {
                id,
                run_id,
                thread_id,
            };
            assert_eq!(ack.to_frame().as_str(), Frame::control(&ack).as_str());
        }
        let pong = ControlFrame::Pong { id };
        assert_eq!(pong.to_frame().as_str(), Frame::control(&pong).as_str());
    }
}

#[test]
fn control_frames_put_fields_at_the_top_level() {
    let run = RunId::new("r_1").unwrap();
    let f = ControlFrame::Ack {
        id: "c1",
        run_id: Some(&run),
        thread_id: None,
    }
    .to_frame();
    assert_eq!(f.as_str(), r#"{"type":"ack","id":"c1","run_id":"r_1"}"#);
    assert_eq!(f.seq(), 0);
    let refreshed = ControlFrame::Refreshed {
        id: "f1",
        expires_in_ms: Some(3_600_000),
    };
    assert_eq!(
        refreshed.to_frame().as_str(),
        r#"{"type":"ack","id":"f1","expires_in_ms":3600000}"#
    );
    let mut hello = ConnectionEstablished::new(
        ConnectionId::next(),
        UserId::new("ada").unwrap(),
        "e".into(),
        0,
        1,
    );
    let plain = ControlFrame::ConnectionEstablished { data: &hello }.to_frame();
    assert!(
        !plain.as_str().contains("expires_in_ms"),
        "{}",
        plain.as_str()
    );
    hello.expires_in_ms = Some(1500);
    let expiring = ControlFrame::ConnectionEstablished { data: &hello }.to_frame();
    assert!(expiring.as_str().ends_with(r#","expires_in_ms":1500}}"#));
    let e = FrameError::new(ErrorCode::BadJson, "x", None).to_frame();
    assert_eq!(
        e.as_str(),
        r#"{"type":"error","code":"bad_json","message":"x"}"#
    );
}
