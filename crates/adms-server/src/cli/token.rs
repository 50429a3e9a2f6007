//! `adms-bridge token …`: integration keys, and the API clients of the CVSecurity-compatible
//! API (`--kind cvsecurity`: an `access_token` for `/api/...` CVSecurity paths only).

use std::io::Write as _;

use anyhow::Context as _;

use adms_server::Config;
use adms_server::api::auth::{Scope, Scopes, new_token};
use adms_store::{StoreError, now_micros, sha256};

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TokenKind {
    /// An integration key: `Authorization: Token <key>` on the API, with its scopes.
    #[default]
    Integration,
    /// A CVSecurity API client: the `access_token` query parameter of the CVSecurity-compatible
    /// paths, and nothing else.
    Cvsecurity,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenAction {
    /// Create a key; it is printed once and stored only as a hash. Names are unique among the
    /// keys in force.
    Create {
        #[arg(long)]
        name: String,
        /// `integration` (default) or `cvsecurity`: a CVSecurity API client's `access_token`,
        /// which reads persons, departments, cards, doors, devices, readers, levels and
        /// transactions and makes access changes (level memberships, syncs, remote door
        /// opening), and opens no other route.
        #[arg(long, value_enum, default_value_t)]
        kind: TokenKind,
        /// With `--kind cvsecurity`: the client may only read.
        #[arg(long)]
        read_only: bool,
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
    /// Revoke a key by its id or its name (`--kind cvsecurity`: a CVSecurity API client).
    Revoke {
        id_or_name: String,
        #[arg(long, value_enum, default_value_t)]
        kind: TokenKind,
    },
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
        TokenAction::Create { name, kind, read_only, scopes, expires_in } => {
            let name = name.trim().to_owned();
            anyhow::ensure!(!name.is_empty() && name.len() <= 100, "--name must be 1 to 100 characters");
            if kind == TokenKind::Cvsecurity {
                anyhow::ensure!(
                    scopes.is_empty() && expires_in.is_none(),
                    "--scope and --expires-in are for integration keys; a CVSecurity client has --read-only"
                );
                create_cvsecurity_client(&store, &name, !read_only).await?;
                store.close().await;
                return Ok(());
            }
            anyhow::ensure!(!read_only, "--read-only is for --kind cvsecurity; an integration key has --scope");
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
            for c in store.list_cvsecurity_clients().await? {
                let state = if c.revoked_at.is_some() { "revoked" } else { "active" };
                let rights = if c.may_write { "cvsecurity:read+access" } else { "cvsecurity:read" };
                writeln!(
                    stdout,
                    "cvsecurity:{}\t{}\t{}\t{}\tcreated {}\tlast used {}\texpires -",
                    c.id,
                    c.name,
                    state,
                    rights,
                    super::when(Some(c.created_at)),
                    super::when(c.last_used_at),
                )?;
            }
        }
        TokenAction::Revoke { id_or_name, kind: TokenKind::Cvsecurity } => {
            let n = store.revoke_cvsecurity_client(&id_or_name).await?;
            anyhow::ensure!(n > 0, "no active CVSecurity API client with id or name '{id_or_name}'");
            super::audit(&store, "token revoke --kind cvsecurity", &id_or_name).await;
            writeln!(stdout, "revoked {n}")?;
        }
        TokenAction::Revoke { id_or_name, kind: TokenKind::Integration } => {
            let n = store.revoke_token(&id_or_name).await?;
            anyhow::ensure!(n > 0, "no active integration key with id or name '{id_or_name}'");
            super::audit(&store, "token revoke", &id_or_name).await;
            writeln!(stdout, "revoked {n}")?;
        }
    }
    store.close().await;
    Ok(())
}

/// Creates a CVSecurity API client and prints its token once. The token has the shape of
/// CVSecurity's client secrets (64 upper-case hex characters), which some clients check.
async fn create_cvsecurity_client(store: &adms_store::Store, name: &str, may_write: bool) -> anyhow::Result<()> {
    let token = hex::encode_upper(rand::random::<[u8; 32]>());
    let id = match store.create_cvsecurity_client(name, &sha256(token.as_bytes()), may_write).await {
        Ok(id) => id,
        Err(StoreError::Conflict(reason)) => {
            anyhow::bail!("{reason}: choose another --name, or revoke that client first")
        }
        Err(other) => return Err(other.into()),
    };
    super::audit(store, "token create --kind cvsecurity", name).await;
    writeln!(std::io::stdout(), "{token}")?;
    let rights = if may_write { "reads and access changes" } else { "reads only" };
    eprintln!(
        "CVSecurity API client #{id} '{name}' ({rights}) created; pass it as ?access_token=; it is shown only once"
    );
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
