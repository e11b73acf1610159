//! MongoDB end to end: a real `nx-27017` upstream (MongoDB wire protocol on
//! SQLite), Gate in-process, and pymongo 4 as the client (both from the test
//! venv, `scripts/test-venv.sh`).
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::mongo::{MongoStack, allowing, command, python, read_message, start, through_gate};
use common::{audit_file_when, example_policy};
use gate_connector::protocols::mongodb::codec::{MAX_MESSAGE, Message, OpQuery, encode_query};

fn as_app(stack: &MongoStack, body: &str) -> String {
    through_gate(
        stack.port,
        "app",
        "app-pw",
        "&authMechanism=SCRAM-SHA-256",
        body,
    )
}

fn audit_when(stack: &MongoStack, done: impl Fn(&str) -> bool) -> String {
    audit_file_when(&stack.gate.audit, done)
}

#[test]
fn find_is_masked_across_get_more_batches() {
    let stack = start(&example_policy());
    // batch_size 2 over 5 documents: a firstBatch and two getMore nextBatches.
    let out = as_app(
        &stack,
        "docs = list(db.customers.find({}, batch_size=2).sort('_id', 1))\n\
         print(json.dumps(docs))",
    );
    let docs: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let docs = docs.as_array().unwrap();
    assert_eq!(docs.len(), 5, "{out}");
    for (i, doc) in docs.iter().enumerate() {
        let n = i + 1;
        assert_eq!(doc["_id"], n);
        assert_eq!(doc["name"], format!("user{n}"));
        // partial: the last 4 characters stay, every other one becomes `*`.
        assert_eq!(doc["email"], "*************.com", "{doc}");
        assert_eq!(doc["contact"]["email"], "***************.org", "{doc}");
        assert_eq!(doc["contact"]["phone"], "555");
        assert_eq!(doc["ssn"], "***");
    }
    // Admins see clear values; so does a direct client.
    let clear = through_gate(
        stack.port,
        "boss",
        "boss-pw",
        "",
        "print(db.customers.find_one({'_id': 1})['email'])",
    );
    assert_eq!(clear.trim(), "user1@example.com");
    // Every getMore is audited as its own command, with the documents masked.
    let audit = audit_when(&stack, |a| {
        a.lines().filter(|l| l.contains("getMore")).count() >= 2
    });
    assert!(
        audit.lines().any(|l| l.contains("\"protocol\":\"mongodb\"")
            && l.contains("getMore")
            && l.contains("\"rows\":2")),
        "{audit}"
    );
}

#[test]
fn a_blocked_command_is_code_13_and_the_connection_stays_usable() {
    let stack = start(&example_policy());
    let out = as_app(
        &stack,
        "try:\n    db.customers.drop()\n    print('dropped')\nexcept pymongo.errors.OperationFailure as e:\n    print(e.code, e.details['codeName'], e.details['errmsg'])\n\
         print(db.customers.count_documents({}))",
    );
    assert_eq!(
        out, "13 Unauthorized destructive queries are not allowed\n5\n",
        "{out}"
    );
    let audit = audit_when(&stack, |a| a.contains("\"action\":\"block\""));
    let blocked: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"action\":\"block\""))
        .collect();
    assert_eq!(blocked.len(), 1, "{audit}");
    assert!(
        blocked[0].contains("\"protocol\":\"mongodb\"") && blocked[0].contains("drop"),
        "{audit}"
    );
}

#[test]
fn logins_fail_alike_and_commands_need_one() {
    let stack = start(&example_policy());
    let attempt = "try:\n    client.admin.command('ping')\n    db.customers.find_one()\n    print('in')\nexcept pymongo.errors.OperationFailure as e:\n    print(e.code, e.details.get('codeName'), e.details.get('errmsg'))";
    let wrong = through_gate(
        stack.port,
        "app",
        "nope",
        "&authMechanism=SCRAM-SHA-256",
        attempt,
    );
    let unknown = through_gate(
        stack.port,
        "nobody",
        "nope",
        "&authMechanism=SCRAM-SHA-256",
        attempt,
    );
    assert_eq!(wrong, "18 AuthenticationFailed Authentication failed.\n");
    assert_eq!(unknown, wrong);
    // Mechanism negotiation (saslSupportedMechs) and speculative authentication.
    let negotiated = through_gate(
        stack.port,
        "app",
        "app-pw",
        "",
        "print(db.customers.count_documents({}))",
    );
    assert_eq!(negotiated.trim(), "5");
    // No credentials: the handshake works, commands are refused with code 13.
    let anonymous = python(
        &format!(
            "client = pymongo.MongoClient('mongodb://127.0.0.1:{}/?directConnection=true&serverSelectionTimeoutMS=5000')\n\
             db = client.shop\n\
             hello = client.admin.command('hello')\n\
             print(hello['isWritablePrimary'], hello['maxWireVersion'] <= 25, 'compression' in hello)\n{attempt}",
            stack.port
        ),
        &[],
    );
    assert_eq!(
        anonymous, "True True False\n13 Unauthorized command find requires authentication\n",
        "{anonymous}"
    );
}

