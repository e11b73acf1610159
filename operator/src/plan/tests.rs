//! Planner unit tests: ownership, deletion, drift and the conditions each outcome writes.
#![allow(clippy::unwrap_used)]

use super::*;

fn seen(origin: &str, owner: &str, current: &str) -> Option<Observed<String>> {
    Some(Observed {
        id: "cp-1".into(),
        origin: origin.into(),
        owner: owner.into(),
        current: current.into(),
    })
}

#[test]
fn creates_updates_and_leaves_in_sync() {
    assert_eq!(
        decide("u1", false, Ok("a".to_owned()), None),
        Decision::Create("a".to_owned())
    );
    assert_eq!(
        decide(
            "u1",
            false,
            Ok("a".to_owned()),
            seen("kubernetes", "u1", "a")
        ),
        Decision::InSync { id: "cp-1".into() }
    );
    // Drift made through the API is set back to the spec.
    assert_eq!(
        decide(
            "u1",
            false,
            Ok("a".to_owned()),
            seen("kubernetes", "u1", "changed")
        ),
        Decision::Update {
            id: "cp-1".into(),
            want: "a".to_owned()
        }
    );
}

#[test]
fn never_takes_over_objects_created_elsewhere() {
    let api = decide("u1", false, Ok("a".to_owned()), seen("api", "", "a"));
    assert!(
        matches!(&api, Decision::Refuse { message } if message.contains("api origin")),
        "{api:?}"
    );
    let other = decide(
        "u1",
        false,
        Ok("a".to_owned()),
        seen("kubernetes", "u2", "a"),
    );
    assert!(
        matches!(&other, Decision::Refuse { message } if message.contains("u2")),
        "{other:?}"
    );
    // Deleting a refused object never deletes the other owner's control-plane object.
    assert_eq!(
        decide("u1", true, Ok("a".to_owned()), seen("api", "", "a")),
        Decision::Release
    );
    assert_eq!(
        decide(
            "u1",
            true,
            Ok("a".to_owned()),
            seen("kubernetes", "u2", "a")
        ),
        Decision::Release
    );
}

#[test]
fn deletes_what_it_owns_and_reports_invalid_specs() {
    assert_eq!(
        decide(
            "u1",
            true,
            Ok("a".to_owned()),
            seen("kubernetes", "u1", "x")
        ),
        Decision::Delete { id: "cp-1".into() }
    );
    assert_eq!(
        decide::<String>("u1", true, Ok("a".to_owned()), None),
        Decision::Release
    );
    assert_eq!(
        decide::<String>("u1", false, Err("bad".into()), None),
        Decision::Invalid {
            message: "bad".into()
        }
    );
}

#[test]
fn status_conditions_follow_the_outcome() {
    let synced = status_after(
        &SyncStatus::default(),
        Some(3),
        &Outcome::Synced {
            id: "cp-1".into(),
            how: reason::CREATED,
        },
        "t1",
    );
    assert_eq!(synced.observed_generation, Some(3));
    assert_eq!(synced.control_plane_id.as_deref(), Some("cp-1"));
    assert_eq!(synced.last_sync_time.as_deref(), Some("t1"));
    for type_ in [condition::READY, condition::SYNCED, condition::OWNED] {
        let c = synced.condition(type_).unwrap();
        assert_eq!(
            (c.status.as_str(), c.last_transition_time.as_str()),
            ("True", "t1"),
            "{type_}"
        );
    }
    // Unchanged status keeps its transition time.
    let again = status_after(
        &synced,
        Some(4),
        &Outcome::Synced {
            id: "cp-1".into(),
            how: reason::RECONCILED,
        },
        "t2",
    );
    assert_eq!(
        again
            .condition(condition::READY)
            .unwrap()
            .last_transition_time,
        "t1"
    );
    assert_eq!(again.last_sync_time.as_deref(), Some("t2"));

    let refused = status_after(
        &again,
        Some(5),
        &Outcome::Refused {
            reason: reason::ORIGIN_MISMATCH,
            message: "m".into(),
        },
        "t3",
    );
    let owned = refused.condition(condition::OWNED).unwrap();
    assert_eq!(
        (
            owned.status.as_str(),
            owned.reason.as_str(),
            owned.last_transition_time.as_str()
        ),
        ("False", "OriginMismatch", "t3")
    );
    assert_eq!(refused.control_plane_id, None);

    // A control-plane failure keeps what was mirrored (Ready) and reports Synced=False.
    let failed = status_after(
        &again,
        Some(5),
        &Outcome::Failed {
            message: "down".into(),
        },
        "t4",
    );
    assert_eq!(failed.condition(condition::READY).unwrap().status, "True");
    let sync = failed.condition(condition::SYNCED).unwrap();
    assert_eq!(
        (sync.status.as_str(), sync.reason.as_str()),
        ("False", "ControlPlaneError")
    );
    assert_eq!(failed.control_plane_id.as_deref(), Some("cp-1"));
}
