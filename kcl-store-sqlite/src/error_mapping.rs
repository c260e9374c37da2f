//! SQLite, sqlx and lock-file failures as `kcl_core::Error`: busy and lost I/O are transient, the
//! rest is not.

use kcl_core::Error;

/// SQLite's primary result codes that mean "another connection holds the lock; try again".
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

/// Maps a sqlx error met while doing `what`.
pub(crate) fn from_sqlx(what: &str, e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) => {
            // sqlx reports SQLite's extended code; its low byte is the primary code.
            let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
            if matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED) {
                Error::Unavailable {
                    message: format!(
                        "SQLite is busy (another writer holds the lock) while {what}: {db}"
                    ),
                }
            } else {
                Error::Storage {
                    message: format!("SQLite failed while {what}: {db}"),
                }
            }
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => {
            Error::Unavailable {
                message: format!("SQLite unavailable while {what}: {e}"),
            }
        }
        sqlx::Error::Configuration(_) => Error::invalid("database URL", format!("{what}: {e}")),
        _ => Error::Storage {
            message: format!("SQLite failed while {what}: {e}"),
        },
    }
}

/// Maps a failure of the file system met while doing `what` (the liveness lock files).
pub(crate) fn from_io(what: &str, e: std::io::Error) -> Error {
    Error::Storage {
        message: format!("the file system failed while {what}: {e}"),
    }
}
