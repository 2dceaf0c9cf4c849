//! Scopes as the identity platform reads them: OpenID Connect scopes, and Graph permissions
//! given bare (`User.Read`) or with the resource (`https://graph.microsoft.com/User.Read`).

/// The scopes of OpenID Connect itself.
pub const OIDC: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Graph's resource URI.
pub const GRAPH: &str = "https://graph.microsoft.com";

/// The Graph permissions msemu knows, with the consent page's wording.
pub const GRAPH_PERMISSIONS: &[(&str, &str)] = &[
    ("User.Read", "Sign you in and read your profile"),
    ("Presence.Read", "Read your presence information"),
    ("Presence.Read.All", "Read presence information of all users in your organization"),
    ("Presence.ReadWrite", "Read and write your presence information"),
    ("Calendars.Read", "Read your calendars"),
];

/// The consent page's wording for the OIDC scopes.
pub fn describe(scope: &str) -> &'static str {
    match scope {
        "openid" => "Sign you in",
        "profile" => "View your basic profile",
        "email" => "View your email address",
        "offline_access" => "Maintain access to data you have given it access to",
        other => GRAPH_PERMISSIONS.iter().find(|(p, _)| *p == other).map_or("Access your data", |(_, d)| d),
    }
}

/// Normalises a space-separated scope list: OIDC scopes as they are, Graph permissions by
/// their short names; `Err` names the first scope msemu does not know (AADSTS70011).
pub fn parse(scope: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for s in scope.split_whitespace() {
        let short = s.strip_prefix(GRAPH).map(|p| p.trim_start_matches('/')).unwrap_or(s);
        let known = OIDC.iter().chain(GRAPH_PERMISSIONS.iter().map(|(p, _)| p)).find(|k| k.eq_ignore_ascii_case(short));
        match known {
            Some(k) if !out.iter().any(|o: &String| o == k) => out.push((*k).to_owned()),
            Some(_) => {}
            None if short == ".default" => out.push("User.Read".to_owned()),
            None => return Err(s.to_owned()),
        }
    }
    Ok(out)
}

/// The Graph permissions among `scopes` (what goes into an access token's `scp`).
pub fn graph(scopes: &[String]) -> Vec<&str> {
    scopes.iter().map(String::as_str).filter(|s| !OIDC.contains(s)).collect()
}

/// The `scope` a token response reports: Graph permissions with their resource, then OIDC.
pub fn granted(scopes: &[String]) -> String {
    let mut out: Vec<String> = graph(scopes).iter().map(|p| format!("{GRAPH}/{p}")).collect();
    out.extend(scopes.iter().filter(|s| OIDC.contains(&s.as_str()) && *s != "offline_access").cloned());
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_normalised() {
        let s = parse("openid email offline_access https://graph.microsoft.com/Presence.Read.All").unwrap();
        assert_eq!(s, vec!["openid", "email", "offline_access", "Presence.Read.All"]);
        assert_eq!(parse("presence.read.all User.Read user.read").unwrap(), vec!["Presence.Read.All", "User.Read"]);
        assert_eq!(parse("openid Mail.Send").unwrap_err(), "Mail.Send");
        assert_eq!(graph(&s), vec!["Presence.Read.All"]);
        assert_eq!(granted(&s), "https://graph.microsoft.com/Presence.Read.All openid email");
    }
}
