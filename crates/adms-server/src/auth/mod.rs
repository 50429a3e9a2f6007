//! Who may call the API, without the HTTP side: principals, scopes and roles, the keys and
//! caches tokens are checked against (`AuthState`), password hashing, and the login throttle
//! (`throttle`). The login routes and the extractor that reads credentials from a request are
//! `api::auth`'s; this module reads no application state, so the state can hold `AuthState`.

pub mod throttle;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::phc::Output;
use argon2::{Algorithm as Argon2Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version};
use jsonwebtoken::{DecodingKey, EncodingKey};

use adms_store::{Store, StoreError};

use throttle::{LoginGuard, LoginLimits};

/// How long an account's state (token version, disabled) is trusted without asking the
/// database: JWTs are checked on every ERP request, and a change made by another replica is
/// seen within this time.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(1);
/// Accounts whose state is cached at most (only ids from validly signed tokens get here).
const USER_CACHE_MAX: usize = 10_000;

/// Who made an API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Option<i64>,
    pub name: String,
    /// The token row (session token or integration key); `None` for JWT and Basic.
    pub token_id: Option<i64>,
    /// `session`, `jwt`, `basic` or `integration` (as the audit log names them).
    pub kind: &'static str,
    /// What it may do: its account's role, or the integration key's own scopes.
    pub scopes: Scopes,
}

/// What a request may do. Every API route requires one (see `api::access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every read: transactions, terminals, roster, biodata, rejected lines, commands, webhooks.
    Read,
    /// Personnel, org units and resignation writes.
    RosterWrite,
    /// Device commands, terminal actions, terminal and device settings, approval.
    DevicesControl,
    /// Webhook endpoint writes, resend, replay, secret rotation.
    WebhooksAdmin,
    /// Users, the audit log, and everything else.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] =
        [Scope::Read, Scope::RosterWrite, Scope::DevicesControl, Scope::WebhooksAdmin, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::RosterWrite => "roster:write",
            Scope::DevicesControl => "devices:control",
            Scope::WebhooksAdmin => "webhooks:admin",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// A role's scopes; an unknown role (the database refuses them) gets none.
    pub fn of_role(role: &str) -> Scopes {
        match role {
            "admin" => Scopes::of(&Scope::ALL),
            "operator" => Scopes::of(&[Scope::Read, Scope::RosterWrite, Scope::DevicesControl, Scope::WebhooksAdmin]),
            "viewer" => Scopes::of(&[Scope::Read]),
            _ => Scopes::default(),
        }
    }

    /// A stored, space-separated list; unknown words grant nothing.
    pub fn parse_list(text: &str) -> Scopes {
        Scopes::of(&text.split_ascii_whitespace().filter_map(Scope::parse).collect::<Vec<_>>())
    }

    /// `admin` includes every scope.
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & (Scope::Admin.bit() | scope.bit()) != 0
    }

    /// The space-separated form stored with integration keys.
    pub fn to_list(self) -> String {
        Scope::ALL.into_iter().filter(|s| self.0 & s.bit() != 0).map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }
}

/// What tokens are checked against: an account's current name, version and whether it is
/// usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LiveUser {
    pub(crate) username: String,
    pub(crate) token_version: i64,
    pub(crate) disabled: bool,
    /// Read with the rest, so a role change applies within [`USER_CACHE_TTL`].
    pub(crate) role: String,
}

/// A verified Basic credential: who, the account's version then, and until when.
#[derive(Debug, Clone)]
pub(crate) struct BasicEntry {
    pub(crate) principal: Principal,
    pub(crate) token_version: i64,
    pub(crate) until: i64,
}

/// Keys and caches for authentication.
pub struct AuthState {
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    pub(crate) basic_cache: Mutex<HashMap<Vec<u8>, BasicEntry>>,
    /// Account states by id (`None`: no such account), with when they were read.
    users: Mutex<HashMap<i64, (Option<LiveUser>, Instant)>>,
    /// What an unknown user's password is checked against, so that answering them costs the
    /// same as a known user with a wrong password.
    pub(crate) dummy_hash: String,
    pub guard: LoginGuard,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthState { .. }")
    }
}

