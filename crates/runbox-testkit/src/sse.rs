//! Server-Sent Events as the tests read them: (event name, JSON data) per block.

use serde_json::Value;

/// One SSE block as (event name, JSON data); comments and keep-alives give nothing. Data that is not JSON fails
/// the test.
pub fn event(block: &str) -> Option<(String, Value)> {
    let mut name = String::from("message");
    let mut data = String::new();
    for line in block.lines() {
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    if data.is_empty() {
        return None;
    }
    let value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {data}"));
    Some((name, value))
}

/// Every event of a complete stream, in order.
pub fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n").filter_map(event).collect()
}
