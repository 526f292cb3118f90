//! The time parameters of the report endpoints (`from`, `to`): a leaf of
//! its own so the handlers file stays within its size limit.

/// A time parameter: unix seconds or RFC 3339 (`2025-01-31T12:00:00Z`), in
/// unix milliseconds.
pub fn parse_time(name: &str, s: &str) -> Result<u64, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return secs
            .checked_mul(1000)
            .ok_or_else(|| format!("{name}: {s:?} is out of range"));
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("{name}: {s:?} is neither unix seconds nor RFC 3339"))?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("{name}: {s:?} is before 1970"))
}
