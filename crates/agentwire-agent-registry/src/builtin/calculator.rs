use async_trait::async_trait;
use serde_json::{Value, json};

use crate::Tool;

/// `calculator` tool: evaluates `args.expression` (`+ - * / %`, parentheses, decimals).
#[derive(Debug, Clone, Copy, Default)]
pub struct CalculatorTool;

#[async_trait]
impl Tool for CalculatorTool {
    fn name(&self) -> &str {
        "calculator"
    }

    fn description(&self) -> &str {
        "Evaluates an arithmetic expression: + - * / %, parentheses, decimals."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "The arithmetic to evaluate, e.g. \"(2 + 3) * 4 / 5\"."
                }
            },
            "required": ["expression"],
            "additionalProperties": false
        })
    }

    async fn call(&self, args: Value) -> Result<Value, String> {
        let expr = args
            .get("expression")
            .and_then(Value::as_str)
            .ok_or("`expression` must be a string")?;
        let v = evaluate(expr)?;
        // Whole numbers read better as integers.
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            Ok(json!(v as i64))
        } else {
            Ok(json!(v))
        }
    }
}

/// The longest run of arithmetic in `text` that has a digit and an operator, e.g. `"2 + 2"` in
/// `"what is 2 + 2?"`.
pub fn find_expression(text: &str) -> Option<String> {
    let is_arith = |c: char| c.is_ascii_digit() || "+-*/%().x× ".contains(c);
    let mut best: Option<String> = None;
    for part in text.split(|c: char| !is_arith(c)) {
        let candidate = part.trim().trim_end_matches('.').replace(['x', '×'], "*");
        let has_digit = candidate.chars().any(|c| c.is_ascii_digit());
        let has_op = candidate.chars().skip(1).any(|c| "+-*/%".contains(c));
        if has_digit && has_op && best.as_ref().is_none_or(|b| candidate.len() > b.len()) {
            best = Some(candidate);
        }
    }
    best
}

/// Evaluates an arithmetic expression.
///
/// # Errors
/// A message naming what is wrong (unexpected character, division by zero, …).
pub fn evaluate(expr: &str) -> Result<f64, String> {
    let tokens: Vec<char> = expr.chars().filter(|c| !c.is_whitespace()).collect();
    if tokens.len() > 256 {
        return Err("the expression is too long (256 characters at most)".into());
    }
    let mut p = Parser {
        t: &tokens,
        i: 0,
        depth: 0,
    };
    let v = p.sum()?;
    if p.i != tokens.len() {
        return Err(format!(
            "unexpected {:?} at position {}",
            tokens[p.i],
            p.i + 1
        ));
    }
    if !v.is_finite() {
        return Err("the result is not a finite number".into());
    }
    Ok(v)
}

struct Parser<'a> {
    t: &'a [char],
    i: usize,
    depth: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.t.get(self.i).copied()
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut v = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.i += 1;
            let r = self.product()?;
            v = if op == '+' { v + r } else { v - r };
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        while let Some(op @ ('*' | '/' | '%')) = self.peek() {
            self.i += 1;
            let r = self.unary()?;
            if op != '*' && r == 0.0 {
                return Err("division by zero".into());
            }
            v = match op {
                '*' => v * r,
                '/' => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<f64, String> {
        if self.peek() == Some('-') {
            self.i += 1;
            return Ok(-self.unary()?);
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some('(') => {
                self.depth += 1;
                if self.depth > 32 {
                    return Err("too many nested parentheses".into());
                }
                self.i += 1;
                let v = self.sum()?;
                if self.peek() != Some(')') {
                    return Err("missing closing parenthesis".into());
                }
                self.i += 1;
                self.depth -= 1;
                Ok(v)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
                    self.i += 1;
                }
                let s: String = self.t[start..self.i].iter().collect();
                s.parse().map_err(|_| format!("{s:?} is not a number"))
            }
            Some(c) => Err(format!("unexpected {c:?} at position {}", self.i + 1)),
            None => Err("the expression ended early".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_with_precedence() {
        assert_eq!(evaluate("2+2"), Ok(4.0));
        assert_eq!(evaluate("2 + 3 * (4 - 1) / 3"), Ok(5.0));
        assert_eq!(evaluate("-1.5*2"), Ok(-3.0));
        assert_eq!(evaluate("7 % 4"), Ok(3.0));
        assert!(evaluate("1/0").is_err());
        assert!(evaluate("2+").is_err());
        assert!(evaluate("(1").is_err());
        assert!(evaluate(&"(".repeat(100)).is_err());
    }

    #[test]
    fn finds_arithmetic_in_text() {
        assert_eq!(find_expression("What is 2 + 2?").as_deref(), Some("2 + 2"));
        assert_eq!(
            find_expression("compute (3+4)*5 please").as_deref(),
            Some("(3+4)*5")
        );
        assert_eq!(find_expression("12 x 3").as_deref(), Some("12 * 3"));
        assert_eq!(find_expression("hello world"), None);
        assert_eq!(find_expression("it is 2025"), None);
    }
}
