//! Writes through `Db::begin_write` and `Db::writer` on a real database
//! (SQLite, or PostgreSQL with `TEST_DATABASE_URL`): concurrent writers all
//! land, and on SQLite the process's writers take turns — a writer waits for
//! the transaction in progress and goes when it ends, and one that waits
//! too long gets a pool timeout (a 503), not a hang.

use std::time::Duration;

use common::db::{Backend, Db, TestDb};
use sqlx::migrate::Migrator;
use sqlx::Row;

async fn counter_db() -> (TestDb, Db) {
    let test_db = TestDb::new().await;
    let db = Db::connect(&test_db.url, 10, Migrator::DEFAULT)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO counter (id, n) VALUES (1, 0)")
        .execute(&db.pool)
        .await
        .unwrap();
    (test_db, db)
}

async fn count(db: &Db) -> i64 {
    sqlx::query("SELECT n FROM counter WHERE id = 1")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get::<i64, _>("n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_all_land() {
    let (_guard, db) = counter_db().await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                sqlx::query("UPDATE counter SET n = n + 1 WHERE id = 1")
                    .execute(&mut *db.writer().await?)
                    .await?;
            } else {
                let mut tx = db.begin_write().await?;
                sqlx::query("UPDATE counter SET n = n + 1 WHERE id = 1")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("every write lands");
    }
    assert_eq!(count(&db).await, 100);
}

#[tokio::test]
async fn on_sqlite_a_writer_waits_for_the_transaction_in_progress() {
    let (_guard, db) = counter_db().await;
    if db.backend != Backend::Sqlite {
        return; // PostgreSQL locks rows, not the database: nothing to wait for.
    }
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query("UPDATE counter SET n = 10 WHERE id = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    let waiting = {
        let db = db.clone();
        tokio::spawn(async move {
            sqlx::query("UPDATE counter SET n = n + 1 WHERE id = 1")
                .execute(&mut *db.writer().await?)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the writer waits for its turn while the transaction is open"
    );
    tx.commit().await.unwrap();
    waiting
        .await
        .unwrap()
        .expect("it writes once the turn is free");
    assert_eq!(count(&db).await, 11, "after the transaction, not before");
}

#[tokio::test]
async fn on_sqlite_a_writer_that_waits_too_long_gets_a_pool_timeout() {
    let (_guard, db) = counter_db().await;
    if db.backend != Backend::Sqlite {
        return;
    }
    let held = db.begin_write().await.unwrap();
    let started = std::time::Instant::now();
    let result = db.writer().await;
    assert!(
        matches!(result, Err(sqlx::Error::PoolTimedOut)),
        "a pool timeout, which the services answer with 503"
    );
    assert!(started.elapsed() >= Duration::from_secs(4));
    drop(held);
    sqlx::query("UPDATE counter SET n = 5 WHERE id = 1")
        .execute(&mut *db.writer().await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        count(&db).await,
        5,
        "the turn is free again once the holder is gone"
    );
}
