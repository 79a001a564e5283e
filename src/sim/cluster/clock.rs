//! Wall-clock time as Kubernetes writes it: Unix seconds for tokens, second-precision UTC
//! RFC 3339 for timestamps in objects.

pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn rfc3339_of(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn now_rfc3339() -> String {
    rfc3339_of(now_unix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_second_precision_utc() {
        assert_eq!(rfc3339_of(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_of(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
