//! Webhook endpoint changes both the API and the console make: creating one (its URL checked
//! against the address policy, its secret generated and sealed), rotating its secret, pausing
//! and resuming, and replaying a range of punches to it. Each caller reads its own input (JSON,
//! a form) and answers in its own shape; the rules and the effects are these.

use adms_store::StoreError;
use adms_store::events::event_type;
use adms_store::webhook_queries::{ReplayOutcome, ReplayRange};
use adms_store::webhooks::{Endpoint, EndpointSettings};
use adms_webhooks::{AddressPolicy, BlockReason, Url, UrlError, WebhookSecret, check_url};

use crate::state::AppState;

/// Longest endpoint URL accepted.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest endpoint description accepted.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// A new endpoint's request timeout unless given.
pub const DEFAULT_TIMEOUT_MS: i64 = 15_000;
/// How long the previous secret stays valid after a rotation by default (a day).
pub const DEFAULT_GRACE_SECS: i64 = 86_400;
/// Punch events one replay may cover.
pub const MAX_REPLAY_EVENTS: i64 = 100_000;

/// An endpoint URL: http(s), at most 2048 characters, not an IP literal the address policy
/// refuses (names are vetted again at every delivery, by the guarded resolver). Returns the
/// URL as parsed (normalised), or the sentence that explains the refusal.
pub fn valid_url(raw: &str, policy: &AddressPolicy) -> Result<String, String> {
    let too_long = || format!("Ensure this field has no more than {MAX_URL_CHARS} characters.");
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(too_long());
    }
    let url = Url::parse(raw.trim()).map_err(|_| "Enter a valid URL.".to_owned())?;
    check_url(&url, policy).map_err(|e| match e {
        UrlError::UnsupportedScheme(_) => "Only http and https URLs are accepted.".to_owned(),
        UrlError::MissingHost => "Enter a valid URL.".to_owned(),
        UrlError::Blocked(blocked) if blocked.reason == BlockReason::OwnListener => format!(
            "Address {} is not allowed for webhooks ({}): the bridge does not send webhooks to itself.",
            blocked.ip, blocked.reason
        ),
        UrlError::Blocked(blocked) => format!(
            "Address {} is not allowed for webhooks ({}); an operator can open it with webhook_allow_list.",
            blocked.ip, blocked.reason
        ),
    })?;
    let url = String::from(url);
    if url.chars().count() > MAX_URL_CHARS {
        return Err(too_long());
    }
    Ok(url)
}

/// `ep_` + 24 random lowercase alphanumerics.
pub fn new_endpoint_uid() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..24).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect();
    format!("ep_{suffix}")
}

/// Creates an endpoint with validated settings and a new signing secret, sealed at rest.
/// Returns the endpoint and the secret, which exists in the clear only in this answer.
pub async fn create_endpoint(
    state: &AppState,
    settings: &EndpointSettings<'_>,
    source: &str,
) -> Result<(Endpoint, String), StoreError> {
    let secret = WebhookSecret::generate().to_string();
    let uid = new_endpoint_uid();
    let stored = state.webhooks.conceal(&uid, &secret);
    let endpoint = state.store.create_endpoint(&uid, settings, source, &stored).await?;
    Ok((endpoint, secret))
}

/// Gives the endpoint a new signing secret; the previous ones stay valid `grace_secs` (on the
/// dispatcher's clock). Returns the new secret and until when the old ones are valid, or `None`
/// for an unknown endpoint.
pub async fn rotate_secret(state: &AppState, uid: &str, grace_secs: i64) -> Result<Option<(String, i64)>, StoreError> {
    let secret = WebhookSecret::generate().to_string();
    let valid_until = state.webhooks.clock.now_micros().saturating_add(grace_secs.saturating_mul(1_000_000));
    if !state.store.rotate_endpoint_secret(uid, &state.webhooks.conceal(uid, &secret), valid_until).await? {
        return Ok(None);
    }
    Ok(Some((secret, valid_until)))
}

