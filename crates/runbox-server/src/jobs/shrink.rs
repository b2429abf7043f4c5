//! Cutting a result to what an async execution may store (`async_result_bytes`): its longest strings are
//! shortened, so that a record stays within what the key's quota reserved for it.

/// Serialises `result` in at most `cap` bytes, cutting its longest strings (halving at most, so several long
/// streams share what is left) and keeping base64 fields whole groups of four. Returns the JSON and whether anything
/// was cut, or None when even cutting every long string cannot make it fit.
pub fn shrink_result(result: &mut serde_json::Value, cap: usize) -> Option<(String, bool)> {
    let mut cut = false;
    for _ in 0..256 {
        let text = result.to_string();
        if text.len() <= cap {
            return Some((text, cut));
        }
        let excess = text.len() - cap;
        let (longest, base64) = longest_string(result, false)?;
        let len = longest.len();
        if len < 64 {
            return None;
        }
        let mut keep = len.saturating_sub(excess).max(len / 2).min(len - 1);
        if base64 {
            keep -= keep % 4;
        }
        while !longest.is_char_boundary(keep) {
            keep -= 1;
        }
        longest.truncate(keep);
        cut = true;
    }
    None
}

/// The longest string in `v`, and whether it sits under a key ending in `_base64`.
fn longest_string(v: &mut serde_json::Value, base64: bool) -> Option<(&mut String, bool)> {
    match v {
        serde_json::Value::String(s) => Some((s, base64)),
        serde_json::Value::Array(items) => items
            .iter_mut()
            .filter_map(|i| longest_string(i, base64))
            .max_by_key(|(s, _)| s.len()),
        serde_json::Value::Object(map) => map
            .iter_mut()
            .filter_map(|(k, i)| longest_string(i, k.ends_with("_base64")))
            .max_by_key(|(s, _)| s.len()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_results_are_cut_to_the_cap_and_say_so() {
        let mut v = serde_json::json!({
            "status": "ok",
            "stdout": "a".repeat(100_000),
            "stderr": "é".repeat(50_000),
            "stdout_base64": "QUFB".repeat(10_000),
        });
        let (text, cut) = shrink_result(&mut v, 10_000).unwrap();
        assert!(cut && text.len() <= 10_000, "{} bytes", text.len());
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["status"], "ok");
        assert_eq!(back["stdout_base64"].as_str().unwrap().len() % 4, 0);
        let mut small = serde_json::json!({"stdout": "hi"});
        assert_eq!(shrink_result(&mut small, 10_000), Some((small.to_string(), false)));
        let mut many = serde_json::Value::Array(vec![serde_json::json!("short"); 10_000]);
        assert_eq!(shrink_result(&mut many, 1000), None);
    }
}
