//! What an attempt's result means and when to try again.
//!
//! Attempt 1 is immediate. After failure n the next attempt waits 5 s, 30 s, 2 min, 5 min, 15 min,
//! 30 min, 1 h, 2 h, 4 h, 8 h, then 12 h each time, until the next attempt would fall more than 7 days
//! after the first: 23 attempts in all. The dense start rides over an ERP restart or deploy (five
//! tries within eight minutes); the 7-day horizon outlasts a long weekend plus a holiday.
//!
//! Everything here is pure: the caller supplies the elapsed time and the jitter, so the schedule is
//! exact under test.

use std::time::{Duration, SystemTime};

/// Waits after failures 1 to 10; every later failure waits [`LATE_STEP`].
const EARLY_STEPS: [Duration; 10] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(15 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(2 * 60 * 60),
    Duration::from_secs(4 * 60 * 60),
    Duration::from_secs(8 * 60 * 60),
];
/// The wait between attempts once the early steps are used up.
const LATE_STEP: Duration = Duration::from_secs(12 * 60 * 60);
/// No attempt is scheduled later than this after the first one.
pub const RETRY_HORIZON: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// A receiver's `Retry-After` is honoured up to this; beyond it we keep our own schedule, so a
/// misconfigured hint cannot park a delivery for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 60 * 60);
/// The least wait after signs of overload (timeouts, 429, 502, 504): hammering an overloaded
/// receiver every few seconds only keeps it down.
const OVERLOAD_FLOOR: Duration = Duration::from_secs(60);
/// Jitter adds up to this share of the wait…
const JITTER_SHARE: f64 = 0.10;
/// …but the jitter range is at least this wide, so early retries of many deliveries spread out…
const MIN_JITTER_RANGE: Duration = Duration::from_secs(1);
/// …and at most this wide, so long waits do not drift by hours.
const MAX_JITTER_RANGE: Duration = Duration::from_secs(15 * 60);

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx answer: the receiver has the event.
    Delivered(u16),
    /// 410 Gone: the receiver wants no more deliveries; the endpoint should be paused, not retried.
    Gone,
    /// 429, 502, 503 or 504: the receiver is overloaded or restarting; retry, later than usual.
    Throttled {
        /// The HTTP status.
        status: u16,
        /// The receiver's `Retry-After`, if it sent a valid one.
        retry_after: Option<Duration>,
    },
    /// Any other answer, or no answer at all.
    Failed {
        /// The HTTP status, when a response arrived.
        status: Option<u16>,
        /// Why it failed.
        kind: FailureKind,
    },
}

impl AttemptOutcome {
    /// Whether the receiver accepted the event.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Self::Delivered(_))
    }

    /// The HTTP status the receiver answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Delivered(status) | Self::Throttled { status, .. } => Some(*status),
            Self::Gone => Some(410),
            Self::Failed { status, .. } => *status,
        }
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No complete answer within the connect or request timeout.
    Timeout,
    /// The TCP connection could not be established (refused, unreachable, reset during connect).
    Connect,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol, or a plain-HTTP server on an https URL).
    Tls,
    /// The host is, or resolves only to, addresses the [`AddressPolicy`](crate::ssrf::AddressPolicy)
    /// refuses: a configuration error on the endpoint rather than an outage.
    BlockedAddress,
    /// A 3xx answer; redirects are never followed, since the target was not vetted.
    Redirect,
    /// Any other non-2xx status.
    Http,
    /// The connection was closed or reset after the request was sent, before a complete answer.
    ConnectionClosed,
    /// The request could not be built: unsupported URL scheme, header values that are not valid
    /// HTTP. Retrying will not help until the configuration changes.
    InvalidRequest,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// A stable lower-case name, for storage, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::BlockedAddress => "blocked_address",
            Self::Redirect => "redirect",
            Self::Http => "http",
            Self::ConnectionClosed => "connection_closed",
            Self::InvalidRequest => "invalid_request",
            Self::Other => "other",
        }
    }
}

