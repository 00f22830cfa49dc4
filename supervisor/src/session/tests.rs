//! The registry with a fake launcher, under paused time: the limits, eviction within a
//! principal, idle and age expiry, and what an ended handle tells its owner and everyone else —
//! each in milliseconds. The end-to-end suite proves the same with real workers.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::*;
use crate::worker::fake::{FakeSpawner, eventually, killed};

const SOON: Duration = Duration::from_secs(5);

fn limits() -> SessionLimits {
    SessionLimits {
        max_sessions: 3,
        max_sessions_per_principal: 2,
        max_in_flight: 4,
        idle_ttl: Duration::from_secs(30),
        max_age: Duration::from_secs(60),
        evict_idle_at_limit: false,
    }
}

fn registry(limits: SessionLimits, spawner: &FakeSpawner) -> Arc<Registry> {
    Registry::new(limits, "node".into(), spawner.launcher())
}

fn principal(name: &str) -> Principal {
    Principal::from(name)
}

#[tokio::test(start_paused = true)]
async fn sessions_are_limited_per_principal_and_in_total() {
    let spawner = FakeSpawner::default();
    let registry = registry(limits(), &spawner);
    let (alice, bob, carol) = (principal("alice"), principal("bob"), principal("carol"));
    let first = registry.open(&alice).await.unwrap();
    registry.open_default(&alice).await.unwrap();
    assert!(matches!(
        registry.open(&alice).await,
        Err(SessionError::PrincipalLimit { open: 2, limit: 2 })
    ));
    registry.open(&bob).await.unwrap();
    assert!(matches!(
        registry.open(&carol).await,
        Err(SessionError::Limit { open: 3, limit: 3 })
    ));
    registry.close(&first.handle, &alice).await.unwrap();
    registry.open(&carol).await.unwrap();
    assert_eq!(registry.live_count(), 3);
    assert_eq!(
        spawner.alive().len(),
        3,
        "the closed session's worker is gone"
    );
}

#[tokio::test(start_paused = true)]
async fn at_the_limit_the_openers_own_least_recently_used_idle_session_is_evicted() {
    let spawner = FakeSpawner::default();
    let mut limits = limits();
    limits.evict_idle_at_limit = true;
    limits.max_sessions = 10;
    let registry = registry(limits, &spawner);
    let (alice, bob) = (principal("alice"), principal("bob"));
    let older = registry.open(&alice).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let newer = registry.open(&alice).await.unwrap();
    let bobs = registry.open(&bob).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    older.touch();

    let third = registry.open(&alice).await.unwrap();
    assert!(matches!(
        registry.get(&newer.handle, &alice),
        Err(SessionError::Evicted { .. })
    ));
    assert!(
        spawner.kernel(newer.worker.pid()).has_exited(),
        "reaped before the new one starts"
    );
    assert!(registry.get(&older.handle, &alice).is_ok());
    assert!(
        registry.get(&bobs.handle, &bob).is_ok(),
        "never another principal's"
    );

    // With a call in flight in each of its sessions, the principal is refused, however idle
    // another principal's sessions are.
    let _busy = [
        older.in_flight.clone().try_acquire_owned().unwrap(),
        third.in_flight.clone().try_acquire_owned().unwrap(),
    ];
    assert!(matches!(
        registry.open(&alice).await,
        Err(SessionError::PrincipalLimit { .. })
    ));
    assert!(registry.get(&bobs.handle, &bob).is_ok());
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_expire_after_their_ttl_and_busy_ones_at_their_maximum_age() {
    let spawner = FakeSpawner::default();
    let registry = registry(limits(), &spawner);
    let alice = principal("alice");
    let idle = registry.open(&alice).await.unwrap();
    let busy = registry.open(&alice).await.unwrap();
    let _call = busy.in_flight.clone().try_acquire_owned().unwrap();

    tokio::time::sleep(limits().idle_ttl + Duration::from_secs(1)).await;
    registry.expire();
    assert!(matches!(
        registry.get(&idle.handle, &alice),
        Err(SessionError::Expired {
            why: "was idle past its time-to-live",
            ..
        })
    ));
    eventually(SOON, || spawner.kernel(idle.worker.pid()).has_exited()).await;
    assert!(
        registry.get(&busy.handle, &alice).is_ok(),
        "a call in flight is activity"
    );

    tokio::time::sleep(limits().max_age - limits().idle_ttl).await;
    registry.expire();
    assert!(matches!(
        registry.get(&busy.handle, &alice),
        Err(SessionError::Expired {
            why: "reached its maximum age",
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn an_ended_handle_tells_its_owner_how_it_ended_and_anyone_else_nothing() {
    let spawner = FakeSpawner::default();
    let registry = registry(limits(), &spawner);
    let (alice, bob) = (principal("alice"), principal("bob"));
    let closed = registry.open(&alice).await.unwrap();
    registry.close(&closed.handle, &alice).await.unwrap();
    assert!(matches!(
        registry.get(&closed.handle, &alice),
        Err(SessionError::Closed { .. })
    ));

    let lost = registry.open(&alice).await.unwrap();
    spawner
        .kernel(lost.worker.pid())
        .exit(killed(Signal::SIGSEGV));
    eventually(SOON, || registry.live_count() == 0).await;
    let Err(SessionError::Lost { exit, .. }) = registry.get(&lost.handle, &alice) else {
        panic!("a crashed session is lost");
    };
    assert!(exit.is_crash());
    assert!(exit.status.contains("SIGSEGV"), "{}", exit.status);

    for handle in [
        &closed.handle,
        &lost.handle,
        "node.00000000000000000000000000000000",
    ] {
        assert!(matches!(
            registry.get(handle, &bob),
            Err(SessionError::NotFound)
        ));
    }
    assert!(matches!(
        registry.close(&lost.handle, &bob).await,
        Err(SessionError::NotFound)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_failed_start_frees_its_slot() {
    let spawner = FakeSpawner::default();
    let registry = registry(limits(), &spawner);
    let alice = principal("alice");
    spawner.fail_next(5);
    for _ in 0..5 {
        assert!(matches!(
            registry.open(&alice).await,
            Err(SessionError::Unavailable(_))
        ));
    }
    registry.open(&alice).await.unwrap();
    registry.open(&alice).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_every_worker_and_opens_nothing_more() {
    let spawner = FakeSpawner::default();
    let registry = registry(limits(), &spawner);
    let alice = principal("alice");
    let session = registry.open(&alice).await.unwrap();
    registry.open(&principal("bob")).await.unwrap();
    registry.shutdown().await;
    assert!(spawner.alive().is_empty());
    assert!(spawner.kernels().iter().all(|kernel| kernel.cleaned()));
    assert!(matches!(
        registry.get(&session.handle, &alice),
        Err(SessionError::Closed { .. })
    ));
    assert!(matches!(
        registry.open(&alice).await,
        Err(SessionError::ShuttingDown)
    ));
}
