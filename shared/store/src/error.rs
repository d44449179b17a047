use std::fmt;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(thiserror::Error)]
pub enum StoreError {
    /// Postgres cannot be reached (refused, timed out, pool closed): callers answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique constraint refused the write.
    #[error("already exists ({constraint})")]
    Conflict { constraint: String },
    /// A foreign key or check refused the write: the input named something that is not there.
    #[error("rejected by the database: {message}")]
    Rejected { message: String },
    /// A value Postgres cannot hold (a NUL character, a number or date out of its range): writing
    /// it again will fail again.
    #[error("a value the database cannot store: {message}")]
    Unstorable { message: String },
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                Self::Unavailable(err)
            }
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some("23505") => Self::Conflict {
                    constraint: db.constraint().unwrap_or("unique").to_owned(),
                },
                // foreign key, check, not-null, integrity (the ws_id trigger), invalid text (uuid)
                Some("23503" | "23514" | "23502" | "23000" | "22P02") => Self::Rejected {
                    message: db.message().to_owned(),
                },
                // data exceptions: the value itself cannot be stored
                Some(code) if code.starts_with("22") => Self::Unstorable {
                    message: db.message().to_owned(),
                },
                // admin shutdown, cannot connect now, too many connections
                Some(code) if code.starts_with("57P") || code == "53300" => Self::Unavailable(err),
                _ => Self::Db(err),
            },
            _ => Self::Db(err),
        }
    }
}

/// Prints the whole cause chain, so one log line says what happened.
impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
