//! Webhook signing secrets at start: the endpoint `ADMS_WEBHOOK_URL` manages, sealing what an
//! older version stored in the clear, and the re-key the CLI runs.

use adms_store::webhooks::EndpointSettings;
use adms_store::{Store, now_micros};
use adms_webhooks::{SecretKey, WebhookSecret, sealing};

use super::StartupError;

/// Creates or updates the endpoint `ADMS_WEBHOOK_URL` manages. A generated secret is shown
/// once, never in the log: on stderr when it is a terminal (stdout carries only the `listening
/// on` line); otherwise, where stderr is a journal or a file, written to `secret_file` (beside
/// the database, mode 0600), and the log says where.
pub(super) async fn ensure_env_endpoint(
    store: &Store,
    key: Option<&SecretKey>,
    url: &str,
    secret: Option<&str>,
    timeout_secs: u64,
    secret_file: Option<&std::path::Path>,
) -> Result<(), StartupError> {
    let settings = EndpointSettings {
        url,
        description: "ADMS_WEBHOOK_URL",
        event_types: None,
        timeout_ms: i64::try_from(timeout_secs.saturating_mul(1000)).unwrap_or(15_000),
        batch_max: 1,
        ordered: false,
    };
    let generated = WebhookSecret::generate().to_string();
    let secret_text = secret.unwrap_or(&generated);
    let uid = format!("ep_env_{}", hex::encode(rand::random::<[u8; 8]>()));
    let sealed = sealing::conceal(key, &uid, secret_text);
    // Made once however many replicas start together (the store looks and inserts under a lock).
    let (endpoint, created) = store.env_endpoint_or_create(&uid, &settings, &sealed).await?;
    retire_duplicate_env_endpoints(store, &endpoint.uid).await?;
    if created {
        tracing::info!(endpoint = %uid, "webhook endpoint from ADMS_WEBHOOK_URL created");
        if secret.is_none() {
            show_generated_secret(&uid, url, &generated, secret_file)?;
        }
        return Ok(());
    }
    if endpoint.url != url || endpoint.timeout_ms != settings.timeout_ms {
        store.update_endpoint(&endpoint.uid, &settings).await?;
        tracing::info!(endpoint = %endpoint.uid, "webhook endpoint URL updated from ADMS_WEBHOOK_URL");
    }
    let current = store.current_endpoint_secrets(&endpoint.uid).await?;
    let is_current = |secret: &str| {
        current.iter().any(|stored| sealing::reveal(key, &endpoint.uid, stored).is_ok_and(|s| s == secret))
    };
    if let Some(secret) = secret
        && !is_current(secret)
    {
        // The old secret stays valid for a day, so receivers can switch without a gap.
        let sealed = sealing::conceal(key, &endpoint.uid, secret);
        store.rotate_endpoint_secret(&endpoint.uid, &sealed, now_micros() + 86_400_000_000).await?;
        tracing::info!(endpoint = %endpoint.uid, "webhook secret rotated from ADMS_WEBHOOK_SECRET");
    }
    Ok(())
}

/// Deletes every other live `ADMS_WEBHOOK_URL` endpoint than `keep`: replicas of releases
/// before 0.2.0 that started together could each make one, and each delivered every event.
async fn retire_duplicate_env_endpoints(store: &Store, keep: &str) -> Result<(), StartupError> {
    for duplicate in store.list_endpoints().await?.into_iter().filter(|e| e.source == "env" && e.uid != keep) {
        store.delete_endpoint(&duplicate.uid).await?;
        tracing::warn!(endpoint = %duplicate.uid, kept = %keep, "a second ADMS_WEBHOOK_URL endpoint deleted (made by replicas starting together)");
    }
    Ok(())
}

