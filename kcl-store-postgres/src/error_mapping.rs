//! PostgreSQL and sqlx failures as `kcl_core::Error`: a lost connection, a restarting or
//! overloaded server, a serialization failure are transient; the rest is not.

use kcl_core::Error;

/// True for SQLSTATEs that may succeed on retry.
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources (too many connections, disk full)
        || code.starts_with("57P") // admin shutdown (pg_terminate_backend), crash, cannot connect now
        || code == "40001" // serialization failure
        || code == "40P01" // deadlock detected
        || code == "55P03" // lock not available
}

/// Maps a sqlx error met while doing `what`.
pub(crate) fn from_sqlx(what: &str, e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if is_transient_sqlstate(&code) {
                Error::Unavailable {
                    message: format!("PostgreSQL unavailable while {what} (SQLSTATE {code}): {db}"),
                }
            } else {
                Error::Storage {
                    message: format!("PostgreSQL failed while {what} (SQLSTATE {code}): {db}"),
                }
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => Error::Unavailable {
            message: format!("PostgreSQL unavailable while {what}: {e}"),
        },
        sqlx::Error::Configuration(_) => Error::invalid("database URL", format!("{what}: {e}")),
        _ => Error::Storage {
            message: format!("PostgreSQL failed while {what}: {e}"),
        },
    }
}

/// Maps a failure to open a connection to `target` (host, port, database): a refusal by the
/// server as [`from_sqlx`] says, anything else as the server being out of reach.
pub(crate) fn connect_error(target: &str, e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(_) => from_sqlx(&format!("connecting to {target}"), e),
        other => Error::Unavailable {
            message: format!("cannot reach PostgreSQL at {target}: {other}"),
        },
    }
}

/// `url` with its password, if any, replaced by `***`, for error messages.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_only_the_password() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn termination_and_lost_connections_are_transient() {
        for code in ["57P01", "57P03", "08006", "53300", "40001"] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "42P01", "42501"] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }
}
