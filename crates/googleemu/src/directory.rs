//! The directory: Google accounts and OAuth clients, from a TOML file (`--users FILE`) or the
//! built-in one (`users.toml`).

use serde::{Deserialize, Serialize};

/// A Google account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Sign-in name and the address of the primary calendar.
    pub email: String,
    pub password: String,
    /// Display name (`name` claim; `given_name` is its first word).
    pub name: String,
    /// The Google Workspace / Cloud organization's domain; `None` for a consumer account. Only
    /// then do id tokens carry `hd`.
    #[serde(default)]
    pub hd: Option<String>,
    /// The stable account id (`sub`); derived from the email when absent.
    #[serde(default)]
    pub sub: Option<String>,
    /// The primary calendar's time zone: `UTC` or one of the fixed-offset zones googleemu knows
    /// (see [`crate::calendar::time::zone_offset`]).
    #[serde(default = "utc")]
    pub time_zone: String,
    /// The organization's administrator restricts third-party access: sign-in ends on the
    /// `admin_policy_enforced` error screen for every client.
    #[serde(default)]
    pub admin_policy_enforced: bool,
}

fn utc() -> String {
    "UTC".to_owned()
}

impl User {
    /// The `sub` claim: as configured, or 21 digits derived from the email (Google's are
    /// numeric strings of about that length, stable for the account's life).
    pub fn sub(&self) -> String {
        if let Some(sub) = &self.sub {
            return sub.clone();
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.email.to_lowercase().as_bytes());
        let digits: String = digest.as_ref().iter().take(20).map(|b| char::from(b'0' + b % 10)).collect();
        format!("1{digits}")
    }

    pub fn given_name(&self) -> &str {
        self.name.split_whitespace().next().unwrap_or(&self.name)
    }
}

/// An OAuth 2.0 client ("web application") of a Google Cloud project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    pub client_id: String,
    pub client_secret: String,
    /// The app name the consent screen shows.
    pub name: String,
    /// Matched exactly (scheme, host, port, path, trailing slash), as Google does.
    pub redirect_uris: Vec<String>,
    /// Consent screen "External" with publishing status "Testing": refresh tokens lapse 7 days
    /// after consent unless only name, email and profile were asked for.
    #[serde(default)]
    pub testing: bool,
    /// Consent screen user type "Internal": only accounts of `organization` may sign in; the
    /// others get the `org_internal` error screen.
    #[serde(default)]
    pub internal: bool,
    /// The organization (a `hd` domain) that owns the project; needed for `internal`.
    #[serde(default)]
    pub organization: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    pub users: Vec<User>,
    pub clients: Vec<Client>,
}

const BUILT_IN: &str = include_str!("../users.toml");

impl Default for Directory {
    fn default() -> Self {
        Directory::parse(BUILT_IN).expect("the built-in users file is valid")
    }
}

impl Directory {
    /// Parses and checks a directory (unique emails, subs and client ids; internal clients
    /// name their organization; time zones known).
    pub fn parse(text: &str) -> anyhow::Result<Directory> {
        let directory: Directory = toml::from_str(text)?;
        directory.check()?;
        Ok(directory)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        unique("user email", self.users.iter().map(|u| u.email.to_lowercase()))?;
        unique("user sub", self.users.iter().map(User::sub))?;
        unique("client id", self.clients.iter().map(|c| c.client_id.clone()))?;
        for c in &self.clients {
            anyhow::ensure!(
                !c.internal || c.organization.is_some(),
                "client {} is internal but names no organization",
                c.client_id
            );
        }
        for u in &self.users {
            anyhow::ensure!(
                crate::calendar::time::zone_offset(&u.time_zone).is_some(),
                "user {} has the time zone {}, which googleemu does not know",
                u.email,
                u.time_zone
            );
        }
        Ok(())
    }

    pub fn user(&self, email: &str) -> Option<&User> {
        self.users.iter().find(|u| u.email.eq_ignore_ascii_case(email.trim()))
    }

    pub fn user_mut(&mut self, email: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.email.eq_ignore_ascii_case(email.trim()))
    }

    pub fn client(&self, client_id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }
}

fn unique(what: &str, values: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for v in values {
        anyhow::ensure!(seen.insert(v.clone()), "two entries share the {what} {v}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_directory_has_workspace_and_consumer_accounts() {
        let d = Directory::default();
        assert_eq!(d.user("ALICE@example.com").unwrap().hd.as_deref(), Some("example.com"));
        assert_eq!(d.user("dave@other.example").unwrap().hd.as_deref(), Some("other.example"));
        assert_eq!(d.user("carol@gmail.com").unwrap().hd, None);
        let client = d.client("kehai-demo.apps.googleusercontent.com").unwrap();
        assert!(client.redirect_uris.contains(&"http://127.0.0.1:8080/integrations/gcal/callback".to_owned()));
        assert!(!client.testing && !client.internal);
    }

    #[test]
    fn subs_are_stable_numeric_and_distinct() {
        let d = Directory::default();
        let alice = d.user("alice@example.com").unwrap();
        assert_eq!(alice.sub(), alice.sub());
        assert_eq!(alice.sub().len(), 21);
        assert!(alice.sub().chars().all(|c| c.is_ascii_digit()));
        assert_ne!(alice.sub(), d.user("bob@example.com").unwrap().sub());
    }

    #[test]
    fn bad_directories_are_refused() {
        let mut twice = Directory::default();
        twice.users.push(twice.users[0].clone());
        assert!(twice.check().unwrap_err().to_string().contains("share"));
        let mut internal = Directory::default();
        internal.clients[0].internal = true;
        assert!(internal.check().unwrap_err().to_string().contains("organization"));
        let mut zone = Directory::default();
        zone.users[0].time_zone = "Mars/Olympus".into();
        assert!(zone.check().is_err());
        assert!(Directory::parse("users = []\nclients = []\nextra = 1\n").is_err());
    }
}
