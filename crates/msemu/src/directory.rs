//! The directory: tenants, users and app registrations, from a TOML file or the built-in one
//! (`directory.toml`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The tenant id of personal Microsoft accounts.
pub const CONSUMER_TENANT: Uuid = uuid::uuid!("9188040d-6c67-4c5b-b112-36a304b66dad");

/// Who may consent to an app in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentPolicy {
    /// Users consent for themselves.
    User,
    /// Only an administrator; users see "Need admin approval" until one has consented.
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub id: Uuid,
    /// A short name usable in URLs instead of the id (`/contoso/oauth2/v2.0/authorize`).
    pub name: String,
    pub domain: String,
    pub consent: ConsentPolicy,
    #[serde(default)]
    pub admin_consent_granted: bool,
    /// The consumer tenant of personal Microsoft accounts.
    #[serde(default)]
    pub personal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The object id (Graph's user id).
    pub id: Uuid,
    /// The tenant's name or id.
    pub tenant: String,
    /// Sign-in name and email (UPN).
    pub email: String,
    pub display_name: String,
    /// Without one, the sign-in form accepts an empty password.
    #[serde(default)]
    pub password: Option<String>,
    /// An administrator of the tenant: may grant admin consent for it.
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub client_id: Uuid,
    pub client_secret: String,
    pub name: String,
    /// Matched exactly, as Microsoft does.
    pub redirect_uris: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    pub tenants: Vec<Tenant>,
    pub users: Vec<User>,
    pub apps: Vec<App>,
}

fn unique(what: &str, values: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for v in values {
        anyhow::ensure!(seen.insert(v.clone()), "two entries share the {what} {v}");
    }
    Ok(())
}

const BUILT_IN: &str = include_str!("../directory.toml");

impl Default for Directory {
    fn default() -> Self {
        Directory::parse(BUILT_IN).expect("the built-in directory is valid")
    }
}

impl Directory {
    /// Parses and checks a directory (every user's tenant exists; ids and emails are unique).
    pub fn parse(text: &str) -> anyhow::Result<Directory> {
        let directory: Directory = toml::from_str(text)?;
        directory.check()?;
        Ok(directory)
    }

    fn check(&self) -> anyhow::Result<()> {
        for u in &self.users {
            anyhow::ensure!(self.tenant(&u.tenant).is_some(), "user {} names an unknown tenant {}", u.email, u.tenant);
        }
        for t in &self.tenants {
            anyhow::ensure!(
                t.personal == (t.id == CONSUMER_TENANT),
                "only the consumer tenant {CONSUMER_TENANT} holds personal accounts ({})",
                t.name
            );
        }
        unique("user email", self.users.iter().map(|u| u.email.to_lowercase()))?;
        unique("user id", self.users.iter().map(|u| u.id.to_string()))?;
        unique("tenant id", self.tenants.iter().map(|t| t.id.to_string()))?;
        unique("tenant name", self.tenants.iter().map(|t| t.name.to_lowercase()))?;
        unique("app client id", self.apps.iter().map(|a| a.client_id.to_string()))?;
        Ok(())
    }

    /// A tenant by id, name or domain.
    pub fn tenant(&self, key: &str) -> Option<&Tenant> {
        let key = key.to_lowercase();
        self.tenants.iter().find(|t| t.id.to_string() == key || t.name == key || t.domain == key)
    }

    pub fn tenant_mut(&mut self, key: &str) -> Option<&mut Tenant> {
        let id = self.tenant(key)?.id;
        self.tenants.iter_mut().find(|t| t.id == id)
    }

    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users.iter().find(|u| u.email.eq_ignore_ascii_case(email.trim()))
    }

    pub fn user(&self, id: Uuid) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The tenant a user belongs to.
    pub fn tenant_of(&self, user: &User) -> &Tenant {
        self.tenant(&user.tenant).expect("checked at parse")
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.client_id.to_string().eq_ignore_ascii_case(client_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_directory() {
        let d = Directory::default();
        let contoso = d.tenant("contoso").unwrap();
        assert_eq!(contoso.consent, ConsentPolicy::User);
        assert_eq!(d.tenant("fabrikam").unwrap().consent, ConsentPolicy::Admin);
        assert!(d.tenant(&CONSUMER_TENANT.to_string()).unwrap().personal);
        for email in ["alice@example.com", "bob@example.com"] {
            assert_eq!(d.tenant_of(d.user_by_email(email).unwrap()).name, "contoso");
        }
        assert!(d.users.iter().any(|u| u.display_name.starts_with("Carol")));
        assert_eq!(d.user_by_email("ALICE@example.com").unwrap().display_name, "Alice Example");
    }

    #[test]
    fn bad_directories_are_refused() {
        let missing_tenant = "tenants = []\napps = []\n[[users]]\nid = \"2c8e4a60-7d1b-4f3e-9a5c-0b6d8f2e4a71\"\ntenant = \"nowhere\"\nemail = \"a@b\"\ndisplay_name = \"A\"\n";
        assert!(Directory::parse(missing_tenant).unwrap_err().to_string().contains("unknown tenant"));
        assert!(Directory::parse("tenants = []\nusers = []\napps = []\nextra = 1\n").is_err());
        let mut twice = Directory::default();
        twice.users.push(twice.users[0].clone());
        assert!(twice.check().unwrap_err().to_string().contains("share"));
        let mut fake_consumer = Directory::default();
        fake_consumer.tenants[0].personal = true;
        assert!(fake_consumer.check().is_err());
    }
}