#[test]
fn aggregations_that_move_masked_fields_are_refused_and_plain_ones_masked() {
    let stack = start(&example_policy());
    let out = as_app(
        &stack,
        "try:\n    list(db.customers.aggregate([{'$project': {'x': '$email'}}]))\n    print('leaked')\nexcept pymongo.errors.OperationFailure as e:\n    print(e.code, e.details['errmsg'])\n\
         docs = list(db.customers.aggregate([{'$match': {'_id': {'$lte': 2}}}, {'$sort': {'_id': 1}}]))\n\
         print([d['email'] for d in docs])\n\
         print(sorted(db.customers.distinct('email')))",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "13 aggregate stage $project can move or compute masked fields ($email); refused while masks apply",
        "{out}"
    );
    assert_eq!(
        lines[1], "['*************.com', '*************.com']",
        "{out}"
    );
    assert_eq!(
        lines[2],
        "['*************.com', '*************.com', '*************.com', '*************.com', '*************.com']",
        "{out}"
    );
}

#[test]
fn writes_reach_the_upstream() {
    let stack = start(&example_policy());
    let out = as_app(
        &stack,
        "db.orders.insert_one({'_id': 1, 'item': 'book'})\n\
         db.orders.insert_many([{'_id': 2, 'item': 'pen'}, {'_id': 3, 'item': 'ink'}])\n\
         db.orders.update_one({'_id': 2}, {'$set': {'item': 'pencil'}})\n\
         print(json.dumps(list(db.orders.find({}, {'_id': 0}).sort('_id', 1))))",
    );
    assert_eq!(
        out.trim(),
        r#"[{"item": "book"}, {"item": "pencil"}, {"item": "ink"}]"#
    );
    // What the upstream holds, asked directly.
    let direct = python(
        &format!(
            "db = pymongo.MongoClient('mongodb://127.0.0.1:{}/?directConnection=true').shop\n\
             print(db.orders.count_documents({{}}))",
            stack.nx.port()
        ),
        &[],
    );
    assert_eq!(direct.trim(), "3", "{}", stack.nx.log_tail());
}

#[test]
fn the_legacy_handshake_is_answered_and_oversized_messages_refused() {
    use std::io::{Read, Write};
    let stack = start(&example_policy());
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", stack.port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut out = bytes::BytesMut::new();
    let query = OpQuery {
        flags: 0,
        collection: "admin.$cmd".into(),
        skip: 0,
        limit: -1,
        query: bson::doc! {"isMaster": 1, "client": {"driver": {"name": "raw"}}},
    };
    encode_query(&mut out, 41, &query);
    stream.write_all(&out).unwrap();
    let (response_to, reply) = read_message(&mut stream);
    assert_eq!(response_to, 41);
    let Message::Reply(reply) = reply else {
        panic!("an OP_QUERY is answered with OP_REPLY, got {reply:?}");
    };
    let hello = &reply.documents[0];
    assert!(hello.get_bool("ismaster").unwrap());
    // nx-27017 reports maxWireVersion 25: the cap is Gate's and the upstream's.
    assert_eq!(hello.get_i32("maxWireVersion").unwrap(), 25);
    // A header announcing more than maxMessageSizeBytes: a clear error, then Gate closes.
    let mut huge = Vec::new();
    for field in [MAX_MESSAGE as i32 + 1, 42, 0, 2013] {
        huge.extend_from_slice(&field.to_le_bytes());
    }
    stream.write_all(&huge).unwrap();
    let (response_to, error) = read_message(&mut stream);
    assert_eq!(response_to, 42);
    let Message::Msg(error) = error else {
        panic!("expected an OP_MSG error, got {error:?}");
    };
    assert_eq!(error.body.get_i32("code").unwrap(), 2, "{}", error.body);
    assert!(
        error
            .body
            .get_str("errmsg")
            .unwrap()
            .contains("exceeds the maximum message size of 48000000 bytes"),
        "{}",
        error.body
    );
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0, "Gate closes");
}

