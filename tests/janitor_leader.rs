//! Leader election among janitors: exactly one leads; when it dies (its process
//! killed, its connection cut, or it stops) another takes over within seconds.

mod common;
mod janitor_support;

use std::time::{Duration, Instant};

use caddy_build_server::janitor::leader::{self, ElectionTiming, Leadership};
use common::TestDb;
use janitor_support::{janitor_yaml, lock_holders, wait_for_single_leader, JanitorProcess};
use tokio_util::sync::CancellationToken;

const TIMING: ElectionTiming = ElectionTiming { retry: Duration::from_millis(200), check: Duration::from_millis(200) };

async fn leaders(all: &[(&str, Leadership)]) -> Vec<String> {
    all.iter().filter(|(_, l)| l.is_leader()).map(|(id, _)| id.to_string()).collect()
}

/// Waits until the in-process view agrees with Postgres: exactly one leader, the lock holder.
async fn settled(db: &tokio_postgres::Client, all: &[(&str, Leadership)], not: Option<&str>) -> String {
    let holder = wait_for_single_leader(db, not, Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let l = leaders(all).await;
        if l == vec![holder.clone()] {
            return holder;
        }
        assert!(Instant::now() < deadline, "in-process leaders {l:?} disagree with the lock holder {holder}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_janitors_one_leader_and_takeover_when_its_connection_dies() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let (a, ta) = leader::start(&db.config, "alpha", TIMING, stop_a.clone());
    let (b, tb) = leader::start(&db.config, "beta", TIMING, stop_b.clone());
    let all = [("alpha", a.clone()), ("beta", b.clone())];

    let first = settled(&client, &all, None).await;
    // It stays that way: the follower keeps trying and keeps failing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(leaders(&all).await, vec![first.clone()]);
    assert_eq!(lock_holders(&client).await, vec![first.clone()]);

    // The leader's session dies under it (as when its host vanishes).
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("cbs-janitor {first}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    let t0 = Instant::now();
    let second = settled(&client, &all, Some(&first)).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "takeover took {took:?}");
    eprintln!("takeover after the leader's connection was terminated: {took:?}");

    // A graceful stop hands over too, and releases the lock at once.
    let (stop_second, task_second) = if second == "alpha" { (stop_a.clone(), ta) } else { (stop_b.clone(), tb) };
    stop_second.cancel();
    task_second.await.unwrap();
    let third = wait_for_single_leader(&client, Some(&second), Duration::from_secs(3)).await;
    assert_eq!(third, first, "the janitor whose connection was cut reconnected and leads again");
    stop_a.cancel();
    stop_b.cancel();
}

#[tokio::test]
async fn killing_the_leader_process_hands_over_within_seconds() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let mut one = JanitorProcess::spawn(&janitor_yaml(&db.config, "one", ""), "jan-one");
    let mut two = JanitorProcess::spawn(&janitor_yaml(&db.config, "two", ""), "jan-two");

    let first = wait_for_single_leader(&client, None, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lock_holders(&client).await, vec![first.clone()], "still exactly one leader");

    let (leader, follower) = if first == "one" { (&mut one, &mut two) } else { (&mut two, &mut one) };
    leader.signal("KILL");
    let t0 = Instant::now();
    let _ = leader.child.wait().await;
    let second = wait_for_single_leader(&client, Some(&first), Duration::from_secs(5)).await;
    let took = t0.elapsed();
    eprintln!("takeover after SIGKILL of the leader process: {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(second, if first == "one" { "two" } else { "one" }, "the follower took over");

    // The follower's log tells the story; then it stops cleanly on SIGTERM.
    follower.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), follower.child.wait()).await.expect("stops").unwrap();
    assert!(status.success(), "janitor exit status {status:?}\n{}", follower.log_text());
    let log = follower.log_text();
    assert!(log.contains("became the janitor leader"), "{log}");
    assert!(log.contains("database schema is current"), "{log}");
    assert!(lock_holders(&client).await.is_empty());
}

#[tokio::test]
async fn a_frozen_leader_is_replaced_and_steps_down_when_it_wakes() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let mut one = JanitorProcess::spawn(&janitor_yaml(&db.config, "one", ""), "frz-one");
    let mut two = JanitorProcess::spawn(&janitor_yaml(&db.config, "two", ""), "frz-two");
    let first = wait_for_single_leader(&client, None, Duration::from_secs(20)).await;
    let leader = if first == "one" { &mut one } else { &mut two };

    // Frozen: its TCP connection stays up, it just stops doing anything.
    leader.signal("STOP");
    let t0 = Instant::now();
    let second = wait_for_single_leader(&client, Some(&first), Duration::from_secs(10)).await;
    let took = t0.elapsed();
    eprintln!("takeover after SIGSTOP of the leader process: {took:?}");
    assert!(took < Duration::from_secs(8), "took {took:?}");

    // It wakes up, notices it lost the lock, and follows.
    leader.signal("CONT");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !leader.log_text().contains("lost the janitor leadership") {
        assert!(Instant::now() < deadline, "the woken leader did not step down:\n{}", leader.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lock_holders(&client).await, vec![second]);
}
