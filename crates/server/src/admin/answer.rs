//! The envelope of an admin answer on the control socket and the peer
//! link: `{"ok":true,"result":..}` or `{"error":"..","ok":false}`, and
//! `seq` (the primary's log position after a forwarded write) so the
//! replica can wait until it has replicated it. Fields are declared in
//! alphabetical order: serialized directly or through `serde_json::Value`,
//! the bytes are the same.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::AdminError;

/// One answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Why the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The primary's log position after a forwarded write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl Answer {
    /// The answer for `res`.
    pub fn new(res: Result<Value, AdminError>) -> Self {
        match res {
            Ok(v) => Answer {
                error: None,
                ok: true,
                result: Some(v),
                seq: None,
            },
            Err(e) => Answer::failed(e.to_string()),
        }
    }

    /// A failure saying `error`.
    pub fn failed(error: String) -> Self {
        Answer {
            error: Some(error),
            ok: false,
            result: None,
            seq: None,
        }
    }

    /// The line as sent (no newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The envelope's bytes as the control socket wrote them before it was
    /// typed (`json!` objects: keys in alphabetical order).
    #[test]
    fn envelope_bytes_are_unchanged() {
        let ok = Answer::new(Ok(serde_json::json!({"b": 1, "a": [true]})));
        assert_eq!(ok.to_bytes(), br#"{"ok":true,"result":{"a":[true],"b":1}}"#);
        let failed = Answer::new(Err(AdminError::Invalid("no \"x\"".into())));
        assert_eq!(failed.to_bytes(), br#"{"error":"no \"x\"","ok":false}"#);
        let mut fwd = Answer::new(Ok(serde_json::json!({"deleted": "ann"})));
        fwd.seq = Some(42);
        assert_eq!(
            fwd.to_bytes(),
            br#"{"ok":true,"result":{"deleted":"ann"},"seq":42}"#
        );
        let back: Answer = serde_json::from_slice(&fwd.to_bytes()).expect("read back");
        assert_eq!(back, fwd);
    }
}
