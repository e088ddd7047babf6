use async_trait::async_trait;
use serde_json::{Value, json};

use super::{DemoSettings, find_expression, pause};
use crate::{Agent, AgentError, RunContext};

/// `demo`: thinks in three steps, calls `clock` and (for arithmetic) `calculator`, and streams
/// its answer word by word, with small pauses so a person can watch.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoAgent {
    settings: DemoSettings,
}

impl DemoAgent {
    /// A demo agent with these pauses.
    pub fn new(settings: DemoSettings) -> Self {
        Self { settings }
    }
}

#[async_trait]
impl Agent for DemoAgent {
    fn name(&self) -> &str {
        "demo"
    }

    fn description(&self) -> &str {
        "Thinks, checks the clock, does arithmetic with the calculator, and streams an answer."
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
        let input = ctx.input();
        let short: String = input.chars().take(80).collect();
        ctx.think(
            format!("Reading the question: \u{201c}{short}\u{201d}"),
            Some(1),
        )
        .await?;
        pause(self.settings.step_delay).await;

        let clock = ctx.call_tool("clock", json!({})).await?;
        let now = clock["utc"]
            .as_str()
            .unwrap_or("an unknown time")
            .to_owned();

        let answer = if let Some(expr) = find_expression(input) {
            ctx.think(
                format!("I see arithmetic: {expr}. Using the calculator."),
                Some(2),
            )
            .await?;
            pause(self.settings.step_delay).await;
            match ctx
                .call_tool("calculator", json!({ "expression": expr }))
                .await
            {
                Ok(v) => format!("{expr} = {v}. (Computed at {now}.)"),
                Err(AgentError::Tool { message, .. }) => {
                    format!("I could not compute {expr}: {message}.")
                }
                Err(e) => return Err(e),
            }
        } else {
            ctx.think("No arithmetic here, so I will tell you the time.", Some(2))
                .await?;
            pause(self.settings.step_delay).await;
            format!("You said \u{201c}{short}\u{201d}. It is {now} UTC.")
        };

        ctx.think("Writing the answer", Some(3)).await?;
        pause(self.settings.step_delay).await;
        let message_id = format!(
            "m_{}",
            ctx.user_context().run_id.as_str().trim_start_matches("r_")
        );
        for piece in answer.split_inclusive(' ') {
            ctx.say(&message_id, piece).await?;
            pause(self.settings.token_delay).await;
        }
        Ok(json!({ "answer": answer }))
    }
}
