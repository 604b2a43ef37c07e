//! Throwaway databases on the PostgreSQL and MariaDB/MySQL servers `scripts/test` makes sure run.
//!
//! Each [`TestDatabase`] is created fresh (`sessionkit_test_<pid>_<n>`) and dropped when dropped; databases left by
//! killed test processes are dropped by the next run. Servers: `SESSIONKIT_TEST_POSTGRES_URL` (default
//! `postgres://root@127.0.0.1:5432`) and `SESSIONKIT_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{AnyConnection, Connection};
use tokio::sync::OnceCell;

/// Which database server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// PostgreSQL.
    Postgres,
    /// MariaDB or MySQL.
    MySql,
}

impl Engine {
    /// The server URL without a database.
    pub fn server_url(self) -> String {
        match self {
            Engine::Postgres => std::env::var("SESSIONKIT_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432".to_owned()),
            Engine::MySql => {
                std::env::var("SESSIONKIT_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
            }
        }
    }

    /// A connection for creating and dropping databases.
    ///
    /// # Panics
    /// When the server cannot be reached (with the reason and what to do).
    pub async fn admin(self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        let url = match self {
            Engine::Postgres => format!("{}/postgres", self.server_url()),
            Engine::MySql => self.server_url(),
        };
        AnyConnection::connect(&url).await.unwrap_or_else(|err| {
            panic!("{self:?} is not reachable at {url} ({err}): scripts/test installs and starts it")
        })
    }

    fn quote(self, name: &str) -> String {
        match self {
            Engine::Postgres => format!("\"{name}\""),
            Engine::MySql => format!("`{name}`"),
        }
    }

    fn drop_sql(self, name: &str) -> String {
        match self {
            Engine::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.quote(name)),
            Engine::MySql => format!("DROP DATABASE IF EXISTS {}", self.quote(name)),
        }
    }

    /// Drops databases left behind by test processes that no longer run (killed before their cleanup); once per
    /// test binary and engine.
    async fn drop_stale_databases(self) {
        static POSTGRES: OnceCell<()> = OnceCell::const_new();
        static MYSQL: OnceCell<()> = OnceCell::const_new();
        let once = match self {
            Engine::Postgres => &POSTGRES,
            Engine::MySql => &MYSQL,
        };
        once.get_or_init(|| async {
            let list = match self {
                Engine::Postgres => r"SELECT datname::text FROM pg_database WHERE datname LIKE 'sessionkit\_test\_%'",
                Engine::MySql => {
                    r"SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'sessionkit\_test\_%'"
                }
            };
            let mut conn = self.admin().await;
            let names: Vec<(String,)> = sqlx::query_as(list).fetch_all(&mut conn).await.unwrap();
            for (name,) in names {
                let pid = name.trim_start_matches("sessionkit_test_").split('_').next().unwrap_or("");
                if !pid.is_empty() && !std::path::Path::new("/proc").join(pid).exists() {
                    let _ = sqlx::raw_sql(&self.drop_sql(&name)).execute(&mut conn).await;
                }
            }
        })
        .await;
    }
}

/// A database of its own for one test, dropped when the value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// The database's name.
    pub name: String,
    engine: Engine,
}

impl TestDatabase {
    /// Creates a fresh database on `engine`'s server.
    ///
    /// # Panics
    /// When the server cannot be reached or refuses to create it.
    pub async fn create(engine: Engine) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        engine.drop_stale_databases().await;
        let name = format!("sessionkit_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut conn = engine.admin().await;
        let mut tries = 0;
        // Concurrent CREATE DATABASE may briefly find PostgreSQL's template1 in use: retry.
        while let Err(err) = sqlx::raw_sql(&format!("CREATE DATABASE {}", engine.quote(&name))).execute(&mut conn).await
        {
            tries += 1;
            assert!(tries < 20, "CREATE DATABASE {name}: {err}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        TestDatabase { name, engine }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("{}/{}", self.engine.server_url(), self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (engine, name) = (self.engine, self.name.clone());
        // Drop runs inside the test's runtime: use a runtime of our own on another thread.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut conn = engine.admin().await;
                sqlx::raw_sql(&engine.drop_sql(&name)).execute(&mut conn).await
            })
        })
        .join();
        if !matches!(done, Ok(Ok(_))) {
            eprintln!("could not drop test database {}: {done:?}", self.name);
        }
    }
}
