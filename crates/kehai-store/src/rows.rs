//! Rows as sqlx reads them, turned into the domain's types (refusing stored values the domain
//! would not accept), and the column lists the statements share.

use kehai_core::{
    Account, Avatar, DisplayName, Email, Emoji, PersonId, PersonKind, PresenceOverride, Role, Space, SpaceId,
    SpaceName, SpaceSlug,
};

use crate::{
    Connection, ConnectionId, ConnectionState, EncryptionCertificate, Member, OAuthState, Result, Sealed, Session,
    StoreError, SubscriptionRecord, backend::uuid,
};

#[derive(sqlx::FromRow)]
pub(crate) struct SpaceRow {
    pub(crate) id: String,
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) allow_guests: bool,
}

impl TryFrom<SpaceRow> for Space {
    type Error = StoreError;
    fn try_from(r: SpaceRow) -> Result<Space> {
        Ok(Space {
            id: SpaceId(uuid(&r.id, "space id")?),
            slug: SpaceSlug::parse(&r.slug).map_err(|_| StoreError::Corrupt("space slug"))?,
            name: SpaceName::parse(&r.name).map_err(|_| StoreError::Corrupt("space name"))?,
            allow_guests: r.allow_guests,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    pub(crate) id: String,
    pub(crate) email: String,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Account> {
        Ok(Account {
            id: PersonId(uuid(&r.id, "account id")?),
            email: Email::parse(&r.email).map_err(|_| StoreError::Corrupt("email"))?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) role: String,
    pub(crate) display_name: String,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;
    fn try_from(r: MemberRow) -> Result<Member> {
        Ok(Member {
            role: Role::parse(&r.role).ok_or(StoreError::Corrupt("role"))?,
            display_name: DisplayName::parse(&r.display_name).map_err(|_| StoreError::Corrupt("display name"))?,
            account: Account::try_from(AccountRow { id: r.id, email: r.email })?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AvatarRow {
    pub(crate) space_id: String,
    pub(crate) person_id: String,
    pub(crate) kind: String,
    pub(crate) display_name: String,
    pub(crate) own_emoji: Option<String>,
    pub(crate) presence_provider: Option<String>,
    pub(crate) presence_availability: Option<String>,
    pub(crate) presence_activity: Option<String>,
    pub(crate) presence_label: Option<String>,
    pub(crate) presence_emoji: Option<String>,
    pub(crate) presence_kind: Option<String>,
    pub(crate) presence_since: Option<i64>,
}

fn emoji(s: &str) -> Result<Emoji> {
    Emoji::parse(s).map_err(|_| StoreError::Corrupt("emoji"))
}

fn presence_kind(s: &str) -> Result<kehai_core::presence::Kind> {
    kehai_core::presence::Kind::parse(s).ok_or(StoreError::Corrupt("presence kind"))
}

/// One provider's presence on an avatar (`avatar_presences`).
#[derive(sqlx::FromRow)]
pub(crate) struct AvatarPresenceRow {
    pub(crate) space_id: String,
    pub(crate) person_id: String,
    pub(crate) provider: String,
    pub(crate) availability: String,
    pub(crate) activity: String,
    pub(crate) label: String,
    pub(crate) emoji: String,
    pub(crate) kind: String,
    pub(crate) since: i64,
}

impl AvatarPresenceRow {
    /// The avatar it is on, and the presence.
    pub(crate) fn parse(self) -> Result<((SpaceId, PersonId), PresenceOverride)> {
        let avatar = (SpaceId(uuid(&self.space_id, "space id")?), PersonId(uuid(&self.person_id, "person id")?));
        let presence = PresenceOverride {
            provider: self.provider,
            availability: self.availability,
            activity: self.activity,
            label: self.label,
            emoji: emoji(&self.emoji)?,
            kind: presence_kind(&self.kind)?,
            since: self.since,
        };
        Ok((avatar, presence))
    }
}

impl TryFrom<AvatarRow> for Avatar {
    type Error = StoreError;
    fn try_from(r: AvatarRow) -> Result<Avatar> {
        let presence = match (
            r.presence_provider,
            r.presence_availability,
            r.presence_activity,
            r.presence_label,
            r.presence_emoji,
            r.presence_kind,
            r.presence_since,
        ) {
            (Some(provider), Some(availability), Some(activity), Some(label), Some(e), Some(kind), Some(since)) => {
                Some(PresenceOverride {
                    provider,
                    availability,
                    activity,
                    label,
                    emoji: emoji(&e)?,
                    kind: presence_kind(&kind)?,
                    since,
                })
            }
            _ => None,
        };
        Ok(Avatar {
            space_id: SpaceId(uuid(&r.space_id, "space id")?),
            person_id: PersonId(uuid(&r.person_id, "person id")?),
            kind: PersonKind::parse(&r.kind).ok_or(StoreError::Corrupt("person kind"))?,
            display_name: DisplayName::parse(&r.display_name).map_err(|_| StoreError::Corrupt("display name"))?,
            own_emoji: r.own_emoji.as_deref().map(emoji).transpose()?,
            presence,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    pub(crate) id_hash: String,
    pub(crate) person_id: String,
    pub(crate) kind: String,
    pub(crate) space_id: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Session> {
        Ok(Session {
            id_hash: r.id_hash,
            person_id: PersonId(uuid(&r.person_id, "person id")?),
            kind: PersonKind::parse(&r.kind).ok_or(StoreError::Corrupt("person kind"))?,
            space_id: r.space_id.as_deref().map(|s| uuid(s, "space id").map(SpaceId)).transpose()?,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

/// The columns [`AvatarRow`] reads, as a literal so statements stay `&'static str`.
macro_rules! avatar_columns {
    () => {
        "space_id, person_id, kind, display_name, own_emoji, presence_provider, presence_availability, \
         presence_activity, presence_label, presence_emoji, presence_kind, presence_since"
    };
}

/// The columns [`ConnectionRow`] reads.
macro_rules! connection_columns {
    () => {
        "id, account_id, provider, external_tenant, external_user, access_token, access_expires_at, \
         refresh_token, refresh_expires_at, subscription_id, subscription_expires_at, client_state, state, \
         last_error, connected_at, updated_at, last_sequence, access_refresh_at, subscription_certificate_id, \
         next_check_at, subscription_resource, granted_scope, previous_subscription_id, \
         previous_subscription_resource, previous_subscription_expires_at"
    };
}

/// Whether a connection is free for the claim at hand (`$1` the holder, `$2` now) kept in the

#[derive(sqlx::FromRow)]
pub(crate) struct ConnectionRow {
    pub(crate) id: String,
    pub(crate) account_id: String,
    pub(crate) provider: String,
    pub(crate) external_tenant: String,
    pub(crate) external_user: String,
    pub(crate) access_token: String,
    pub(crate) access_expires_at: i64,
    pub(crate) refresh_token: Option<String>,
    pub(crate) refresh_expires_at: Option<i64>,
    pub(crate) subscription_id: Option<String>,
    pub(crate) subscription_expires_at: Option<i64>,
    pub(crate) client_state: Option<String>,
    pub(crate) state: String,
    pub(crate) last_error: Option<String>,
    pub(crate) last_sequence: Option<String>,
    pub(crate) access_refresh_at: i64,
    pub(crate) subscription_certificate_id: Option<String>,
    pub(crate) next_check_at: Option<i64>,
    pub(crate) subscription_resource: Option<String>,
    pub(crate) granted_scope: Option<String>,
    pub(crate) previous_subscription_id: Option<String>,
    pub(crate) previous_subscription_resource: Option<String>,
    pub(crate) previous_subscription_expires_at: Option<i64>,
    pub(crate) connected_at: i64,
    pub(crate) updated_at: i64,
}

impl TryFrom<ConnectionRow> for Connection {
    type Error = StoreError;
    fn try_from(r: ConnectionRow) -> Result<Connection> {
        // The subscription being replaced shares its successor's secret.
        let previous = match (r.previous_subscription_id, r.previous_subscription_expires_at, &r.client_state) {
            (Some(id), Some(expires_at), Some(cs)) => Some(SubscriptionRecord {
                id,
                expires_at,
                client_state: Sealed(cs.clone()),
                certificate_id: None,
                resource: r.previous_subscription_resource,
            }),
            _ => None,
        };
        let subscription = match (r.subscription_id, r.subscription_expires_at, r.client_state) {
            (Some(id), Some(expires_at), Some(cs)) => Some(SubscriptionRecord {
                id,
                expires_at,
                client_state: Sealed(cs),
                certificate_id: r.subscription_certificate_id,
                resource: r.subscription_resource,
            }),
            _ => None,
        };
        Ok(Connection {
            id: ConnectionId(uuid(&r.id, "connection id")?),
            account_id: PersonId(uuid(&r.account_id, "account id")?),
            provider: r.provider,
            external_tenant: r.external_tenant,
            external_user: r.external_user,
            access_token: Sealed(r.access_token),
            access_expires_at: r.access_expires_at,
            access_refresh_at: r.access_refresh_at,
            refresh_token: r.refresh_token.map(Sealed),
            refresh_expires_at: r.refresh_expires_at,
            subscription,
            previous_subscription: previous,
            state: ConnectionState::parse(&r.state).ok_or(StoreError::Corrupt("connection state"))?,
            last_error: r.last_error,
            last_sequence: r.last_sequence,
            next_check_at: r.next_check_at,
            granted_scope: r.granted_scope,
            connected_at: r.connected_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OAuthStateRow {
    pub(crate) state_hash: String,
    pub(crate) provider: String,
    pub(crate) session_hash: String,
    pub(crate) space_id: String,
    pub(crate) nonce: String,
    pub(crate) pkce_verifier: String,
    pub(crate) expires_at: i64,
}

impl TryFrom<OAuthStateRow> for OAuthState {
    type Error = StoreError;
    fn try_from(r: OAuthStateRow) -> Result<OAuthState> {
        Ok(OAuthState {
            state_hash: r.state_hash,
            provider: r.provider,
            session_hash: r.session_hash,
            space_id: SpaceId(uuid(&r.space_id, "space id")?),
            nonce: Sealed(r.nonce),
            pkce_verifier: Sealed(r.pkce_verifier),
            expires_at: r.expires_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CertificateRow {
    pub(crate) id: String,
    pub(crate) certificate: String,
    pub(crate) private_key: String,
    pub(crate) created_at: i64,
    pub(crate) retired_at: Option<i64>,
}

impl From<CertificateRow> for EncryptionCertificate {
    fn from(r: CertificateRow) -> Self {
        EncryptionCertificate {
            id: r.id,
            certificate: r.certificate,
            private_key: Sealed(r.private_key),
            created_at: r.created_at,
            retired_at: r.retired_at,
        }
    }
}

/// Rows of `connections` as connections.
pub(crate) fn connections(rows: Vec<ConnectionRow>) -> Result<Vec<Connection>> {
    rows.into_iter().map(Connection::try_from).collect()
}
