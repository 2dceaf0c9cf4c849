//! What only PostgreSQL needs: instances write at once, so a transaction that reads rows in
//! order to write them back locks them as it reads.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use kehai_store::{Sealed, TokenUpdate};

use crate::contract::{T0, connection, member, space};

/// `kehai keys rotate` re-seals every connection in one transaction. A refresh written meanwhile
/// by something else (a serving instance) must wait for it: were it written between the
/// re-seal's read and its write, it would be lost, or left sealed under the old key and fail to
/// open after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_written_during_a_reseal_waits_for_it() {
    let Some(db) = crate::backends::postgres().await else { return };
    let store = Arc::clone(&db.store);
    let s = space(&*store, "office").await;
    let a = member(&*store, &s, "a@example.com", "A").await;
    let b = member(&*store, &s, "b@example.com", "B").await;
    let first = connection(a.id, "ms-user-a");
    let second = connection(b.id, "ms-user-b");
    store.save_connection(&first).await.unwrap();
    store.save_connection(&second).await.unwrap();

    let reading_done = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, reading_done, written) = (Arc::clone(&store), Arc::clone(&reading_done), Arc::clone(&written));
        let id = second.id;
        tokio::spawn(async move {
            while !reading_done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let update = TokenUpdate {
                access_token: Sealed("v1.refreshed-meanwhile".into()),
                access_expires_at: T0 + 7_200_000,
                access_refresh_at: T0 + 6_900_000,
                refresh_token: None,
                refresh_expires_at: None,
                updated_at: T0 + 1,
            };
            assert!(store.update_connection_tokens(id, &update, None).await.unwrap());
            written.store(true, Ordering::SeqCst);
        })
    };
    let written_during = Arc::new(AtomicBool::new(false));
    let rekey = {
        let (reading_done, written, written_during) =
            (Arc::clone(&reading_done), Arc::clone(&written), Arc::clone(&written_during));
        move |_: kehai_store::secrets::Place<'_>, sealed: &str| {
            if !reading_done.swap(true, Ordering::SeqCst) {
                // The rows are read: give the writer every chance to get in before the re-seal's
                // own writes.
                let until = Instant::now() + Duration::from_millis(500);
                while Instant::now() < until && !written.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                written_during.store(written.load(Ordering::SeqCst), Ordering::SeqCst);
            }
            Ok(format!("{sealed}+rekeyed"))
        }
    };
    store.reseal(&rekey, &|| Ok(())).await.unwrap();
    assert!(!written_during.load(Ordering::SeqCst), "the writer got in while the re-seal held the rows");
    writer.await.unwrap();
    let after = store.connection(second.id).await.unwrap().unwrap();
    assert_eq!(after.access_token.0, "v1.refreshed-meanwhile", "the refresh came after the re-seal, whole");
    assert_eq!(store.connection(first.id).await.unwrap().unwrap().access_token.0, "v1.sealed-access+rekeyed");
    db.drop_database().await;
}
