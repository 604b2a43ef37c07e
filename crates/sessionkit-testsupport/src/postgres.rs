//! Throwaway PostgreSQL databases on the server `scripts/test` makes sure runs (`SESSIONKIT_TEST_POSTGRES_URL`,
//! default `postgres://root@127.0.0.1:5432`). Each [`TestDatabase`] is created fresh and dropped when dropped;
//! databases left by killed test processes are dropped by the next run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

pub fn server_url() -> String {
    std::env::var("SESSIONKIT_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432".to_owned())
}

pub async fn admin() -> PgConnection {
    let url = format!("{}/postgres", server_url());
    PgConnection::connect(&url).await.unwrap_or_else(|err| {
        panic!("PostgreSQL is not reachable at {url} ({err}): scripts/test installs and starts it")
    })
}

/// Drops databases left behind by test processes that no longer run (killed before their cleanup).
async fn drop_stale_databases() {
    static ONCE: OnceCell<()> = OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let mut conn = admin().await;
        let names: Vec<(String,)> =
            sqlx::query_as(r"SELECT datname FROM pg_database WHERE datname LIKE 'sessionkit\_test\_%'")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        for (name,) in names {
            let pid = name.trim_start_matches("sessionkit_test_").split('_').next().unwrap_or("");
            if !pid.is_empty() && !std::path::Path::new("/proc").join(pid).exists() {
                let _ =
                    sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#)).execute(&mut conn).await;
            }
        }
    })
    .await;
}

/// A database of its own for one test, dropped when the value is dropped.
pub struct TestDatabase {
    /// The database's name.
    pub name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        drop_stale_databases().await;
        let name = format!("sessionkit_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut conn = admin().await;
        let mut tries = 0;
        // Concurrent CREATE DATABASE may briefly find template1 in use: retry.
        while let Err(err) = sqlx::query(&format!(r#"CREATE DATABASE "{name}""#)).execute(&mut conn).await {
            tries += 1;
            assert!(tries < 20, "CREATE DATABASE {name}: {err}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        TestDatabase { name }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", server_url(), self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a runtime of our own on another thread.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut conn = admin().await;
                sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#)).execute(&mut conn).await
            })
        })
        .join();
        if !matches!(done, Ok(Ok(_))) {
            eprintln!("could not drop test database {}: {done:?}", self.name);
        }
    }
}