/// What an HTTP answer means for the delivery. `retry_after` is kept only where it is honoured
/// (throttling statuses); redirects are failures because they are never followed.
pub fn classify(status: u16, retry_after: Option<Duration>) -> AttemptOutcome {
    match status {
        200..=299 => AttemptOutcome::Delivered(status),
        300..=399 => AttemptOutcome::Failed { status: Some(status), kind: FailureKind::Redirect },
        410 => AttemptOutcome::Gone,
        429 | 502 | 503 | 504 => AttemptOutcome::Throttled { status, retry_after },
        _ => AttemptOutcome::Failed { status: Some(status), kind: FailureKind::Http },
    }
}

/// How long to wait before the next attempt, or `None` when there is none to make: the event was
/// delivered, the endpoint is gone (the caller pauses it), or the retries are exhausted because
/// the next attempt would start more than [`RETRY_HORIZON`] after the first.
///
/// `attempts_made` counts the attempts so far, including the one that produced `outcome` (0 is
/// read as 1). `jitter` is a uniform sample from 0..1 supplied by the caller; it only ever adds to
/// the wait (0 gives the exact schedule) and values outside 0..=1 are clamped.
pub fn next_attempt_delay(
    attempts_made: u32,
    elapsed_since_first: Duration,
    outcome: &AttemptOutcome,
    jitter: f64,
) -> Option<Duration> {
    let step = scheduled_step(attempts_made);
    let wait = match outcome {
        AttemptOutcome::Delivered(_) | AttemptOutcome::Gone => return None,
        AttemptOutcome::Throttled { status, retry_after } => {
            let honoured = retry_after.map_or(step, |hint| step.max(hint.min(MAX_RETRY_AFTER)));
            if matches!(status, 429 | 502 | 504) { honoured.max(OVERLOAD_FLOOR) } else { honoured }
        }
        AttemptOutcome::Failed { kind: FailureKind::Timeout, .. } => step.max(OVERLOAD_FLOOR),
        AttemptOutcome::Failed { .. } => step,
    };
    let wait = wait + jitter_for(wait, jitter);
    let next_offset = elapsed_since_first.checked_add(wait)?;
    (next_offset <= RETRY_HORIZON).then_some(wait)
}

/// The scheduled wait after failure number `attempts_made`, before floors, hints and jitter.
fn scheduled_step(attempts_made: u32) -> Duration {
    let index = usize::try_from(attempts_made.saturating_sub(1)).unwrap_or(usize::MAX);
    EARLY_STEPS.get(index).copied().unwrap_or(LATE_STEP)
}

/// The extra wait for a uniform sample `jitter`: up to 10 % of `wait`, within 1 s to 15 min.
fn jitter_for(wait: Duration, jitter: f64) -> Duration {
    let jitter = if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0) };
    let range = wait.mul_f64(JITTER_SHARE).clamp(MIN_JITTER_RANGE, MAX_JITTER_RANGE);
    range.mul_f64(jitter)
}