impl AuthState {
    /// Loads the JWT signing key shared by every replica (created on first start) and makes
    /// the dummy hash.
    /// `jwt_key` is the signing key shared by every replica (`vault::jwt_signing_key`: stored
    /// sealed under the master key).
    pub async fn load(jwt_key: &[u8], limits: LoginLimits) -> Result<AuthState, AuthSetupError> {
        let key = jwt_key;
        let dummy_hash = tokio::task::spawn_blocking(|| hash_password(&hex::encode(rand::random::<[u8; 16]>())))
            .await
            .map_err(|e| AuthSetupError::Hash(e.to_string()))?
            .map_err(AuthSetupError::Hash)?;
        Ok(AuthState {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            basic_cache: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            dummy_hash,
            guard: LoginGuard::new(limits).map_err(AuthSetupError::Threads)?,
        })
    }

    /// Drops the cached state of an account this process just changed, so its next request
    /// sees the change.
    pub fn forget_user(&self, id: i64) {
        lock(&self.users).remove(&id);
    }

    /// The account's current state, from the cache when read less than [`USER_CACHE_TTL`] ago.
    pub(crate) async fn live_user(&self, store: &Store, id: i64) -> Result<Option<LiveUser>, StoreError> {
        let now = Instant::now();
        if let Some((user, at)) = lock(&self.users).get(&id)
            && now.duration_since(*at) < USER_CACHE_TTL
        {
            return Ok(user.clone());
        }
        let user = store.user_by_id(id).await?.map(|u| LiveUser {
            username: u.username,
            token_version: u.token_version,
            disabled: u.disabled_at.is_some(),
            role: u.role,
        });
        let mut users = lock(&self.users);
        if users.len() >= USER_CACHE_MAX {
            users.retain(|_, (_, at)| now.duration_since(*at) < USER_CACHE_TTL);
        }
        users.insert(id, (user.clone(), now));
        Ok(user)
    }
}

/// Why authentication could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("password hashing: {0}")]
    Hash(String),
    #[error("cannot start the password check threads: {0}")]
    Threads(#[source] std::io::Error),
}

/// Locks a cache; a holder that panicked left it consistent (every update is one insert).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Hashes a password for storage (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

thread_local! {
    /// This thread's argon2 memory, reused by every check it runs. On the password check
    /// threads (`throttle`) a check allocates nothing: the resident memory of logins is one
    /// buffer (~19 MiB) per thread, whatever the allocator does with freed blocks.
    static ARGON2_BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Whether `password` matches the stored `hash` (a PHC string; argon2, slow: run it off the
/// async threads). The comparison is constant-time (`Output`'s `==`). A hash that does not
/// parse matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let Ok(algorithm) = Argon2Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let blocks_needed = params.block_count();
    let mut out = vec![0u8; expected.len()];
    let hashed = ARGON2_BLOCKS.with_borrow_mut(|blocks| {
        if blocks.len() < blocks_needed {
            blocks.resize(blocks_needed, Block::new());
        }
        Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut blocks[..],
        )
    });
    hashed.is_ok() && Output::new(&out).is_ok_and(|computed| computed == *expected)
}

/// A new random token (40 hex characters, the shape ZKBio Time clients store).
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 20]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PHC hash with small parameters (the check's memory is reused across sizes).
    fn small_hash(password: &str, m_cost: u32) -> String {
        let params = Params::new(m_cost, 1, 1, None).unwrap();
        Argon2::new(Argon2Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes())
            .unwrap()
            .to_string()
    }

    #[test]
    fn reused_memory_checks_match_argon2s_own_verifier() {
        use argon2::PasswordVerifier as _;
        let default = hash_password("correct horse").unwrap();
        let small = small_hash("battery", 64);
        let mid = small_hash("staple", 256);
        // Same thread, one buffer: default size first, then smaller ones (stale blocks left
        // from the bigger check must not matter), then the default again.
        for _ in 0..2 {
            for (password, hash) in [("correct horse", &default), ("battery", &small), ("staple", &mid)] {
                assert!(verify_password(password, hash), "{hash}");
                assert!(!verify_password("wrong", hash), "{hash}");
                assert!(Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok());
            }
        }
        assert!(!verify_password("correct horse", "not a PHC string"));
        assert!(!verify_password("correct horse", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ"));
    }
}