/// With a master key: seals every secret still stored as plaintext, and checks that every
/// sealed one opens (a wrong key fails the start, not every delivery). Without one: refuses to
/// start if any secret is sealed, since nothing could be signed.
pub(super) async fn seal_stored_secrets(store: &Store, key: Option<&SecretKey>) -> Result<(), StartupError> {
    let stored = store.stored_secrets().await?;
    let mut sealed_now = 0;
    for row in &stored {
        match (key, sealing::is_sealed(&row.secret)) {
            (Some(key), true) => {
                key.open(&row.endpoint_uid, &row.secret).map_err(|e| StartupError::Other(e.to_string()))?;
            }
            (Some(key), false) => {
                if store.reseal_secret(row.id, &row.secret, &key.seal(&row.endpoint_uid, &row.secret)).await? {
                    sealed_now += 1;
                }
            }
            (None, true) => return Err(StartupError::Other(sealing::SealError::NoKey.to_string())),
            (None, false) => {}
        }
    }
    if sealed_now > 0 {
        tracing::info!(secrets = sealed_now, "webhook signing secrets sealed with ADMS_SECRET_KEY");
    }
    if key.is_none() && !stored.is_empty() {
        tracing::info!("webhook signing secrets are stored unencrypted; set ADMS_SECRET_KEY to seal them at rest");
    }
    Ok(())
}

/// What [`rekey_stored_secrets`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rekeyed {
    /// Secrets now sealed under the new key.
    pub resealed: usize,
    /// Secrets that already were (a run interrupted earlier, then run again).
    pub already: usize,
}

/// Seals every stored signing secret under `new`, opening it with `current` (`None`: stored
/// unencrypted). Row by row, each a compare-and-swap, so an interrupted run leaves every row
/// under one of the two keys and running it again finishes the job. Every process on the
/// database must be stopped first and started again with the new key.
pub async fn rekey_stored_secrets(
    store: &Store,
    current: Option<&SecretKey>,
    new: &SecretKey,
) -> Result<Rekeyed, StartupError> {
    let mut done = Rekeyed { resealed: 0, already: 0 };
    for row in store.stored_secrets().await? {
        if sealing::is_sealed(&row.secret) && new.open(&row.endpoint_uid, &row.secret).is_ok() {
            done.already += 1;
            continue;
        }
        let secret = sealing::reveal(current, &row.endpoint_uid, &row.secret)
            .map_err(|error| StartupError::Other(format!("secret #{} of {}: {error}", row.id, row.endpoint_uid)))?;
        if !store.reseal_secret(row.id, &row.secret, &new.seal(&row.endpoint_uid, &secret)).await? {
            return Err(StartupError::Other(format!(
                "secret #{} changed while being re-keyed: is a server still running on this database?",
                row.id
            )));
        }
        done.resealed += 1;
    }
    Ok(done)
}

/// Shows a generated signing secret once without writing it to the log (see
/// [`ensure_env_endpoint`]).
fn show_generated_secret(
    uid: &str,
    url: &str,
    secret: &str,
    file: Option<&std::path::Path>,
) -> Result<(), StartupError> {
    use std::io::IsTerminal as _;
    if std::io::stderr().is_terminal() {
        eprintln!("webhook endpoint {url} created; its signing secret (shown once): {secret}");
        return Ok(());
    }
    match file {
        Some(path) => {
            super::vault::place_private_file(path, &format!("{secret}\n"), |draft, path| std::fs::rename(draft, path))
                .map_err(|e| StartupError::Other(format!("writing the signing secret to {}: {e}", path.display())))?;
            tracing::warn!(
                endpoint = %uid,
                path = %path.display(),
                "the generated signing secret of the ADMS_WEBHOOK_URL endpoint is in this file (mode 0600): give it to the receiver, then delete the file"
            );
        }
        None => tracing::warn!(
            endpoint = %uid,
            "a signing secret was generated for the ADMS_WEBHOOK_URL endpoint and not shown (no terminal, no database folder): set ADMS_WEBHOOK_SECRET, or rotate it through POST /api/v1/webhooks/endpoints/{uid}/rotate-secret"
        ),
    }
    Ok(())
}