#[test]
fn a_rewrite_replaces_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let policy = allowing(
        dir.path(),
        "pre_request := {\"action\": \"rewrite\", \"query\": json.marshal({\"find\": \"customers\", \"filter\": {\"_id\": 4}})} if {\n\
           input.query.operation == \"find\"\n  input.query.collection == \"customers\"\n}\n",
    );
    let stack = start(&common::all_stages(&policy));
    let out = as_app(
        &stack,
        "print([d['_id'] for d in db.customers.find({'_id': {'$lt': 3}})])",
    );
    assert_eq!(out.trim(), "[4]");
}

fn payload(reply: &bson::Document) -> String {
    String::from_utf8(reply.get_binary_generic("payload").unwrap().clone()).unwrap()
}

#[test]
fn speculative_scram_in_hello_completes_with_one_sasl_continue() {
    use gate_connector::auth::scram::ClientExchange;
    let stack = start(&example_policy());
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", stack.port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let binary = |text: &str| bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes: text.as_bytes().to_vec(),
    };
    let (mut scram, first) = ClientExchange::start_as("app", "fyko+d2lbbFgONRv9qkxdawL");
    let hello = command(
        &mut stream,
        1,
        bson::doc! {"hello": 1, "speculativeAuthenticate": {"saslStart": 1, "mechanism": "SCRAM-SHA-256",
        "payload": binary(&first), "options": {"skipEmptyExchange": true}, "db": "admin"}, "$db": "admin"},
    );
    let speculative = hello.get_document("speculativeAuthenticate").unwrap();
    assert!(!speculative.get_bool("done").unwrap());
    let last = scram.respond(&payload(speculative), "app-pw").unwrap();
    let done = command(
        &mut stream,
        2,
        bson::doc! {"saslContinue": 1, "conversationId": 1, "payload": binary(&last), "$db": "admin"},
    );
    assert!(done.get_bool("done").unwrap(), "{done}");
    scram.verify(&payload(&done)).unwrap();
    let count = command(
        &mut stream,
        3,
        bson::doc! {"count": "customers", "$db": "shop"},
    );
    assert_eq!(count.get_i32("n").unwrap_or_default(), 5, "{count}");
    // Logging in again on Gate's upstream connection is refused.
    let again = command(
        &mut stream,
        4,
        bson::doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": binary(&first), "$db": "admin"},
    );
    assert_eq!(again.get_i32("code").unwrap(), 13, "{again}");
}

/// With an allow-all policy Gate is invisible: the same script gives the
/// same results, types and errors through Gate as directly.
#[test]
fn with_an_allow_all_policy_gate_is_transparent() {
    let dir = tempfile::tempdir().unwrap();
    let policy = allowing(dir.path(), "");
    let stack = start(&common::all_stages(&policy));
    let script = "from bson import json_util\n\
        out = []\n\
        out.append(list(db.customers.find({'_id': {'$gte': 2}}, {'name': 1, 'contact': 1}, batch_size=2).sort('_id', -1)))\n\
        out.append(list(db.customers.aggregate([{'$match': {'_id': {'$lte': 4}}}, {'$sort': {'_id': 1}}, {'$project': {'e': '$email'}}])))\n\
        out.append(db.customers.count_documents({'_id': {'$gt': 1}}))\n\
        out.append(sorted(db.customers.distinct('contact.phone')))\n\
        out.append(sorted(c['name'] for c in db.list_collections()))\n\
        try:\n    db.command({'noSuchCommand': 1})\nexcept pymongo.errors.OperationFailure as e:\n    out.append(['error', e.code])\n\
        print(json_util.dumps(out))";
    let through = as_app(&stack, script);
    let direct = python(
        &format!(
            "client = pymongo.MongoClient('mongodb://127.0.0.1:{}/?directConnection=true')\ndb = client.shop\n{script}",
            stack.nx.port()
        ),
        &[],
    );
    assert_eq!(through, direct);
    assert!(through.contains("user1@example.com"), "{through}");
}
