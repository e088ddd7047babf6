//! An `Arc` of an agent or tool is an agent or tool too, so `register_agent(Arc::new(MyAgent))`
//! and `register_tool(shared_tool.clone())` work as well as passing the value itself, and a
//! tool shared with the rest of an application is registered without a wrapper.
//!
//! Every method of [`Agent`] and [`Tool`] is forwarded here: a method added to either trait
//! must be forwarded too, or an `Arc`-registered implementation silently gets its default.

use std::sync::Arc;

use serde_json::Value;

use crate::{Agent, AgentError, RunContext, Tool, ToolCall, async_trait};

#[async_trait]
impl<T: Agent + ?Sized> Agent for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn description(&self) -> &str {
        (**self).description()
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
        (**self).run(ctx).await
    }
}

#[async_trait]
impl<T: Tool + ?Sized> Tool for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn description(&self) -> &str {
        (**self).description()
    }

    fn parameters(&self) -> Value {
        (**self).parameters()
    }

    async fn call(&self, args: Value) -> Result<Value, String> {
        (**self).call(args).await
    }

    async fn call_in_run(&self, args: Value, call: &ToolCall<'_>) -> Result<Value, String> {
        (**self).call_in_run(args, call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryAgentRegistry;
    use crate::registry::AgentRegistry;

    struct Upper;

    #[async_trait]
    impl Tool for Upper {
        fn name(&self) -> &str {
            "upper"
        }
        fn description(&self) -> &str {
            "Upper-cases `text`."
        }
        async fn call(&self, args: Value) -> Result<Value, String> {
            Ok(args["text"].as_str().unwrap_or("").to_uppercase().into())
        }
    }

    #[tokio::test]
    async fn an_arc_registers_like_the_value_and_forwards_every_method() {
        let shared: Arc<dyn Tool> = Arc::new(Upper);
        let mut registry = InMemoryAgentRegistry::new();
        registry
            .register_tool(Arc::new(Upper))
            .register_tool(shared.clone());
        let tool = registry
            .tool("upper")
            .expect("registered under its own name");
        assert_eq!(tool.description(), "Upper-cases `text`.");
        assert_eq!(
            tool.call(serde_json::json!({"text": "ada"})).await,
            Ok("ADA".into())
        );
    }
}
