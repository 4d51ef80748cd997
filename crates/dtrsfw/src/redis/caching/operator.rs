//! The operators of `cache_only_for`, and their one list of spellings.
//!
//! [`SPELLINGS`] is the truth: parsing, the list in error messages ([`OPERATORS`] is
//! generated from it at compile time) and `#[cache_wrapper]`'s compile-time check of an
//! operator (the expansion evaluates [`unknown_operator`] in a constant, spanned at the
//! user's operator) all read it. The macro only knows how to cut an operator out of its
//! input, not which ones exist.

use std::fmt;
use std::str::FromStr;

use crate::redis::error::Error;

/// The operator of a [`cache_only_for`](super::CachedFunctionBuilder::cache_only_for)
/// condition. Parsed from `"in"`, `"not_in"` (or `"not in"`), `"=="`, `"!="`, `"<"`,
/// `"<="`, `">"`, `">="`.
///
/// ```
/// use dtrsfw::redis::caching::Operator;
///
/// assert_eq!("not in".parse::<Operator>()?, Operator::NotIn);
/// assert!("=~".parse::<Operator>().is_err());
/// # Ok::<(), dtrsfw::redis::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operator {
    /// The argument is an element (list), substring (string) or key (object) of the value.
    In,
    /// The negation of [`In`](Self::In).
    NotIn,
    /// Equal (numbers compare by value, `1 == 1.0`).
    Eq,
    /// Not equal.
    Ne,
    /// Less than (numbers, or strings by code point).
    Lt,
    /// Less than or equal.
    Le,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
}

/// Every accepted spelling with its operator; the first spelling of an operator is the
/// one it displays as, the others are aliases.
const SPELLINGS: [(&str, Operator); 9] = [
    ("in", Operator::In),
    ("not_in", Operator::NotIn),
    ("not in", Operator::NotIn),
    ("==", Operator::Eq),
    ("!=", Operator::Ne),
    ("<", Operator::Lt),
    ("<=", Operator::Le),
    (">", Operator::Gt),
    (">=", Operator::Ge),
];

/// Every operator spelling accepted, for error messages.
pub const OPERATORS: &str = OPERATORS_TEXT.as_str();

const OPERATORS_TEXT: ConstText = list_spellings();

/// `in, not_in (or `not in`), ==, ...`: each operator once, its aliases in parentheses.
const fn list_spellings() -> ConstText {
    let mut text = ConstText::new();
    let mut i = 0;
    while i < SPELLINGS.len() {
        let (spelling, operator) = SPELLINGS[i];
        text = if i > 0 && SPELLINGS[i - 1].1 as u8 == operator as u8 {
            text.push(" (or `").push(spelling).push("`)")
        } else if i > 0 {
            text.push(", ").push(spelling)
        } else {
            text.push(spelling)
        };
        i += 1;
    }
    text
}

/// The operator spelled `spelling` (exactly, no trimming).
const fn lookup(spelling: &str) -> Option<Operator> {
    let mut i = 0;
    while i < SPELLINGS.len() {
        if same(SPELLINGS[i].0, spelling) {
            return Some(SPELLINGS[i].1);
        }
        i += 1;
    }
    None
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The error message for an unknown spelling, or `None` when `spelling` is an operator.
/// Evaluated at compile time by `#[cache_wrapper]`'s expansion (so it is `const`), and
/// at run time by [`Operator::from_str`].
#[doc(hidden)]
#[must_use]
pub const fn unknown_operator(spelling: &str) -> Option<ConstText> {
    match lookup(spelling) {
        Some(_) => None,
        None => Some(
            ConstText::new()
                .push("unknown cache_only_for operator \"")
                .push(spelling)
                .push("\"; valid operators: ")
                .push(OPERATORS),
        ),
    }
}

/// Text built at compile time (a `const fn` cannot allocate): up to 256 bytes, longer
/// input is cut at a character boundary.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct ConstText {
    bytes: [u8; 256],
    len: usize,
}

impl ConstText {
    const fn new() -> Self {
        ConstText {
            bytes: [0; 256],
            len: 0,
        }
    }

    const fn push(mut self, s: &str) -> Self {
        let s = s.as_bytes();
        let mut i = 0;
        while i < s.len() && self.len < self.bytes.len() {
            self.bytes[self.len] = s[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    /// The text.
    #[must_use]
    pub const fn as_str(&self) -> &str {
        let (text, _) = self.bytes.split_at(self.len);
        match std::str::from_utf8(text) {
            Ok(s) => s,
            // Cut inside a character: keep what precedes it.
            Err(e) => match std::str::from_utf8(text.split_at(e.valid_up_to()).0) {
                Ok(s) => s,
                Err(_) => "",
            },
        }
    }
}

impl FromStr for Operator {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        lookup(s).ok_or_else(|| {
            let message = unknown_operator(s).map(|m| m.as_str().to_owned()).unwrap_or_default();
            Error::invalid_input(message)
        })
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spelling = SPELLINGS.iter().find(|(_, op)| op == self).map_or("?", |(s, _)| s);
        f.write_str(spelling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_each_spelling_once() {
        assert_eq!(OPERATORS, "in, not_in (or `not in`), ==, !=, <, <=, >, >=");
    }

    #[test]
    fn every_spelling_parses_and_displays_as_its_first_spelling() {
        for (spelling, operator) in SPELLINGS {
            assert_eq!(spelling.parse::<Operator>().unwrap(), operator);
            assert_eq!(operator.to_string().parse::<Operator>().unwrap(), operator);
        }
        assert_eq!(Operator::NotIn.to_string(), "not_in");
        assert_eq!(" <= ".parse::<Operator>().unwrap(), Operator::Le);
    }

    #[test]
    fn an_unknown_spelling_is_named_with_the_valid_ones() {
        let message = "=~".parse::<Operator>().unwrap_err().to_string();
        assert!(message.contains(r#"unknown cache_only_for operator "=~""#), "{message}");
        assert!(message.contains(OPERATORS), "{message}");
        assert!(unknown_operator("not in").is_none());
        let long = "é".repeat(200);
        assert!(unknown_operator(&long).unwrap().as_str().len() <= 256);
    }
}
