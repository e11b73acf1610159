//! What MongoDB drivers negotiate with Gate, with pymongo as the client and
//! `nx-27017` upstream: OP_COMPRESSED (snappy, zstd, zlib) from the driver,
//! SCRAM-SHA-1 and SASLprep'd SCRAM-SHA-256 passwords, and the awaitable
//! (streaming) `hello` of drivers' monitors.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::example_policy;
use common::mongo::{command, python, read_frame, send_command, start};
use gate_connector::protocols::mongodb::codec::{Message, decode_message, flags};

/// A pymongo client on Gate's port as `user` with `options` (Python keyword
/// arguments); the password comes from the environment's `GATE_PW`.
fn client(port: u16, user: &str, options: &str) -> String {
    format!(
        "client = pymongo.MongoClient(host='127.0.0.1', port={port}, directConnection=True, \
         serverSelectionTimeoutMS=5000, username={user:?}, password=__import__('os').environ['GATE_PW']{options})\n\
         db = client.shop\n"
    )
}

fn password(text: &str) -> [(&'static str, String); 1] {
    [("GATE_PW", text.to_owned())]
}

#[test]
fn pymongo_compresses_with_snappy_zstd_and_zlib_and_gate_reads_it() {
    let stack = start(&example_policy());
    for (compressor, context) in [
        ("snappy", "SnappyContext"),
        ("zstd", "ZstdContext"),
        ("zlib", "ZlibContext"),
    ] {
        // Count the messages pymongo really compressed (the handshake and login never are).
        // zlib's compress is an instance method, the others static.
        let bound = if compressor == "zlib" {
            "True"
        } else {
            "False"
        };
        let script = format!(
            "import pymongo.compression_support as cs\n\
             calls = []\n\
             original = cs.{context}.compress\n\
             def counted(self, data):\n    calls.append(1)\n    return original(self, data) if {bound} else original(data)\n\
             cs.{context}.compress = counted\n\
             {}\
             print(client.admin.command({{'hello': 1, 'compression': ['lz4', '{compressor}']}}).get('compression'))\n\
             db.notes.insert_one({{'_id': '{compressor}', 'text': 'x' * 2000}})\n\
             print(len(db.notes.find_one({{'_id': '{compressor}'}})['text']))\n\
             print(sorted(d['email'] for d in db.customers.find({{}}, batch_size=2)))\n\
             print(len(calls) >= 4)",
            client(stack.port, "app", &format!(", compressors='{compressor}'"))
        );
        let out = python(&script, &password("app-pw"));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("['{compressor}']"), "{out}");
        assert_eq!(lines[1], "2000", "{out}");
        // Masking still holds on commands that arrived compressed.
        let masked = "'*************.com'";
        assert_eq!(lines[2], format!("[{}]", [masked; 5].join(", ")), "{out}");
        assert_eq!(
            lines[3], "True",
            "{compressor}: commands were not compressed\n{out}"
        );
    }
}

