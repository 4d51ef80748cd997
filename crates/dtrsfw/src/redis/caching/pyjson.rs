//! JSON in Python's `json.dumps` default formatting, and the cache key built from it.
//!
//! Python's defaults are `", "` and `": "` separators, `ensure_ascii=True` (every
//! character outside printable ASCII written as `\uXXXX`, lowercase hex, astral
//! characters as surrogate pairs) and floats written with `repr`. serde_json lets us
//! swap its [`Formatter`], so the output is produced by serde directly (struct fields and
//! ordered maps keep their order, as Python dicts keep insertion order) rather than
//! patched afterwards.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;
use sha2::{Digest, Sha256};

/// A serde_json formatter that writes what Python's `json.dumps(value)` writes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { writer.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { writer.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        // The digits come from serde_json's own float writer (Ryu), not from Rust's `{:e}`:
        // when two shortest digit strings round-trip, both Ryu and Python's repr take the
        // one nearest the exact value, ties to even (-1971512336377012.25 → "...12.2"),
        // where `{:e}` gives "...12.3".
        let shortest = serde_json::to_string(&value).map_err(io::Error::other)?;
        writer.write_all(python_float_repr(&to_scientific(&shortest)).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        // The shortest digits of the f32 (what a person wrote), not of its f64 widening.
        writer.write_all(python_float_repr(&format!("{value:e}")).as_bytes())
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        // serde_json has already escaped `"`, `\` and control characters; what is left to
        // do is `ensure_ascii`: DEL and everything beyond ASCII.
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if (' '..='~').contains(&c) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Any decimal form of a number (`"-12.5"`, `"1e16"`, `"1.5E-7"`) as `d.ddde<exp>`, the
/// form [`python_float_repr`] takes; the digits are kept as they are.
fn to_scientific(decimal: &str) -> String {
    let (negative, unsigned) = match decimal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, decimal),
    };
    let (mantissa, exp) = unsigned.split_once(['e', 'E']).unwrap_or((unsigned, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = format!("{int_part}{frac_part}");
    let leading_zeros = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    if digits.is_empty() {
        return if negative { "-0e0".to_owned() } else { "0e0".to_owned() };
    }
    // The first significant digit sits `int_part.len() - 1 - leading_zeros` places above
    // the units.
    let exp = exp + int_part.len() as i32 - 1 - leading_zeros as i32;
    let sign = if negative { "-" } else { "" };
    match digits.len() {
        1 => format!("{sign}{digits}e{exp}"),
        _ => format!("{sign}{}.{}e{exp}", &digits[..1], &digits[1..]),
    }
}

/// Python's `repr(float)` from Rust's shortest `{:e}` form (`"-1.25e-5"`): the same
/// shortest digits, laid out as Python does (scientific below 1e-4 and from 1e16 on,
/// exponent signed and at least two digits; otherwise a decimal point, `.0` if integral).
fn python_float_repr(scientific: &str) -> String {
    let (mantissa, exp) = scientific.split_once('e').unwrap_or((scientific, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        ));
    } else if exp < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// `value` as Python's `json.dumps(value)` would write it.
pub(crate) fn to_python_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(64);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut ser)?;
    // The formatter only ever writes ASCII.
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// The JSON object `{"name": value, ...}` of names and values already in Python JSON, as
/// Python's `json.dumps` writes a dict.
pub(crate) fn json_object<'a>(args: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut json = Vec::with_capacity(128);
    write_object(args, |piece| json.extend_from_slice(piece));
    // Only `str` pieces went in.
    String::from_utf8(json).unwrap_or_default()
}

/// Writes [`json_object`]'s text piece by piece into `out`: the key hashes the pieces as
/// they come, with no string built for them (this runs on every cached call, a local hit
/// included). Returns whether there was any argument.
fn write_object<'a>(args: impl Iterator<Item = (&'a str, &'a str)>, mut out: impl FnMut(&[u8])) -> bool {
    out(b"{");
    let mut any = false;
    for (name, value) in args {
        if any {
            out(b", ");
        }
        any = true;
        write_name(&mut out, name);
        out(b": ");
        out(value.as_bytes());
    }
    out(b"}");
    any
}

/// Writes `name` as a JSON string, as `json.dumps` does. A name of printable ASCII
/// without `"` or `\` (every Rust identifier) is written as is: it needs no escape.
fn write_name(out: &mut impl FnMut(&[u8]), name: &str) {
    if name
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out(b"\"");
        out(name.as_bytes());
        out(b"\"");
    } else {
        out(to_python_json(name).unwrap_or_default().as_bytes());
    }
}

/// The cache key of a call: `namespace:` + sha256 hex of `{"name": value, ...}` (the
/// arguments in order, each value already in Python JSON); the namespace alone when no
/// argument is left, and the hash alone when the namespace is empty (as the Python
/// package's `rstrip(":")` yields).
pub(crate) fn cache_key<'a>(namespace: &str, args: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut hasher = Sha256::new();
    if !write_object(args, |piece| hasher.update(piece)) {
        return namespace.to_owned();
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 64];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(hasher.finalize()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    let mut key = String::with_capacity(namespace.len() + 65);
    if !namespace.is_empty() {
        key.push_str(namespace);
        key.push(':');
    }
    // Only ASCII hex digits went in.
    key.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_ties_round_to_even_like_python() {
        // Exactly halfway between two 17-digit strings that both round-trip.
        assert_eq!(to_python_json(&-1971512336377012.2_f64).unwrap(), "-1971512336377012.2");
        assert_eq!(to_scientific("-12.50"), "-1.25e1");
        assert_eq!(to_scientific("0.00015"), "1.5e-4");
        assert_eq!(to_scientific("1e16"), "1e16");
        assert_eq!(to_scientific("0.0"), "0e0");
    }

    #[test]
    fn floats_are_written_like_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.2345e-7, "1.2345e-07"),
            (123.456, "123.456"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e100, "1e+100"),
            (f64::MAX, "1.7976931348623157e+308"),
        ];
        for (value, python) in cases {
            assert_eq!(to_python_json(&value).unwrap(), python, "{value:?}");
        }
    }

    #[test]
    fn strings_and_containers_use_python_separators_and_escapes() {
        let v = serde_json::json!({"a": [1, "é\u{7f}", null, true], "b": "\"q\"\n😀"});
        assert_eq!(
            to_python_json(&v).unwrap(),
            r#"{"a": [1, "\u00e9\u007f", null, true], "b": "\"q\"\n\ud83d\ude00"}"#
        );
    }

    #[test]
    fn a_name_written_as_is_equals_json_dumps() {
        for name in [
            "make",
            "page_2",
            "a b~",
            "x\"y",
            "back\\slash",
            "é",
            "\u{7f}",
            "tab\t",
            "",
        ] {
            let mut fast = Vec::new();
            write_name(&mut |piece: &[u8]| fast.extend_from_slice(piece), name);
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                to_python_json(name).unwrap(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn key_is_the_namespace_alone_without_arguments() {
        assert_eq!(cache_key("ns", std::iter::empty()), "ns");
        let k = cache_key("ns", [("x", "1")].into_iter());
        assert!(k.starts_with("ns:") && k.len() == 3 + 64);
    }
}
