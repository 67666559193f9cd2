//! One line for each way a push ends short: the registry refused the
//! credentials, wanted some, denied the push, answered with an error, or
//! could not be reached. Pure: the client's error and what was attempted
//! in, the line out.

use oci_client::errors::{OciDistributionError, OciErrorCode};

use super::credentials::{Credentials, PASSWORD_VAR, USERNAME_VAR};

/// What a push was trying: where, and as whom.
pub struct Attempt<'a> {
    /// `host[:port]`.
    pub registry: &'a str,
    pub repository: &'a str,
    pub credentials: &'a Credentials,
}

/// The line that says why the push failed.
pub fn explain(err: &OciDistributionError, attempt: &Attempt) -> String {
    use OciDistributionError as E;
    match err {
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => credentials_refused(attempt),
        E::ServerError { code: 401, .. } => credentials_refused(attempt),
        E::ServerError { code: 403, .. } => denied(attempt),
        E::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.contains(&&OciErrorCode::Unauthorized) {
                credentials_refused(attempt)
            } else if codes.contains(&&OciErrorCode::Denied) {
                denied(attempt)
            } else {
                let said: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect();
                format!(
                    "the registry {} refused the push: {}",
                    attempt.registry,
                    said.join("; ")
                )
            }
        }
        E::ServerError { code, message, .. } => format!(
            "the registry {} answered {code} to the push: {message}",
            attempt.registry
        ),
        E::RequestError(e) if e.is_timeout() => {
            format!("the registry {} did not answer in time", attempt.registry)
        }
        E::RequestError(e) if e.is_connect() => format!(
            "cannot connect to the registry {}: {}",
            attempt.registry,
            innermost(e)
        ),
        other => format!("the push to {} failed: {other}", attempt.registry),
    }
}

/// The line for a registry that speaks plain HTTP to a client that
/// insisted on HTTPS.
pub fn plain_http(registry: &str) -> String {
    format!(
        "the registry {registry} speaks plain HTTP, not HTTPS: pass --insecure to push over plain HTTP"
    )
}

fn credentials_refused(attempt: &Attempt) -> String {
    match attempt.credentials {
        Credentials::Anonymous => format!(
            "the registry {} wants credentials to push to {}: set {USERNAME_VAR} and \
             {PASSWORD_VAR}, or log in (docker login, crane auth login)",
            attempt.registry, attempt.repository
        ),
        Credentials::Basic { username, from, .. } => format!(
            "the registry {} refused the credentials of user {username:?} from {from}",
            attempt.registry
        ),
    }
}

fn denied(attempt: &Attempt) -> String {
    format!(
        "the registry {} denied the push to {}: the credentials are valid but may not push there",
        attempt.registry, attempt.repository
    )
}

/// The deepest cause of an error ("Connection refused (os error 111)"),
/// which says more than reqwest's "error sending request for url …".
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn attempt(credentials: &Credentials) -> Attempt<'_> {
        Attempt {
            registry: "127.0.0.1:5000",
            repository: "platform/turnout",
            credentials,
        }
    }

    fn envelope(code: OciErrorCode) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: "m".into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "u".into(),
        }
    }

    #[test]
    fn refused_credentials_name_their_source() {
        let creds = Credentials::Basic {
            username: "ci".into(),
            password: "wrong".into(),
            from: "cfg.json (auths.127.0.0.1:5000)".into(),
        };
        let line = explain(&envelope(OciErrorCode::Unauthorized), &attempt(&creds));
        assert_eq!(
            line,
            "the registry 127.0.0.1:5000 refused the credentials of user \"ci\" from cfg.json (auths.127.0.0.1:5000)"
        );
        let unauthorized = OciDistributionError::UnauthorizedError { url: "u".into() };
        assert_eq!(explain(&unauthorized, &attempt(&creds)), line);
    }

    #[test]
    fn no_credentials_says_how_to_give_some() {
        let line = explain(
            &envelope(OciErrorCode::Unauthorized),
            &attempt(&Credentials::Anonymous),
        );
        assert!(line.contains("wants credentials"), "{line}");
        assert!(line.contains(USERNAME_VAR), "{line}");
    }

    #[test]
    fn other_refusals_quote_the_registry() {
        let line = explain(
            &envelope(OciErrorCode::ManifestInvalid),
            &attempt(&Credentials::Anonymous),
        );
        assert_eq!(
            line,
            "the registry 127.0.0.1:5000 refused the push: ManifestInvalid: m"
        );
        let denied = explain(
            &envelope(OciErrorCode::Denied),
            &attempt(&Credentials::Anonymous),
        );
        assert!(
            denied.contains("denied the push to platform/turnout"),
            "{denied}"
        );
    }
}