/// Pauses an endpoint (reason `manual`, overriding a pause the dispatcher made, e.g. `gone`)
/// or resumes a paused one and wakes the dispatcher. Resuming an active endpoint changes
/// nothing, so its retry schedule is not disturbed. `current_reason` is the endpoint's pause
/// reason as read before the change.
pub async fn set_paused(
    state: &AppState,
    uid: &str,
    current_reason: Option<&str>,
    paused: bool,
) -> Result<(), StoreError> {
    match (paused, current_reason) {
        (true, reason) if reason != Some("manual") => {
            state.store.set_endpoint_paused(uid, Some("manual")).await?;
        }
        (false, Some(_)) => {
            state.store.set_endpoint_paused(uid, None).await?;
            state.webhooks.wake.notify_one();
        }
        _ => {}
    }
    Ok(())
}

/// Whether an endpoint's filter (`None` = every type) takes punch events.
pub fn receives_punches(event_types: Option<&str>) -> bool {
    event_types.is_none_or(|types| {
        serde_json::from_str::<Vec<String>>(types)
            .is_ok_and(|types| types.iter().any(|t| t == event_type::ATTENDANCE_PUNCH))
    })
}

/// A replay's bounds as a caller read them (times already checked to be device-local
/// `YYYY-MM-DD HH:MM:SS`); every bound optional and inclusive.
#[derive(Debug, Clone, Default)]
pub struct ReplayBounds {
    pub device_sn: Option<String>,
    pub from_seq: Option<i64>,
    pub to_seq: Option<i64>,
    pub from_local_time: Option<String>,
    pub to_local_time: Option<String>,
}

/// What is wrong with a replay's bounds for `endpoint`, field by field (the API's field names),
/// and the device they name when it exists.
pub async fn check_replay(
    state: &AppState,
    endpoint: &Endpoint,
    bounds: &ReplayBounds,
) -> Result<(Option<i64>, Vec<(&'static str, &'static str)>), StoreError> {
    let mut errors = Vec::new();
    let device = match &bounds.device_sn {
        Some(sn) => {
            let device = state.store.device_by_sn(sn).await?;
            if device.is_none() {
                errors.push(("device_sn", "Unknown device."));
            }
            device.map(|d| d.id)
        }
        None => None,
    };
    if (bounds.from_seq.is_some() || bounds.to_seq.is_some()) && bounds.device_sn.is_none() {
        errors.push(("device_sn", "Required with from_seq/to_seq (seq numbers are per device)."));
    }
    if let (Some(from), Some(to)) = (bounds.from_seq, bounds.to_seq)
        && from > to
    {
        errors.push(("to_seq", "Must not be less than from_seq."));
    }
    if let (Some(from), Some(to)) = (&bounds.from_local_time, &bounds.to_local_time)
        && from > to
    {
        errors.push(("to_time", "Must not be before from_time."));
    }
    if !receives_punches(endpoint.event_types.as_deref()) {
        errors.push(("non_field_errors", "The endpoint does not subscribe to attendance.punch."));
    }
    Ok((device, errors))
}

/// Queues every punch in the bounds (checked by [`check_replay`]; `device_id` is what it found)
/// to this endpoint only, due now, and wakes the dispatcher when there is any.
pub async fn replay(
    state: &AppState,
    uid: &str,
    device_id: Option<i64>,
    bounds: &ReplayBounds,
) -> Result<ReplayOutcome, StoreError> {
    let range = ReplayRange {
        device_id,
        from_seq: bounds.from_seq,
        to_seq: bounds.to_seq,
        from_local_time: bounds.from_local_time.as_deref(),
        to_local_time: bounds.to_local_time.as_deref(),
    };
    let outcome = state.store.replay_punches(uid, &range, MAX_REPLAY_EVENTS, state.webhooks.clock.now_micros()).await?;
    if let ReplayOutcome::Replayed { events, .. } = outcome
        && events > 0
    {
        state.webhooks.wake.notify_one();
    }
    Ok(outcome)
}

/// Why a replay was refused for its size.
pub fn too_many_to_replay(count: i64) -> String {
    format!(
        "The range holds {count} punches; at most {MAX_REPLAY_EVENTS} per replay. Narrow it (device_sn, seq or time bounds) and replay in parts."
    )
}
