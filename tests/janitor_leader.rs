//! Leader election among janitors: exactly one leads; when it dies (its process
//! killed, its connection cut, or it stops) another takes over within seconds.
//!
//! Takeover times are what these tests are about, so they keep bounds: each
//! several times the election's own timing (retries every 200–500 ms), still
//! far below what a takeover without it would take (TCP timeouts: minutes).

mod support;

use std::time::{Duration, Instant};

use caddy_build_server::janitor::leader::{self, ElectionTiming, Leadership};
use support::db::TestDb;
use support::janitor::{janitor_yaml, lock_holders, wait_for_single_leader, wait_for_tries, JanitorProcess};
use tokio_util::sync::CancellationToken;

const TIMING: ElectionTiming = ElectionTiming { retry: Duration::from_millis(200), check: Duration::from_millis(200) };

async fn leaders(all: &[(&str, Leadership)]) -> Vec<String> {
    all.iter().filter(|(_, l)| l.is_leader()).map(|(id, _)| id.to_string()).collect()
}

/// A takeover on a loaded machine: a few retries of 200 ms, with room to spare.
const TAKEOVER: Duration = Duration::from_secs(10);

/// Waits until the in-process view agrees with Postgres: exactly one leader, the lock holder.
async fn settled(db: &tokio_postgres::Client, all: &[(&str, Leadership)], not: Option<&str>) -> String {
    let holder = wait_for_single_leader(db, not, TAKEOVER).await;
    let what = format!("in-process leaders disagree with the lock holder {holder}");
    support::wait::until(&what, TAKEOVER, || async { leaders(all).await == vec![holder.clone()] }).await;
    holder
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
    let follower = if first == "alpha" { "beta" } else { "alpha" };
    wait_for_tries(&client, follower, 3, TAKEOVER).await;
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
    assert!(took < TAKEOVER, "takeover took {took:?}");
    eprintln!("takeover after the leader's connection was terminated: {took:?}");

    // A graceful stop hands over too, and releases the lock at once.
    let (stop_second, task_second) = if second == "alpha" { (stop_a.clone(), ta) } else { (stop_b.clone(), tb) };
    stop_second.cancel();
    task_second.await.unwrap();
    let third = wait_for_single_leader(&client, Some(&second), TAKEOVER).await;
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

    let first = wait_for_single_leader(&client, None, Duration::from_secs(60)).await;
    let other = if first == "one" { "two" } else { "one" };
    wait_for_tries(&client, other, 2, TAKEOVER).await;
    assert_eq!(lock_holders(&client).await, vec![first.clone()], "still exactly one leader");

    let (leader, follower) = if first == "one" { (&mut one, &mut two) } else { (&mut two, &mut one) };
    leader.signal("KILL");
    let t0 = Instant::now();
    let _ = leader.child.wait().await;
    let second = wait_for_single_leader(&client, Some(&first), TAKEOVER).await;
    let took = t0.elapsed();
    eprintln!("takeover after SIGKILL of the leader process: {took:?}");
    assert!(took < TAKEOVER, "took {took:?}");
    assert_eq!(second, if first == "one" { "two" } else { "one" }, "the follower took over");

    // The follower's log tells the story; then it stops cleanly on SIGTERM.
    follower.signal("TERM");
    let status = follower.exited(Duration::from_secs(60)).await;
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
    let first = wait_for_single_leader(&client, None, Duration::from_secs(60)).await;
    let leader = if first == "one" { &mut one } else { &mut two };

    // Frozen: its TCP connection stays up, it just stops doing anything.
    leader.signal("STOP");
    let t0 = Instant::now();
    // The frozen session is ended by the server's idle timeout (4 checks + 1 s).
    let frozen_limit = TAKEOVER + Duration::from_secs(5);
    let second = wait_for_single_leader(&client, Some(&first), frozen_limit).await;
    let took = t0.elapsed();
    eprintln!("takeover after SIGSTOP of the leader process: {took:?}");
    assert!(took < frozen_limit, "took {took:?}");

    // It wakes up, notices it lost the lock, and follows.
    leader.signal("CONT");
    leader.wait_for_log("lost the janitor leadership", TAKEOVER).await;
    // It tries again as a follower, and fails: the lock stays with the new leader.
    wait_for_tries(&client, &first, 2, TAKEOVER).await;
    assert_eq!(lock_holders(&client).await, vec![second]);
}
