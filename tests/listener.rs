//! NOTIFY delivery and the listener's reconnect behaviour.

mod support;

use std::time::Duration;

use caddy_build_server::db::{Channel, Listener, ListenerEvent, WatchOn};
use support::db::{nth_spec, TestDb};
use tokio::sync::broadcast::Receiver;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

async fn next_notification(rx: &mut Receiver<ListenerEvent>, within: Duration) -> Option<ListenerEvent> {
    timeout(within, async {
        loop {
            match rx.recv().await {
                Ok(ev @ ListenerEvent::Notification { .. }) => return ev,
                Ok(ListenerEvent::Reconnected) => continue,
                Err(e) => panic!("listener stream broke: {e}"),
            }
        }
    })
    .await
    .ok()
}

async fn started(db: &TestDb) -> (Listener, CancellationToken) {
    let shutdown = CancellationToken::new();
    let listener = Listener::start(&db.config, shutdown.clone());
    timeout(Duration::from_secs(10), listener.wait_connected()).await.expect("listener connects");
    (listener, shutdown)
}

#[tokio::test]
async fn notification_arrives_on_commit_and_never_on_rollback() {
    let db = TestDb::new().await;
    let (listener, shutdown) = started(&db).await;
    let mut rx = listener.subscribe();
    let mut client = db.client().await;

    let tx = client.transaction().await.unwrap();
    let key: String = tx
        .query_one("SELECT build_key FROM cbs.submit_build($1)", &[&nth_spec(1)])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next_notification(&mut rx, Duration::from_millis(300)).await, None, "nothing before commit");
    tx.commit().await.unwrap();
    assert_eq!(
        next_notification(&mut rx, Duration::from_secs(5)).await,
        Some(ListenerEvent::Notification { channel: Channel::Queued, build_key: key })
    );

    let tx = client.transaction().await.unwrap();
    tx.query_one("SELECT build_key FROM cbs.submit_build($1)", &[&nth_spec(2)]).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(next_notification(&mut rx, Duration::from_millis(700)).await, None, "rolled back: no notification");
    shutdown.cancel();
}

#[tokio::test]
async fn build_watch_wakes_on_finish_and_cancel() {
    let db = TestDb::new().await;
    let (listener, shutdown) = started(&db).await;
    let b = db.queue.submit(&nth_spec(1), false).await.unwrap();
    let watch = listener.watch_build(&b.build_key, WatchOn::Status);
    let other = listener.watch_build(&"f".repeat(64), WatchOn::Status);
    let log = listener.watch_build(&b.build_key, WatchOn::Log);
    {
        // New log lines wake log watches only: status waiters need not re-read the build.
        let status_woken = watch.notified();
        let log_woken = log.notified();
        tokio::pin!(status_woken, log_woken);
        status_woken.as_mut().enable();
        log_woken.as_mut().enable();
        db.client().await.execute("SELECT pg_notify('cbs_build_log', $1)", &[&b.build_key]).await.unwrap();
        timeout(Duration::from_secs(5), log_woken).await.expect("log watch wakes on new lines");
        assert!(timeout(Duration::from_millis(200), status_woken).await.is_err(), "status watch sleeps through log lines");
    }
    drop(log);
    {
        let woken = watch.notified();
        let other_woken = other.notified();
        tokio::pin!(woken, other_woken);
        woken.as_mut().enable();
        other_woken.as_mut().enable();
        db.queue.cancel(&b.build_key, "x").await.unwrap();
        timeout(Duration::from_secs(5), woken).await.expect("watch of the cancelled build wakes");
        assert!(timeout(Duration::from_millis(200), other_woken).await.is_err(), "other builds' watches stay asleep");
    }
    assert_eq!(listener.watched_builds(), 2);
    drop(watch);
    assert_eq!(listener.watched_builds(), 1);
    shutdown.cancel();
}

#[tokio::test]
async fn terminated_backend_reconnects_and_tells_subscribers_to_recheck() {
    let db = TestDb::new().await;
    let (listener, shutdown) = started(&db).await;
    let mut rx = listener.subscribe();
    let watch = listener.watch_build(&"a".repeat(64), WatchOn::Status);
    let recheck = watch.notified();
    tokio::pin!(recheck);
    recheck.as_mut().enable();
    assert_eq!(listener.connections(), 1);

    let admin = db.client().await;
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'cbs-listener' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);

    let ev = timeout(Duration::from_secs(10), rx.recv()).await.expect("re-check signal").unwrap();
    assert_eq!(ev, ListenerEvent::Reconnected);
    timeout(Duration::from_secs(1), recheck).await.expect("watches are woken after a reconnect");
    assert_eq!(listener.connections(), 2);
    assert!(listener.is_connected());

    // And the new session still hears notifications.
    let b = db.queue.submit(&nth_spec(9), false).await.unwrap();
    assert_eq!(
        next_notification(&mut rx, Duration::from_secs(5)).await,
        Some(ListenerEvent::Notification { channel: Channel::Queued, build_key: b.build_key })
    );
    shutdown.cancel();
}