/// A `Retry-After` value as a wait from `now`: delta-seconds (`120`) or an HTTP-date, in any of
/// the three formats HTTP allows. A date in the past means "now" (zero). `None` when unparsable.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // All digits but too many for u64: the receiver means "a very long time"; the cap in
        // `next_attempt_delay` turns that into its maximum.
        return Some(value.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    const fn mins(n: u64) -> Duration {
        secs(n * 60)
    }
    const fn hours(n: u64) -> Duration {
        mins(n * 60)
    }

    fn http_failure() -> AttemptOutcome {
        AttemptOutcome::Failed { status: Some(500), kind: FailureKind::Http }
    }

    /// Runs a delivery that fails every time with `outcome`, each attempt taking no time, and
    /// returns the offsets of all attempts from the first.
    fn attempt_offsets(outcome: &AttemptOutcome, jitter: f64) -> Vec<Duration> {
        let mut offsets = vec![Duration::ZERO];
        let mut attempts = 1;
        while let Some(wait) = next_attempt_delay(attempts, offsets[offsets.len() - 1], outcome, jitter) {
            offsets.push(offsets[offsets.len() - 1] + wait);
            attempts += 1;
            assert!(attempts < 100, "schedule does not end");
        }
        offsets
    }

    #[test]
    fn cumulative_schedule_offsets() {
        let early = [
            secs(0),
            secs(5),
            secs(35),
            mins(2) + secs(35),
            mins(7) + secs(35),
            mins(22) + secs(35),
            mins(52) + secs(35),
            hours(1) + mins(52) + secs(35),
            hours(3) + mins(52) + secs(35),
            hours(7) + mins(52) + secs(35),
            hours(15) + mins(52) + secs(35),
        ];
        let mut expected = early.to_vec();
        for n in 1..=12 {
            expected.push(early[10] + hours(12 * n));
        }
        let offsets = attempt_offsets(&http_failure(), 0.0);
        assert_eq!(offsets, expected);
        assert_eq!(offsets.len(), 23);
        // The last attempt is at 6 d 15 h 52 m 35 s, the next would be past 7 days.
        assert_eq!(offsets[22], hours(6 * 24 + 15) + mins(52) + secs(35));
        assert!(offsets[22] + LATE_STEP > RETRY_HORIZON);
    }

    #[test]
    fn maximal_jitter_keeps_23_attempts_within_the_horizon() {
        let offsets = attempt_offsets(&http_failure(), 1.0);
        assert_eq!(offsets.len(), 23);
        assert!(offsets[22] <= RETRY_HORIZON);
        // Every wait is at least the exact schedule's: jitter never makes a retry earlier.
        let exact = attempt_offsets(&http_failure(), 0.0);
        for (jittered, exact) in offsets.iter().zip(&exact) {
            assert!(jittered >= exact);
        }
    }

    #[test]
    fn other_failures_follow_the_normal_schedule() {
        for kind in [
            FailureKind::Connect,
            FailureKind::Dns,
            FailureKind::Tls,
            FailureKind::BlockedAddress,
            FailureKind::Redirect,
            FailureKind::ConnectionClosed,
            FailureKind::InvalidRequest,
            FailureKind::Other,
        ] {
            let outcome = AttemptOutcome::Failed { status: None, kind };
            assert_eq!(next_attempt_delay(1, Duration::ZERO, &outcome, 0.0), Some(secs(5)), "{kind:?}");
        }
    }

    /// Name, attempts made, elapsed since the first, outcome, jitter, expected wait.
    type DelayCase = (&'static str, u32, Duration, AttemptOutcome, f64, Option<Duration>);

    #[test]
    fn delay_table() {
        let throttled = |status, retry_after| AttemptOutcome::Throttled { status, retry_after };
        let timeout = AttemptOutcome::Failed { status: None, kind: FailureKind::Timeout };
        let zero = Duration::ZERO;
        #[rustfmt::skip]
        let cases: Vec<DelayCase> = vec![
            ("delivered: nothing more", 1, zero, AttemptOutcome::Delivered(200), 0.0, None),
            ("gone: endpoint paused", 1, zero, AttemptOutcome::Gone, 0.0, None),
            ("first failure", 1, zero, http_failure(), 0.0, Some(secs(5))),
            ("attempts_made 0 read as 1", 0, zero, http_failure(), 0.0, Some(secs(5))),
            ("second failure", 2, secs(5), http_failure(), 0.0, Some(secs(30))),
            ("tenth failure", 10, hours(8), http_failure(), 0.0, Some(hours(8))),
            ("eleventh failure", 11, hours(16), http_failure(), 0.0, Some(hours(12))),
            ("huge attempt count", u32::MAX, zero, http_failure(), 0.0, Some(hours(12))),
            ("timeout floor", 1, zero, timeout.clone(), 0.0, Some(secs(60))),
            ("timeout above floor", 5, zero, timeout.clone(), 0.0, Some(mins(15))),
            ("429 floor", 1, zero, throttled(429, None), 0.0, Some(secs(60))),
            ("502 floor", 2, zero, throttled(502, None), 0.0, Some(secs(60))),
            ("504 floor", 3, zero, throttled(504, None), 0.0, Some(mins(2))),
            ("503 has no floor", 1, zero, throttled(503, None), 0.0, Some(secs(5))),
            ("503 Retry-After honoured", 1, zero, throttled(503, Some(secs(120))), 0.0, Some(secs(120))),
            ("Retry-After below step", 3, zero, throttled(503, Some(secs(1))), 0.0, Some(mins(2))),
            ("Retry-After capped at 6 h", 1, zero, throttled(503, Some(hours(24))), 0.0, Some(hours(6))),
            ("Retry-After max is huge", 1, zero, throttled(429, Some(Duration::MAX)), 0.0, Some(hours(6))),
            ("429 Retry-After below floor", 1, zero, throttled(429, Some(secs(10))), 0.0, Some(secs(60))),
            ("429 Retry-After above floor", 1, zero, throttled(429, Some(secs(90))), 0.0, Some(secs(90))),
            ("Retry-After under late step", 12, zero, throttled(503, Some(hours(6))), 0.0, Some(hours(12))),
            ("jitter min range 1 s", 1, zero, http_failure(), 1.0, Some(secs(6))),
            ("jitter half of 1 s", 1, zero, http_failure(), 0.5, Some(Duration::from_millis(5500))),
            ("jitter 10 % of 5 min", 4, zero, http_failure(), 1.0, Some(secs(330))),
            ("jitter capped 15 min", 11, zero, http_failure(), 1.0, Some(hours(12) + mins(15))),
            ("jitter on floored wait", 1, zero, timeout.clone(), 1.0, Some(secs(66))),
            ("jitter on Retry-After", 1, zero, throttled(503, Some(secs(100))), 1.0, Some(secs(110))),
            ("jitter above 1 clamped", 1, zero, http_failure(), 7.0, Some(secs(6))),
            ("negative jitter clamped", 1, zero, http_failure(), -3.0, Some(secs(5))),
            ("NaN jitter ignored", 1, zero, http_failure(), f64::NAN, Some(secs(5))),
            ("infinite jitter clamped", 1, zero, http_failure(), f64::INFINITY, Some(secs(6))),
            ("exactly at the horizon", 12, RETRY_HORIZON - hours(12), http_failure(), 0.0, Some(hours(12))),
            ("just past the horizon", 12, RETRY_HORIZON - hours(12) + secs(1), http_failure(), 0.0, None),
            ("jitter pushes past horizon", 12, RETRY_HORIZON - hours(12), http_failure(), 1.0, None),
            ("Retry-After past horizon", 1, RETRY_HORIZON - hours(1), throttled(503, Some(hours(2))), 0.0, None),
            ("elapsed already past", 1, RETRY_HORIZON * 2, http_failure(), 0.0, None),
            ("elapsed at Duration::MAX", 1, Duration::MAX, http_failure(), 0.0, None),
        ];
        for (name, attempts, elapsed, outcome, jitter, expected) in cases {
            assert_eq!(next_attempt_delay(attempts, elapsed, &outcome, jitter), expected, "{name}");
        }
    }

    #[test]
    fn classify_table() {
        let failed = |status, kind| AttemptOutcome::Failed { status: Some(status), kind };
        let hint = Some(secs(30));
        #[rustfmt::skip]
        let cases: Vec<(u16, Option<Duration>, AttemptOutcome)> = vec![
            (200, None, AttemptOutcome::Delivered(200)),
            (201, hint, AttemptOutcome::Delivered(201)),
            (204, None, AttemptOutcome::Delivered(204)),
            (299, None, AttemptOutcome::Delivered(299)),
            (0, None, failed(0, FailureKind::Http)),
            (100, None, failed(100, FailureKind::Http)),
            (199, None, failed(199, FailureKind::Http)),
            (300, None, failed(300, FailureKind::Redirect)),
            (301, None, failed(301, FailureKind::Redirect)),
            (302, hint, failed(302, FailureKind::Redirect)),
            (307, None, failed(307, FailureKind::Redirect)),
            (308, None, failed(308, FailureKind::Redirect)),
            (400, None, failed(400, FailureKind::Http)),
            (401, None, failed(401, FailureKind::Http)),
            (404, None, failed(404, FailureKind::Http)),
            (409, None, failed(409, FailureKind::Http)),
            (410, hint, AttemptOutcome::Gone),
            (413, None, failed(413, FailureKind::Http)),
            (429, None, AttemptOutcome::Throttled { status: 429, retry_after: None }),
            (429, hint, AttemptOutcome::Throttled { status: 429, retry_after: hint }),
            (500, hint, failed(500, FailureKind::Http)),
            (501, None, failed(501, FailureKind::Http)),
            (502, None, AttemptOutcome::Throttled { status: 502, retry_after: None }),
            (503, hint, AttemptOutcome::Throttled { status: 503, retry_after: hint }),
            (504, None, AttemptOutcome::Throttled { status: 504, retry_after: None }),
            (505, None, failed(505, FailureKind::Http)),
            (599, None, failed(599, FailureKind::Http)),
            (600, None, failed(600, FailureKind::Http)),
            (u16::MAX, None, failed(u16::MAX, FailureKind::Http)),
        ];
        for (status, retry_after, expected) in cases {
            let outcome = classify(status, retry_after);
            assert_eq!(outcome.status(), Some(status), "status of {status}");
            assert_eq!(outcome.is_delivered(), (200..300).contains(&status), "delivered {status}");
            assert_eq!(outcome, expected, "status {status}");
        }
    }

    #[test]
    fn failure_kind_names_are_distinct() {
        let kinds = [
            FailureKind::Timeout,
            FailureKind::Connect,
            FailureKind::Dns,
            FailureKind::Tls,
            FailureKind::BlockedAddress,
            FailureKind::Redirect,
            FailureKind::Http,
            FailureKind::ConnectionClosed,
            FailureKind::InvalidRequest,
            FailureKind::Other,
        ];
        let names: std::collections::HashSet<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names.len(), kinds.len());
    }

    #[test]
    fn retry_after_table() {
        // Sun, 06 Nov 1994 08:49:37 GMT, the RFC 9110 example date.
        let now = SystemTime::UNIX_EPOCH + secs(784_111_777);
        #[rustfmt::skip]
        let cases: &[(&str, Option<Duration>)] = &[
            ("120", Some(secs(120))),
            ("0", Some(Duration::ZERO)),
            ("  45 ", Some(secs(45))),
            ("007", Some(secs(7))),
            ("18446744073709551615", Some(Duration::from_secs(u64::MAX))),
            ("99999999999999999999999999", Some(Duration::MAX)),
            ("", None),
            ("   ", None),
            ("-5", None),
            ("+5", None),
            ("1.5", None),
            ("12 s", None),
            ("soon", None),
            ("Sun, 06 Nov 1994 08:51:37 GMT", Some(secs(120))),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(Duration::ZERO)),
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(Duration::ZERO)),
            ("Sunday, 06-Nov-94 09:49:37 GMT", Some(hours(1))),
            ("Sun Nov  6 08:49:47 1994", Some(secs(10))),
            ("Sun, 06 Nov 1994 08:51:37 UTC", None),
            ("Sun, 31 Feb 1994 08:51:37 GMT", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), *expected, "value {value:?}");
        }
    }
}
