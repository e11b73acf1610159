//! Gate's own answer to `hello` / `isMaster`: a standalone server whose
//! `maxWireVersion` is no higher than Gate's and the upstream's, offering
//! SCRAM-SHA-256 and PLAIN and no compression (Gate answers uncompressed).

use bson::{Bson, DateTime, Document, doc};

use super::codec::{MAX_BSON, MAX_MESSAGE};

/// The newest wire version Gate speaks (MongoDB 8.0): OP_MSG and its flags;
/// no newer message format exists.
pub const GATE_MAX_WIRE: i32 = 25;
/// The mechanisms Gate offers to every user name (it never says whether a user exists).
pub const MECHANISMS: [&str; 2] = ["SCRAM-SHA-256", "PLAIN"];

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
    });
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
    fn standalone_capped_no_compression() {
        let request = doc! {"hello": 1, "compression": ["zlib", "snappy"], "saslSupportedMechs": "admin.app", "$db": "admin"};
        let r = reply(&request, "hello", Some(30), 7, None);
        assert_eq!(r.get_i32("maxWireVersion").unwrap(), GATE_MAX_WIRE);
        assert!(r.get_bool("isWritablePrimary").unwrap());
        assert!(!r.contains_key("compression"));
        assert!(!r.contains_key("setName") && !r.contains_key("msg"));
        assert_eq!(r.get_array("saslSupportedMechs").unwrap().len(), 2);
        let legacy = reply(&doc! {"isMaster": 1}, "isMaster", Some(17), 7, None);
        assert_eq!(legacy.get_i32("maxWireVersion").unwrap(), 17);
        assert!(legacy.get_bool("ismaster").unwrap());
        assert!(!legacy.contains_key("helloOk"));
    }
}
