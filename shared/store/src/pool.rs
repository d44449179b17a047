use crate::error::{StoreError, StoreResult};
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

/// The schema's migrations, in order (`migrate` runs them all; upgrade tests stop part way).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// `DATABASE_URL`: the local server's `sepay` database.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/sepay";
/// `DB_MAX_CONNECTIONS`
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 10;
/// `DB_ACQUIRE_TIMEOUT_MS`
pub const DEFAULT_DB_ACQUIRE_TIMEOUT_MS: u64 = 2000;

#[derive(Debug, Clone, clap::Args)]
pub struct DbConfig {
    /// Postgres URL; the database is created if missing.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Connections in the pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = DEFAULT_DB_MAX_CONNECTIONS)]
    pub db_max_connections: u32,
    /// How long a request waits for a connection before the service answers 503.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = DEFAULT_DB_ACQUIRE_TIMEOUT_MS)]
    pub db_acquire_timeout_ms: u64,
    /// Plan each prepared statement once per connection (`plan_cache_mode = force_generic_plan`)
    /// instead of for each execution's parameters: set by [`DbConfig::for_hot_path`].
    #[arg(skip)]
    pub generic_plans: bool,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.into(),
            db_max_connections: DEFAULT_DB_MAX_CONNECTIONS,
            db_acquire_timeout_ms: DEFAULT_DB_ACQUIRE_TIMEOUT_MS,
            generic_plans: false,
        }
    }
}

impl DbConfig {
    /// The URL without its password, for messages.
    pub fn redacted_url(&self) -> String {
        match PgConnectOptions::from_str(&self.database_url) {
            Ok(o) => format!(
                "postgres://{}@{}:{}/{}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            ),
            Err(_) => "<unparseable DATABASE_URL>".into(),
        }
    }

    /// The same server and credentials, another database (the bench's and fault suite's own,
    /// dropped afterwards); `None` when the URL names no database.
    pub fn sibling(&self, database: &str, max_connections: u32) -> Option<DbConfig> {
        let (server, _) = self.database_url.rsplit_once('/')?;
        Some(DbConfig {
            database_url: format!("{server}/{database}"),
            db_max_connections: max_connections,
            ..self.clone()
        })
    }

    /// For the ingress and the processor: a few statements, run thousands of times a second,
    /// whose batches' arrays give a custom plan nothing to use. Planning them once per connection
    /// instead of at every execution measured +25 % deliveries a second at the ingress
    /// (docs/performance.md). The admin pages keep per-execution plans: their optional filters
    /// (`$1 is null or …`) need the parameters to pick an index.
    pub fn for_hot_path(&self) -> Self {
        Self {
            generic_plans: true,
            ..self.clone()
        }
    }

    fn connect_options(&self) -> StoreResult<PgConnectOptions> {
        let options = PgConnectOptions::from_str(&self.database_url).map_err(StoreError::Db)?;
        Ok(if self.generic_plans {
            options.options([("plan_cache_mode", "force_generic_plan")])
        } else {
            options
        })
    }

    /// A pool that does not connect until first used (requests then get 503 while Postgres is down).
    pub fn lazy_pool(&self) -> StoreResult<PgPool> {
        Ok(self.pool_options().connect_lazy_with(self.connect_options()?))
    }

    fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.db_max_connections)
            .acquire_timeout(Duration::from_millis(self.db_acquire_timeout_ms))
    }
}

/// Creates the database if missing, connects and applies the migrations (idempotent; sqlx
/// serialises concurrent migrators with an advisory lock).
pub async fn connect(config: &DbConfig) -> StoreResult<PgPool> {
    let unreachable = |err: sqlx::Error| {
        StoreError::Unavailable(sqlx::Error::Configuration(
            format!(
                "cannot reach Postgres at {} ({err}); check that it runs there and that DATABASE_URL's role and password are right (`sepay-dev up` starts one of its own where none answers)",
                config.redacted_url()
            )
            .into(),
        ))
    };
    if !Postgres::database_exists(&config.database_url)
        .await
        .map_err(unreachable)?
    {
        Postgres::create_database(&config.database_url)
            .await
            .or_else(|err| match &err {
                // another service created it first
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42P04") => Ok(()),
                _ => Err(err),
            })
            .map_err(unreachable)?;
    }
    let pool = config
        .pool_options()
        .connect_with(config.connect_options()?)
        .await
        .map_err(unreachable)?;
    migrate(&pool).await?;
    Ok(pool)
}

pub async fn migrate(pool: &PgPool) -> StoreResult<()> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Db(sqlx::Error::Migrate(Box::new(e))))
}

/// Drops a database (benchmarks clean up the one they made).
pub async fn drop_database(url: &str) -> StoreResult<()> {
    Postgres::drop_database(url).await.map_err(StoreError::Db)
}
