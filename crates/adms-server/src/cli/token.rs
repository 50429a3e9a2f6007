//! `adms-bridge token …`: integration keys.

use std::io::Write as _;

use anyhow::Context as _;

use adms_server::Config;
use adms_server::api::auth::{Scope, Scopes, new_token};
use adms_store::{StoreError, now_micros, sha256};

#[derive(Debug, clap::Subcommand)]
pub enum TokenAction {
    /// Create a key; it is printed once and stored only as a hash. Names are unique among the
    /// keys in force.
    Create {
        #[arg(long)]
        name: String,
        /// A scope the key gets (repeat for several): read, roster:write, devices:control,
        /// webhooks:admin, admin. Without any: read only.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The key stops working after this long: `90d`, `12h`, `1d 12h`, … (default: never).
        #[arg(long, value_parser = parse_expires_in)]
        expires_in: Option<i64>,
    },
    /// List keys (never the keys themselves): id, name, state, scopes, created, last used
    /// (recorded at most once a minute), expires; times in UTC.
    List,
    /// Revoke a key by its id or its name.
    Revoke { id_or_name: String },
}

/// A lifetime such as `90d` or `12h` (days of 24 hours), in µs.
fn parse_expires_in(text: &str) -> Result<i64, String> {
    let span: jiff::Span = text.parse().map_err(|e| format!("not a duration like 90d or 12h: {e}"))?;
    let seconds = span
        .total(jiff::SpanTotal::from(jiff::Unit::Second).days_are_24_hours())
        .map_err(|e| format!("not a duration like 90d or 12h: {e}"))?;
    if !(60.0..=3_650.0 * 86_400.0).contains(&seconds) {
        return Err("must be 1 minute to 10 years".into());
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok((seconds * 1_000_000.0) as i64)
}

pub async fn run(action: TokenAction, config: &Config) -> anyhow::Result<()> {
    let store = super::open_existing(config).await?;
    let mut stdout = std::io::stdout();
    match action {
        TokenAction::Create { name, scopes, expires_in } => {
            let name = name.trim().to_owned();
            anyhow::ensure!(!name.is_empty() && name.len() <= 100, "--name must be 1 to 100 characters");
            let mut parsed = Vec::new();
            for scope in &scopes {
                parsed.push(Scope::parse(scope).with_context(|| {
                    format!("unknown scope '{scope}' (read, roster:write, devices:control, webhooks:admin, admin)")
                })?);
            }
            // Least privilege: a key given no scope may only read.
            if parsed.is_empty() {
                parsed.push(Scope::Read);
            }
            let scopes = Scopes::of(&parsed).to_list();
            let token = new_token();
            let expires_at = expires_in.map(|micros| now_micros().saturating_add(micros));
            let id = match store.create_integration_token(&name, &sha256(token.as_bytes()), &scopes, expires_at).await {
                Ok(id) => id,
                Err(StoreError::Conflict(reason)) => {
                    anyhow::bail!("{reason}: choose another --name, or revoke that key first")
                }
                Err(other) => return Err(other.into()),
            };
            super::audit(&store, "token create", &name).await;
            writeln!(stdout, "{token}")?;
            let until = expires_at.map_or_else(String::new, |at| format!(", expires {}", super::when(Some(at))));
            eprintln!("integration key #{id} '{name}' ({scopes}{until}) created; it is shown only once");
        }
        TokenAction::List => {
            let now = now_micros();
            for t in store.list_tokens().await? {
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(_), _) => "revoked",
                    (None, Some(at)) if at <= now => "expired",
                    _ => "active",
                };
                writeln!(
                    stdout,
                    "{}\t{}\t{}\t{}\tcreated {}\tlast used {}\texpires {}",
                    t.id,
                    t.name,
                    state,
                    t.scopes,
                    super::when(Some(t.created_at)),
                    super::when(t.last_used_at),
                    super::when(t.expires_at),
                )?;
            }
        }
        TokenAction::Revoke { id_or_name } => {
            let n = store.revoke_token(&id_or_name).await?;
            anyhow::ensure!(n > 0, "no active integration key with id or name '{id_or_name}'");
            super::audit(&store, "token revoke", &id_or_name).await;
            writeln!(stdout, "revoked {n}")?;
        }
    }
    store.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn lifetimes_read_as_days_and_hours() {
        assert_eq!(super::parse_expires_in("90d"), Ok(90 * 86_400 * 1_000_000));
        assert_eq!(super::parse_expires_in("12h"), Ok(12 * 3_600 * 1_000_000));
        assert_eq!(super::parse_expires_in("1d 12h"), Ok(36 * 3_600 * 1_000_000));
        assert!(super::parse_expires_in("soon").is_err());
        assert!(super::parse_expires_in("1s").is_err(), "too short");
    }
}
