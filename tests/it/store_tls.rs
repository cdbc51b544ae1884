//! Issue 10, item 6: the PostgreSQL pass runs over verified TLS. The test
//! server (scripts/postgres) takes TLS connections only, with a certificate
//! from a CA made by `migrex ca`, and the URLs ask for `sslmode=verify-full`.

use crate::common::*;
use migrex::clock::SystemClock;
use sqlx::Row;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_pass_runs_over_verified_tls() {
    let StoreChoice::Postgres { admin_url } = store_choice() else {
        eprintln!("SQLite pass: nothing to check here");
        return;
    };
    assert!(admin_url.contains("sslmode=verify-full"), "{admin_url}");
    let mut net = create(&[LUOHU], fast_delivery()).await;
    net.start_node(0, Arc::new(SystemClock)).await.unwrap();
    let db = migrex::config::Settings::load(&net.nodes[0].config_path)
        .unwrap()
        .database;
    // Every connection to the node's database, the node's own included, is TLS.
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let row = sqlx::query(
        "SELECT count(*) AS n, bool_and(s.ssl) AS all_tls FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.datname = current_database()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        row.get::<i64, _>("n") >= 2,
        "the node's connections and ours"
    );
    assert!(row.get::<bool, _>("all_tls"));
    pool.close().await;

    // Without TLS the server lets nobody in.
    let plain = db.replace("sslmode=verify-full", "sslmode=disable");
    assert!(
        sqlx::PgPool::connect(&plain).await.is_err(),
        "plain text refused"
    );
    // Verification is real: a server certificate from another CA is refused.
    let other = tempfile::tempdir().unwrap();
    migrex::identity::ensure_ca(other.path(), "stranger").unwrap();
    let stranger_ca = migrex::identity::ca_paths(other.path()).0;
    let (base, _) = db.split_once('?').unwrap();
    let wrong = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        stranger_ca.display()
    );
    assert!(
        sqlx::PgPool::connect(&wrong).await.is_err(),
        "unverified server refused"
    );
}
