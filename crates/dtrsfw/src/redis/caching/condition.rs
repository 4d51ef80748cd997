//! `cache_only_for`: when a call is cached.
//!
//! A condition compares one argument with a value; a call is cached when *any* condition
//! holds (the Python package's semantics), and always when there are none. Values are
//! compared as JSON with Python's rules where they are defined: `1 == 1.0`, strings by
//! code point, `in` on a list (membership), a string (substring) or an object (key).
//! Comparisons Python would reject (`"a" < 1`) are simply false.

use std::cmp::Ordering;

use serde_json::Value;

use super::operator::Operator;

/// One validated condition.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    pub(crate) argument: String,
    pub(crate) operator: Operator,
    pub(crate) value: Value,
}

impl Condition {
    /// Whether the condition holds for the argument's value.
    pub(crate) fn holds(&self, argument: &Value) -> bool {
        let ordering = || compare(argument, &self.value);
        match self.operator {
            Operator::In => contains(&self.value, argument),
            Operator::NotIn => !contains(&self.value, argument),
            Operator::Eq => py_eq(argument, &self.value),
            Operator::Ne => !py_eq(argument, &self.value),
            Operator::Lt => ordering() == Some(Ordering::Less),
            Operator::Le => matches!(ordering(), Some(Ordering::Less | Ordering::Equal)),
            Operator::Gt => ordering() == Some(Ordering::Greater),
            Operator::Ge => matches!(ordering(), Some(Ordering::Greater | Ordering::Equal)),
        }
    }
}

/// Python's `needle in haystack` for JSON values.
fn contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::Array(items), _) => items.iter().any(|item| py_eq(item, needle)),
        (Value::String(s), Value::String(n)) => s.contains(n.as_str()),
        (Value::Object(map), Value::String(n)) => map.contains_key(n),
        _ => false,
    }
}

/// Python's `==` for JSON values: numbers by value whatever their representation.
fn py_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| py_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Python's ordering of two numbers or two strings; `None` where Python raises.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => Some(x.cmp(&y)),
            (_, _, Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn holds(op: &str, arg: &Value, value: Value) -> bool {
        Condition {
            argument: "a".into(),
            operator: op.parse().unwrap(),
            value,
        }
        .holds(arg)
    }

    #[test]
    fn operators_follow_python() {
        assert!(holds("in", &json!("used"), json!(["used", "new"])));
        assert!(!holds("in", &json!("old"), json!(["used", "new"])));
        assert!(holds("in", &json!(1.0), json!([1, 2])));
        assert!(holds("in", &json!("se"), json!("used")));
        assert!(holds("not in", &json!("old"), json!(["used"])));
        assert!(holds("==", &json!(2), json!(2.0)));
        assert!(holds("!=", &json!("a"), json!("b")));
        assert!(holds("<", &json!(1), json!(1.5)));
        assert!(holds("<=", &json!("a"), json!("a")));
        assert!(holds(">", &json!(u64::MAX), json!(-1)));
        assert!(holds(">=", &json!(2020), json!(2020)));
        assert!(!holds("<", &json!("a"), json!(1)), "mixed types never order");
    }
}