#[test]
fn scram_sha1_and_saslprep_passwords_log_in() {
    let stack = start(&example_policy());
    let port = stack.port;
    let attempt = |user: &str, secret: &str, mechanism: &str| {
        python(
            &format!(
                "{}try:\n    print(db.customers.count_documents({{}}))\n\
                 except pymongo.errors.OperationFailure as e:\n    print(e.code)",
                client(port, user, &format!(", authMechanism='{mechanism}'"))
            ),
            &password(secret),
        )
        .trim()
        .to_owned()
    };
    // SCRAM-SHA-1 (older drivers) against MongoDB's password digest.
    assert_eq!(attempt("app", "app-pw", "SCRAM-SHA-1"), "5");
    assert_eq!(attempt("app", "wrong", "SCRAM-SHA-1"), "18");
    assert_eq!(attempt("nobody", "app-pw", "SCRAM-SHA-1"), "18");
    // "Ⅸ\u{AD}sécret" and "IXsécret" are one password after SASLprep (the
    // driver prepares what it is given; Gate prepared the configured one).
    assert_eq!(
        attempt("jörg", "\u{2168}\u{AD}sécret", "SCRAM-SHA-256"),
        "5"
    );
    assert_eq!(attempt("jörg", "IXsécret", "SCRAM-SHA-256"), "5");
    assert_eq!(attempt("jörg", "IXsecret", "SCRAM-SHA-256"), "18");
    // SCRAM-SHA-1 hashes the password unprepared, as mongod does.
    assert_eq!(attempt("jörg", "\u{2168}\u{AD}sécret", "SCRAM-SHA-1"), "5");
    assert_eq!(attempt("jörg", "IXsécret", "SCRAM-SHA-1"), "18");
    // The names in the audit are the identities'.
    let audit = common::audit_file_when(&stack.gate.audit, |a| a.contains("\"identity\":\"jörg\""));
    assert!(audit.contains("\"protocol\":\"mongodb\""), "{audit}");
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

#[test]
fn an_awaitable_hello_is_held_then_streamed_to_the_monitor() {
    let stack = start(&example_policy());
    let mut monitor = connect(stack.port);
    let hello = command(&mut monitor, 1, bson::doc! {"hello": 1, "$db": "admin"});
    let topology = hello.get_document("topologyVersion").unwrap().clone();
    // Another topology (a restarted Gate): answered at once.
    let started = Instant::now();
    let other = bson::doc! {"processId": bson::oid::ObjectId::new(), "counter": 0i64};
    let now = command(
        &mut monitor,
        2,
        bson::doc! {"hello": 1, "topologyVersion": other, "maxAwaitTimeMS": 5000, "$db": "admin"},
    );
    assert!(now.get_bool("isWritablePrimary").unwrap());
    assert!(started.elapsed() < Duration::from_secs(2));
    // A bad maxAwaitTimeMS is the client's error.
    let bad = command(
        &mut monitor,
        3,
        bson::doc! {"hello": 1, "topologyVersion": topology.clone(), "maxAwaitTimeMS": -1, "$db": "admin"},
    );
    assert_eq!(bad.get_i32("code").unwrap(), 2, "{bad}");
    // Gate's own topology without exhaust: one answer, after maxAwaitTimeMS.
    let started = Instant::now();
    let held = command(
        &mut monitor,
        4,
        bson::doc! {"hello": 1, "topologyVersion": topology.clone(), "maxAwaitTimeMS": 300, "$db": "admin"},
    );
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert_eq!(held.get_document("topologyVersion").unwrap(), &topology);
    // With exhaustAllowed: a reply every period, each with moreToCome and
    // addressed to the previous one, until the monitor closes.
    let started = Instant::now();
    send_command(
        &mut monitor,
        5,
        flags::EXHAUST_ALLOWED,
        bson::doc! {"hello": 1, "topologyVersion": topology.clone(), "maxAwaitTimeMS": 300, "$db": "admin"},
    );
    let mut previous = 5;
    for n in 1..=3u32 {
        let frame = read_frame(&mut monitor);
        assert_eq!(frame.header.response_to, previous);
        previous = frame.header.request_id;
        let Message::Msg(msg) = decode_message(&frame).unwrap() else {
            panic!("an OP_MSG");
        };
        assert_ne!(msg.flags & flags::MORE_TO_COME, 0, "{n}: moreToCome");
        assert_eq!(msg.body.get_document("topologyVersion").unwrap(), &topology);
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(290 * u64::from(n)),
            "{n}: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_millis(300 * u64::from(n) + 2000),
            "{n}: {elapsed:?}"
        );
    }
    drop(monitor);
    // Gate still serves new clients (the closed stream did not wedge it).
    let mut next = connect(stack.port);
    let ping = command(&mut next, 1, bson::doc! {"ping": 1, "$db": "admin"});
    assert_eq!(ping.get_f64("ok").unwrap(), 1.0);
}

#[test]
fn pymongo_monitors_stream_without_polling_or_hanging() {
    let stack = start(&example_policy());
    let script = format!(
        "import time\n\
         from pymongo import monitoring\n\
         class Beats(monitoring.ServerHeartbeatListener):\n\
         \x20   def __init__(self):\n        self.done = []\n\
         \x20   def started(self, event):\n        pass\n\
         \x20   def succeeded(self, event):\n        self.done.append(event.awaited)\n\
         \x20   def failed(self, event):\n        print('failed', event.reply)\n\
         beats = Beats()\n\
         {}\
         print(db.customers.count_documents({{}}))\n\
         time.sleep(3)\n\
         print(db.customers.count_documents({{}}))\n\
         awaited = sum(1 for a in beats.done if a)\n\
         print(awaited >= 3, len(beats.done) <= 15, len(beats.done))\n\
         started = time.monotonic()\n\
         client.close()\n\
         print(time.monotonic() - started < 3)",
        client(
            stack.port,
            "app",
            ", heartbeatFrequencyMS=500, event_listeners=[beats]"
        )
    );
    let out = python(&script, &password("app-pw"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "5", "{out}");
    assert_eq!(lines[1], "5", "{out}");
    // About one awaited heartbeat per 500 ms: streamed, not polled in a loop.
    assert!(lines[2].starts_with("True True"), "{out}");
    assert_eq!(lines[3], "True", "closing the client hung\n{out}");
}
