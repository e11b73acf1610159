//! Gate's own answer to `hello` / `isMaster`: a standalone server whose
//! `maxWireVersion` is no higher than Gate's and the upstream's, offering
//! SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN, the compressors of the client's
//! list that Gate reads (it answers uncompressed), and a `topologyVersion`
//! that never changes, so drivers' monitors wait on awaitable `hello`s
//! (`monitor.rs`) instead of polling.

use std::sync::OnceLock;
use std::time::Duration;

use bson::oid::ObjectId;
use bson::{Bson, DateTime, Document, doc};

use super::codec::{MAX_BSON, MAX_MESSAGE};
use super::compression;

/// The newest wire version Gate speaks (MongoDB 8.0): OP_MSG and its flags;
/// no newer message format exists.
pub const GATE_MAX_WIRE: i32 = 25;
/// The mechanisms Gate offers to every user name (it never says whether a user exists).
pub const MECHANISMS: [&str; 3] = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"];
/// The longest Gate holds an awaitable `hello` (drivers ask for their
/// heartbeat frequency, 10 s by default).
pub const MAX_AWAIT: Duration = Duration::from_secs(60);

/// This process's `topologyVersion`: a process id and a counter that stays
/// 0, since a standalone Gate's topology never changes.
pub fn topology_version() -> Document {
    static PROCESS: OnceLock<ObjectId> = OnceLock::new();
    doc! {"processId": *PROCESS.get_or_init(ObjectId::new), "counter": 0i64}
}

/// How an awaitable `hello` is to be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Await {
    /// At once: not awaitable, or the client's topology is not Gate's current one.
    Now,
    /// After this long (nothing changes meanwhile), then again each period when streaming.
    After(Duration),
}

/// Whether `request` is an awaitable `hello` (`topologyVersion` and
/// `maxAwaitTimeMS`) on Gate's current topology, and for how long to hold
/// it; a bad `maxAwaitTimeMS` is an error for the client.
pub fn await_time(request: &Document) -> Result<Await, String> {
    let Some(wait) = request.get("maxAwaitTimeMS") else {
        return Ok(Await::Now);
    };
    let millis = match wait {
        Bson::Int32(n) => i64::from(*n),
        Bson::Int64(n) => *n,
        Bson::Double(n) if n.fract() == 0.0 && n.is_finite() => *n as i64,
        _ => return Err("maxAwaitTimeMS must be an integer".into()),
    };
    let millis = u64::try_from(millis).map_err(|_| "maxAwaitTimeMS must not be negative")?;
    let current = topology_version();
    match request.get_document("topologyVersion") {
        Ok(theirs)
            if theirs.get("processId") == current.get("processId")
                && theirs.get("counter").and_then(as_i64) == Some(0) =>
        {
            Ok(Await::After(Duration::from_millis(millis).min(MAX_AWAIT)))
        }
        _ => Ok(Await::Now),
    }
}

fn as_i64(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        _ => None,
    }
}

/// Whether `name` is a handshake command (answered by Gate itself).
pub fn is_hello(name: &str) -> bool {
    matches!(name, "hello" | "isMaster" | "ismaster")
}

/// The reply to the handshake `request` (`name` is its command name).
/// `upstream_wire` is the upstream's `maxWireVersion` when known;
/// `speculative` is the answer to its `speculativeAuthenticate`, if any.
pub fn reply(
    request: &Document,
    name: &str,
    upstream_wire: Option<i32>,
    connection_id: i64,
    speculative: Option<Document>,
) -> Document {
    let max_wire = upstream_wire.map_or(GATE_MAX_WIRE, |w| w.min(GATE_MAX_WIRE));
    let mut reply = Document::new();
    if request.get_bool("helloOk").unwrap_or(false) || name == "hello" {
        reply.insert("helloOk", true);
    }
    if name == "hello" {
        reply.insert("isWritablePrimary", true);
    } else {
        reply.insert("ismaster", true);
    }
    reply.extend(doc! {
        "maxBsonObjectSize": MAX_BSON as i32,
        "maxMessageSizeBytes": MAX_MESSAGE as i32,
        "maxWriteBatchSize": 100_000,
        "localTime": DateTime::now(),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": connection_id,
        "minWireVersion": 0,
        "maxWireVersion": max_wire,
        "readOnly": false,
        "topologyVersion": topology_version(),
    });
    let compressors = compression::negotiate(request.get("compression"));
    if !compressors.is_empty() {
        reply.insert("compression", compressors);
    }
    if request.contains_key("saslSupportedMechs") {
        let mechs: Vec<Bson> = MECHANISMS.iter().map(|m| Bson::from(*m)).collect();
        reply.insert("saslSupportedMechs", mechs);
    }
    if let Some(speculative) = speculative {
        reply.insert("speculativeAuthenticate", speculative);
    }
    reply.insert("ok", 1.0);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_capped_with_the_clients_compressors() {
        let request = doc! {"hello": 1, "compression": ["lz4", "zlib", "snappy", "zlib"], "saslSupportedMechs": "admin.app", "$db": "admin"};
        let r = reply(&request, "hello", Some(30), 7, None);
        assert_eq!(r.get_i32("maxWireVersion").unwrap(), GATE_MAX_WIRE);
        assert!(r.get_bool("isWritablePrimary").unwrap());
        let agreed: Vec<&str> = r
            .get_array("compression")
            .unwrap()
            .iter()
            .filter_map(Bson::as_str)
            .collect();
        assert_eq!(agreed, ["zlib", "snappy"]);
        assert!(!reply(&doc! {"hello": 1}, "hello", None, 7, None).contains_key("compression"));
        assert!(!r.contains_key("setName") && !r.contains_key("msg"));
        assert_eq!(r.get_array("saslSupportedMechs").unwrap().len(), 3);
        let legacy = reply(&doc! {"isMaster": 1}, "isMaster", Some(17), 7, None);
        assert_eq!(legacy.get_i32("maxWireVersion").unwrap(), 17);
        assert!(legacy.get_bool("ismaster").unwrap());
        assert!(!legacy.contains_key("helloOk"));
    }

    #[test]
    fn only_a_hello_on_gates_topology_is_held() {
        let ours = reply(&doc! {"hello": 1}, "hello", None, 1, None);
        let tv = ours.get_document("topologyVersion").unwrap().clone();
        assert_eq!(tv, topology_version(), "stable for the process");
        let held = doc! {"hello": 1, "topologyVersion": tv.clone(), "maxAwaitTimeMS": 500i64};
        assert_eq!(
            await_time(&held),
            Ok(Await::After(Duration::from_millis(500)))
        );
        let long = doc! {"hello": 1, "topologyVersion": tv.clone(), "maxAwaitTimeMS": 86_400_000};
        assert_eq!(await_time(&long), Ok(Await::After(MAX_AWAIT)));
        let other = doc! {"hello": 1, "topologyVersion": {"processId": ObjectId::new(), "counter": 0i64}, "maxAwaitTimeMS": 500};
        assert_eq!(await_time(&other), Ok(Await::Now));
        let older = doc! {"hello": 1, "topologyVersion": {"processId": tv.get_object_id("processId").unwrap(), "counter": -1i64}, "maxAwaitTimeMS": 500};
        assert_eq!(await_time(&older), Ok(Await::Now));
        assert_eq!(await_time(&doc! {"hello": 1}), Ok(Await::Now));
        let negative = doc! {"hello": 1, "topologyVersion": tv, "maxAwaitTimeMS": -1};
        assert!(await_time(&negative).is_err());
    }
}
