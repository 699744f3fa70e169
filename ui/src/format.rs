//! How the pages word numbers, labels and times.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A label as every page shows it: the model's wording with its first letter in upper case
/// ("tabby, tabby cat" → "Tabby, tabby cat"; "Egyptian cat" stays).
pub fn display_label(label: &str) -> String {
    let label = label.trim();
    let mut chars = label.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A score as the decimal the API wrote (`0.255`), widened without binary noise
/// (`0.2549999952…`), so percentages round the way the number reads.
pub fn score_as_sent(score: f32) -> f64 {
    score.to_string().parse().unwrap_or(f64::from(score))
}

/// "22 Nov 2025, 14:03 UTC" from an RFC 3339 time; the input as-is when it does not parse.
pub fn human_time(iso: &str) -> String {
    let Ok(t) = OffsetDateTime::parse(iso, &Rfc3339) else {
        return iso.to_owned();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    let month = match t.month() {
        time::Month::January => "Jan",
        time::Month::February => "Feb",
        time::Month::March => "Mar",
        time::Month::April => "Apr",
        time::Month::May => "May",
        time::Month::June => "Jun",
        time::Month::July => "Jul",
        time::Month::August => "Aug",
        time::Month::September => "Sep",
        time::Month::October => "Oct",
        time::Month::November => "Nov",
        time::Month::December => "Dec",
    };
    format!(
        "{} {} {}, {:02}:{:02} UTC",
        t.day(),
        month,
        t.year(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_readable() {
        assert_eq!(human_time("2025-11-22T14:03:09Z"), "22 Nov 2025, 14:03 UTC");
        assert_eq!(human_time("garbage"), "garbage");
    }
}
