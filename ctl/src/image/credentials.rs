//! Registry credentials, found where OCI tools look: the environment
//! (`TURNOUT_REGISTRY_USERNAME` and `TURNOUT_REGISTRY_PASSWORD`, for CI
//! jobs), else the docker config file (`$DOCKER_CONFIG/config.json`, or
//! `~/.docker/config.json`), whose `auths` entry for the registry holds
//! `auth` (base64 of `user:password`) or `username` and `password`, as
//! `docker login`, `crane auth login` and `oras login` write it. Nothing
//! found: anonymous. The parsing is pure; `find` reads the file.

use base64::Engine as _;
use serde_json::Value;
use std::path::PathBuf;

pub const USERNAME_VAR: &str = "TURNOUT_REGISTRY_USERNAME";
pub const PASSWORD_VAR: &str = "TURNOUT_REGISTRY_PASSWORD";

/// Credentials for one registry, and where they came from (said when the
/// registry refuses them). Its `Debug` leaves the password out.
#[derive(PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic {
        username: String,
        password: String,
        from: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, from, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"…")
                .field("from", from)
                .finish(),
        }
    }
}

/// Finds the credentials for `registry` (`host[:port]`, as in the image
/// reference). An error is one line saying what is wrong with a source.
pub fn find(registry: &str) -> Result<Credentials, String> {
    if let Some(found) = from_env(|name| std::env::var(name).ok())? {
        return Ok(found);
    }
    let Some(path) = docker_config_path() else {
        return Ok(Credentials::Anonymous);
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => from_docker_config(&text, registry, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Credentials::Anonymous),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// Both variables, or neither: one alone is a mistake worth a line.
fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Credentials>, String> {
    match (var(USERNAME_VAR), var(PASSWORD_VAR)) {
        (Some(username), Some(password)) => Ok(Some(Credentials::Basic {
            username,
            password,
            from: format!("{USERNAME_VAR}/{PASSWORD_VAR}"),
        })),
        (None, None) => Ok(None),
        _ => Err(format!(
            "set both {USERNAME_VAR} and {PASSWORD_VAR}, or neither"
        )),
    }
}

/// The `auths` entry of a docker config (`text`, read from `file`) for
/// `registry`. Keys are matched as docker matches them: the host and port,
/// with or without a scheme and a path (`https://registry.example.com/v1/`).
fn from_docker_config(text: &str, registry: &str, file: &str) -> Result<Credentials, String> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| format!("{file} is not valid JSON: {e}"))?;
    let wanted = registry_keys(registry);
    let entry = doc["auths"].as_object().and_then(|auths| {
        auths
            .iter()
            .find(|(key, _)| wanted.contains(&host_of(key)))
            .map(|(_, entry)| entry)
    });
    let Some(entry) = entry else {
        if let Some(helper) = helper_for(&doc, &wanted) {
            return Err(format!(
                "{file} leaves {registry}'s credentials to the helper docker-credential-{helper}, \
                 which turnoutctl does not run: set {USERNAME_VAR} and {PASSWORD_VAR} instead"
            ));
        }
        return Ok(Credentials::Anonymous);
    };
    let from = format!("{file} (auths.{registry})");
    if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let (username, password) = decoded
            .as_deref()
            .and_then(|pair| pair.split_once(':'))
            .ok_or_else(|| format!("{from}: `auth` is not base64 of user:password"))?;
        return Ok(Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
            from,
        });
    }
    match (entry["username"].as_str(), entry["password"].as_str()) {
        (Some(username), Some(password)) => Ok(Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
            from,
        }),
        _ => Ok(Credentials::Anonymous),
    }
}

/// The keys a docker config may file `registry` under: Docker Hub's
/// images (`docker.io`) are filed under `index.docker.io`.
fn registry_keys(registry: &str) -> Vec<String> {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            vec!["docker.io".into(), "index.docker.io".into()]
        }
        other => vec![other.to_string()],
    }
}

/// `https://host:port/v1/` → `host:port`.
fn host_of(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// The credential helper a docker config names for the registry, if any.
fn helper_for(doc: &Value, wanted: &[String]) -> Option<String> {
    let per_registry = doc["credHelpers"].as_object().and_then(|helpers| {
        helpers
            .iter()
            .find(|(key, _)| wanted.contains(&host_of(key)))
            .and_then(|(_, helper)| helper.as_str())
    });
    per_registry
        .or_else(|| doc["credsStore"].as_str())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(username: &str, password: &str, from: &str) -> Credentials {
        Credentials::Basic {
            username: username.into(),
            password: password.into(),
            from: from.into(),
        }
    }

    #[test]
    fn the_environment_wants_both_variables() {
        let env = |pairs: &'static [(&str, &str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(from_env(env(&[])), Ok(None));
        let both = from_env(env(&[(USERNAME_VAR, "ci"), (PASSWORD_VAR, "s3cret")]));
        let from = format!("{USERNAME_VAR}/{PASSWORD_VAR}");
        assert_eq!(both, Ok(Some(basic("ci", "s3cret", &from))));
        let one = from_env(env(&[(USERNAME_VAR, "ci")])).expect_err("one alone");
        assert!(one.contains("set both"), "{one}");
    }

    #[test]
    fn a_docker_config_auth_entry_is_base64_of_user_and_password() {
        // base64("alice:pa:ss") — a password may hold a colon.
        let text =
            r#"{"auths": {"https://registry.example.com:5000/v1/": {"auth": "YWxpY2U6cGE6c3M="}}}"#;
        let found = from_docker_config(text, "registry.example.com:5000", "cfg.json");
        let from = "cfg.json (auths.registry.example.com:5000)";
        assert_eq!(found, Ok(basic("alice", "pa:ss", from)));
        // Another registry's entry is not this one's.
        let other = from_docker_config(text, "registry.example.com", "cfg.json");
        assert_eq!(other, Ok(Credentials::Anonymous));
    }

    #[test]
    fn username_and_password_fields_and_docker_hub_keys() {
        let text =
            r#"{"auths": {"https://index.docker.io/v1/": {"username": "bob", "password": "pw"}}}"#;
        let found = from_docker_config(text, "docker.io", "cfg.json");
        assert_eq!(found, Ok(basic("bob", "pw", "cfg.json (auths.docker.io)")));
    }

    #[test]
    fn a_broken_entry_or_file_is_said_not_ignored() {
        let bad = r#"{"auths": {"r.example": {"auth": "not base64!"}}}"#;
        let err = from_docker_config(bad, "r.example", "cfg.json").expect_err("bad auth");
        assert!(err.contains("not base64 of user:password"), "{err}");
        let err = from_docker_config("{", "r.example", "cfg.json").expect_err("bad JSON");
        assert!(err.contains("cfg.json is not valid JSON"), "{err}");
    }

    #[test]
    fn a_credential_helper_is_named_not_run() {
        let text = r#"{"auths": {}, "credHelpers": {"r.example": "ecr-login"}}"#;
        let err = from_docker_config(text, "r.example", "cfg.json").expect_err("a helper");
        assert!(err.contains("docker-credential-ecr-login"), "{err}");
        let none = from_docker_config(r#"{"auths": {}}"#, "r.example", "cfg.json");
        assert_eq!(none, Ok(Credentials::Anonymous));
    }
}
