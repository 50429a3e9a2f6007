//! Webhook endpoint changes both the API and the console make.

use adms_store::StoreError;

use crate::state::AppState;

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
