//! Administration used by the `kehai` commands (`migrate`, `space create`, `space guests`,
//! `member add`, `member list`) and by `kehai demo`: the same rules as the web, without HTTP.

use std::sync::Arc;

use kehai_core::{
    Account, DisplayName, Email, Invalid, Membership, Millis, NewPassword, PersonId, Role, Space, SpaceId, SpaceName,
    SpaceSlug,
};
use kehai_store::{Member, Store, StoreError};

use crate::{Config, auth::password};

/// Why an administrative command failed, in words for the operator.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    // Transparent: its message is the whole message (with `{0}` and `#[from]`, a chain-printing
    // caller would say it twice).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("there is no space `{0}`")]
    UnknownSpace(String),
    #[error("a space `{0}` already exists")]
    SpaceExists(String),
    #[error("{0} is already a member of `{1}`")]
    AlreadyMember(String, String),
    #[error("the account {0} exists with another password; pass the same password or leave it out")]
    PasswordMismatch(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Opens the configured database and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let database = config.database().ok_or_else(|| anyhow::anyhow!("invalid database_url"))?;
    let store = kehai_store::open(&database)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database {database:?}: {e}"))?;
    store.migrate().await.map_err(|e| anyhow::anyhow!("cannot migrate the database: {e}"))?;
    Ok(store)
}

fn now() -> Millis {
    use crate::clock::Clock;
    crate::clock::SystemClock.now()
}

/// Creates a space.
pub async fn create_space(store: &dyn Store, slug: &str, name: &str, allow_guests: bool) -> Result<Space, AdminError> {
    let space =
        Space { id: SpaceId::new(), slug: SpaceSlug::parse(slug)?, name: SpaceName::parse(name)?, allow_guests };
    match store.create_space(&space, now()).await {
        Err(StoreError::Conflict(_)) => Err(AdminError::SpaceExists(slug.to_owned())),
        other => other.map(|()| space).map_err(Into::into),
    }
}

/// Finds a space by slug.
pub async fn space(store: &dyn Store, slug: &str) -> Result<Space, AdminError> {
    let parsed = SpaceSlug::parse(slug).map_err(|_| AdminError::UnknownSpace(slug.to_owned()))?;
    store.space_by_slug(&parsed).await?.ok_or_else(|| AdminError::UnknownSpace(slug.to_owned()))
}

/// Adds a member to a space, creating the account if the email is new. For an existing account
/// the password must be the account's (or absent), so this command cannot take over accounts.
pub async fn add_member(
    store: &dyn Store,
    space_slug: &str,
    email: &str,
    display_name: Option<&str>,
    password: Option<&str>,
    role: Role,
) -> Result<Member, AdminError> {
    let space = space(store, space_slug).await?;
    let email = Email::parse(email)?;
    let display_name = DisplayName::parse(display_name.unwrap_or(email.local_part()))?;
    let account = match store.account_by_email(&email).await? {
        Some((account, hash)) => {
            if let Some(p) = password
                && !password::verify(Some(hash), p.to_owned()).await
            {
                return Err(AdminError::PasswordMismatch(email.as_str().to_owned()));
            }
            account
        }
        None => {
            let password = NewPassword::parse(password.unwrap_or(""))?;
            let account = Account { id: PersonId::new(), email: email.clone() };
            store.create_account(&account, &password::hash(&password).await?, now()).await?;
            account
        }
    };
    match store.add_member(&Membership { space_id: space.id, account_id: account.id, role }, &display_name, now()).await
    {
        Ok(()) => Ok(Member { account, role, display_name }),
        Err(StoreError::Conflict(_)) => {
            Err(AdminError::AlreadyMember(email.as_str().to_owned(), space_slug.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The members of a space.
pub async fn members(store: &dyn Store, space_slug: &str) -> Result<Vec<Member>, AdminError> {
    let space = space(store, space_slug).await?;
    Ok(store.members(space.id).await?)
}

/// How a space takes guests (`kehai space guests <slug> off|open|link`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestAccess {
    /// No guests.
    Off,
    /// Anyone with the space's address joins at `/s/{slug}/guest`.
    Open,
    /// Only through the space's guest link: a new secret each time (earlier links stop working).
    Link,
}

/// Sets how a space takes guests. With [`GuestAccess::Link`], returns the new guest link's
/// secret (only its hash is stored). Guests already in stay until their session ends.
pub async fn set_guests(
    store: &dyn Store,
    slug: &str,
    access: GuestAccess,
) -> Result<Option<secrecy::SecretString>, AdminError> {
    let space = space(store, slug).await?;
    let secret = (access == GuestAccess::Link).then(|| crate::opaque::random(24));
    let hash = secret.as_ref().map(|s| crate::pages::guest::link_hash(secrecy::ExposeSecret::expose_secret(s)));
    store.set_guests(space.id, access != GuestAccess::Off, hash.as_deref()).await?;
    Ok(secret)
}
