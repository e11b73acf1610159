//! Fuzz harnesses: each takes arbitrary bytes, must not panic, and checks a property of the code it
//! drives. `fuzz/` runs them under cargo-fuzz (`make fuzz`); `tests/fuzz_corpus.rs` replays the
//! committed seed corpus through them in `make test`.

use bytes::BytesMut;

use crate::detect::{self, Detection, MAX_DETECT_BYTES};

use crate::auth::scram::{ServerExchange, Verifier};
use crate::protocols::postgres::codec::{self, frontend};
use crate::protocols::postgres::rows;
use crate::protocols::postgres::statements::normalize;

/// Split `data` into frames the way a session does; every frame's length matches its header.
fn frames(data: &[u8], mut each: impl FnMut(&codec::Frame)) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec::decode_frame(&mut buf) {
        let declared = u32::from_be_bytes([frame.raw[1], frame.raw[2], frame.raw[3], frame.raw[4]]);
        assert_eq!(
            frame.raw.len(),
            declared as usize + 1,
            "frame length must match its header"
        );
        each(&frame);
    }
}

/// Client → Gate: a startup packet, then tagged messages (Query, Parse, Bind, Describe, Close).
pub fn pg_frontend(data: &[u8]) {
    pg_frontend_queries(data);
}

/// [`pg_frontend`], returning the text of every Query message decoded. When
/// `data` opens with a startup packet, the messages are framed from the byte
/// after it, as a session reads them; otherwise from byte 0.
pub fn pg_frontend_queries(data: &[u8]) -> Vec<String> {
    let mut rest = BytesMut::from(data);
    match codec::decode_startup(&mut rest) {
        Ok(Some(codec::Startup::Message { params })) => {
            // Parameters are what the packet spelled out: no empty names.
            assert!(params.iter().all(|(k, _)| !k.is_empty()), "{params:?}");
            let _ = codec::Startup::param(&params, "database");
        }
        Ok(Some(_)) => {}
        // Not a startup packet (or not a whole one): frame from byte 0.
        Ok(None) | Err(_) => rest = BytesMut::from(data),
    }
    let mut queries = Vec::new();
    frames(&rest, |frame| match frame.tag {
        frontend::QUERY => {
            let text = frame.body().strip_suffix(&[0]).unwrap_or(frame.body());
            if let Ok(sql) = std::str::from_utf8(text) {
                sql_normalize_text(sql);
                queries.push(sql.to_owned());
            }
        }
        frontend::PARSE => {
            if let Ok(parse) = codec::parse_parse(frame.body()) {
                sql_normalize_text(parse.query);
            }
        }
        frontend::BIND => {
            let _ = codec::parse_bind(frame.body());
        }
        frontend::DESCRIBE | frontend::CLOSE => {
            let _ = codec::parse_target(frame.body());
        }
        _ => {}
    });
    queries
}

/// The shared listener's protocol detection: total on any bytes, decided by
/// [`MAX_DETECT_BYTES`], and stable: once a prefix is detected as a
/// protocol, every longer input is detected as the same one.
pub fn detect(data: &[u8]) {
    let full = detect::detect(data);
    if data.len() >= MAX_DETECT_BYTES {
        assert_ne!(
            full,
            Detection::NeedMore,
            "undecided after {MAX_DETECT_BYTES} bytes"
        );
    }
    for end in 0..data.len().min(MAX_DETECT_BYTES + 1) {
        match detect::detect(&data[..end]) {
            Detection::Detected(early) => {
                assert_eq!(full, Detection::Detected(early), "prefix of {end} bytes");
            }
            // Unknown is final too.
            Detection::Unknown => assert_eq!(full, Detection::Unknown, "prefix of {end} bytes"),
            Detection::NeedMore => {}
        }
    }
}

/// Upstream → Gate: RowDescriptions round-trip through Gate's encoder, and the
/// light scan used for cached plans agrees with the full parse; errors parse
/// or fail cleanly.
pub fn pg_backend(data: &[u8]) {
    frames(data, |frame| match frame.tag {
        b'T' => {
            let parsed = rows::parse_row_description(frame.body());
            let scanned = rows::any_computed_column(frame.body());
            assert_eq!(
                scanned.as_ref().ok(),
                parsed
                    .as_ref()
                    .ok()
                    .map(|fields| fields.iter().any(|f| f.table_oid == 0))
                    .as_ref(),
                "the scan and the parse must accept the same messages and agree"
            );
            if let Ok(fields) = parsed {
                let mut out = BytesMut::new();
                rows::put_row_description(&mut out, &fields);
                let again = rows::parse_row_description(&out[5..])
                    .expect("Gate's own RowDescription parses");
                assert_eq!(again, fields, "RowDescription must round-trip");
            }
        }
        b'E' | b'N' => {
            let _ = codec::parse_error(frame.body());
        }
        _ => {}
    });
}

/// SCRAM server side: any client-first and client-final text is refused or answered, never a panic.
pub fn scram_server(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (first, last) = text.split_once('\n').unwrap_or((&text, ""));
    // PBKDF2 once, not per input.
    static VERIFIER: std::sync::OnceLock<Verifier> = std::sync::OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| Verifier::new("pencil", b"fuzz-salt".to_vec()));
    if let Ok((exchange, server_first)) = ServerExchange::start(first, verifier, "servernonce") {
        assert!(server_first.starts_with("r="));
        let _ = exchange.finish(last, verifier);
    }
}

/// The literal normalizer behind the statement cache.
pub fn sql_normalize(data: &[u8]) {
    if let Ok(sql) = std::str::from_utf8(data) {
        sql_normalize_text(sql);
    }
}

fn sql_normalize_text(sql: &str) {
    if let Some(key) = normalize(sql) {
        // A key is its own key: placeholders and everything kept are stable.
        assert_eq!(
            normalize(&key).as_deref(),
            Some(key.as_str()),
            "normalize must be idempotent for {sql:?}"
        );
        // Outside quoted identifiers, no string literal survives.
        let mut quoted = false;
        for c in key.chars() {
            match c {
                '"' => quoted = !quoted,
                '\'' => assert!(quoted, "a string literal survived in {key:?}"),
                _ => {}
            }
        }
    }
}

/// Upstream ErrorResponse/NoticeResponse bodies through the redaction of
/// server messages: fields parse, redaction keeps every field (same kinds, in
/// order), is idempotent, and what it writes parses back to what it redacted.
pub fn pg_redact(data: &[u8]) {
    use crate::protocols::postgres::redact;
    let Ok(fields) = codec::parse_fields(data) else {
        return;
    };
    let redacted = redact::redact(&fields);
    assert_eq!(
        redacted.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        fields.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        "redaction keeps every field"
    );
    assert_eq!(
        redact::redact(&redacted),
        redacted,
        "redaction is idempotent"
    );
    let mut out = BytesMut::new();
    codec::put_fields(&mut out, codec::backend::ERROR_RESPONSE, &redacted);
    if let Ok(Some(frame)) = codec::decode_frame(&mut out) {
        // A field with an interior NUL cannot be written back whole; others round-trip.
        if redacted.iter().all(|(k, v)| *k != 0 && !v.contains('\0')) {
            assert_eq!(codec::parse_fields(frame.body()).ok(), Some(redacted));
        }
    }
}

/// HTTP response enforcement: a JSON document (or, when `data` opens with
/// `0x01`, a server-sent event) transformed under an `email` redact mask and
/// an `org` filter. Whatever comes out has no unmasked `email` value.
pub fn http_enforce(data: &[u8]) {
    use crate::protocols::http::enforce::{Rules, Transformed, transform, transform_value};
    use crate::protocols::http::records::transform_event;
    use gate_policy::{Filter, FilterOp, FilterOperand, Mask, Strategy};
    let masks = [Mask {
        column: "email".into(),
        strategy: Strategy::Redact,
        table: None,
    }];
    let filters = [Filter {
        field: "org".into(),
        op: FilterOp::Neq,
        operand: FilterOperand::Value(serde_json::json!("blocked")),
        path: None,
    }];
    let rules = Rules {
        masks: &masks,
        filters: &filters,
        filter_path: None,
        key: None,
    };
    let out = match data.split_first() {
        Some((1, event)) => match transform_event(event, &|doc: &[u8]| transform(doc, &rules)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes)
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .map(str::to_owned)
                .collect::<Vec<_>>(),
            Err(_) => return,
        },
        _ => {
            let borrowed = transform(data, &rules);
            let reference = transform_value(data, &rules);
            // The borrowed document is enforced exactly like a serde_json::Value
            // (key order aside): same outcome, same JSON.
            match (&borrowed, &reference) {
                (Ok(Transformed::Keep(a, n)), Ok(Transformed::Keep(b, m))) => {
                    assert_eq!(n, m, "dropped counts differ");
                    let a: serde_json::Value = serde_json::from_slice(a).unwrap_or_default();
                    let b: serde_json::Value = serde_json::from_slice(b).unwrap_or_default();
                    assert_eq!(a, b, "borrowed and reference enforcement differ");
                }
                (Ok(Transformed::Drop), Ok(Transformed::Drop)) | (Err(_), Err(_)) => {}
                (a, b) => panic!("borrowed {a:?} but reference {b:?}"),
            }
            match borrowed {
                Ok(Transformed::Keep(bytes, _)) => {
                    vec![String::from_utf8_lossy(&bytes).into_owned()]
                }
                Ok(Transformed::Drop) | Err(_) => return,
            }
        }
    };
    for doc in out {
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&doc) {
            assert_no_email(&json);
        }
    }
}

fn assert_no_email(value: &serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                if key == "email" {
                    assert!(
                        v.is_null() || v == "***",
                        "an email value left unmasked: {v}"
                    );
                } else {
                    assert_no_email(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(assert_no_email),
        _ => {}
    }
}

/// What Gate makes of request parts it parses itself: the host (routing),
/// the query (policy input, audit text) and the headers sent upstream.
/// `data` is a request target, a newline, then `name: value` header lines.
pub fn http_request(data: &[u8]) {
    use crate::protocols::http::{request, route};
    let text = String::from_utf8_lossy(data);
    let (target, headers) = text.split_once('\n').unwrap_or((&text, ""));
    let host = route::host_of(target);
    assert_eq!(
        host,
        host.to_ascii_lowercase(),
        "hosts are compared in lower case"
    );
    let _ = route::host_matches("*.gate.local", &host);
    let query = request::parse_query(target);
    assert!(query.values().all(|values| !values.is_empty()));
    let mut map = http::HeaderMap::new();
    for line in headers.lines() {
        if let Some((name, value)) = line.split_once(':')
            && let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.trim().as_bytes()),
                http::HeaderValue::from_str(value.trim()),
            )
        {
            map.append(name, value);
        }
    }
    if let Ok(uri) = target.parse::<http::Uri>() {
        let audit = request::audit_text(&http::Method::GET, &uri);
        assert!(audit.starts_with("GET "));
        let view = request::policy_view(&http::Method::GET, &uri, &map, None, None);
        assert!(
            !view.headers.contains_key("authorization") && !view.headers.contains_key("cookie")
        );
    }
    request::strip_hop_by_hop(&mut map);
    assert!(
        !map.contains_key(http::header::CONNECTION)
            && !map.contains_key(http::header::TRANSFER_ENCODING)
    );
}
/// MySQL packets in both directions: framing (sequence ids, 16 MiB
/// continuations) re-encodes to the same payloads; handshakes, responses,
/// column definitions and rows decode or fail cleanly, and what Gate
/// encodes decodes back to what it encoded.
pub fn mysql_packets(data: &[u8]) {
    use crate::protocols::mysql::codec::{decode_packet, put_packet};
    use crate::protocols::mysql::handshake::{AuthSwitch, HandshakeResponse, HandshakeV10};
    use crate::protocols::mysql::packets::{Column, ErrPacket, OkPacket, column_traced};
    use crate::protocols::mysql::rows::{MaskPlan, mask_binary_row, mask_text_row};
    use gate_policy::Strategy;

    let mut buf = BytesMut::from(data);
    while let Ok(Some(packet)) = decode_packet(&mut buf) {
        let mut again = BytesMut::new();
        put_packet(&mut again, packet.seq, &packet.payload);
        let reframed = decode_packet(&mut again)
            .expect("Gate's own framing decodes")
            .expect("Gate's own framing is whole");
        assert_eq!(reframed.payload, packet.payload, "framing must round-trip");
        let payload = &packet.payload[..];
        if let Ok(hello) = HandshakeV10::decode(payload) {
            let mut out = BytesMut::new();
            hello.encode(&mut out);
            let back = HandshakeV10::decode(&out).expect("Gate's own greeting decodes");
            assert_eq!(back.connection_id, hello.connection_id);
        }
        if let Ok(response) = HandshakeResponse::decode(payload) {
            let mut out = BytesMut::new();
            response.encode(&mut out);
            let back = HandshakeResponse::decode(&out).expect("Gate's own response decodes");
            assert_eq!(back.user, response.user);
        }
        let _ = AuthSwitch::decode(payload);
        let _ = OkPacket::decode(payload);
        let _ = ErrPacket::decode(payload);
        let traced = column_traced(payload, &["customers".to_owned()]);
        if let Ok(column) = Column::decode(payload) {
            assert!(traced.is_ok(), "the scan accepts what the parse accepts");
            let mut out = BytesMut::new();
            column.encode(&mut out);
            assert_eq!(
                Column::decode(&out).ok(),
                Some(column.clone()),
                "column definitions round-trip"
            );
            let plan = MaskPlan::new(
                vec![Some(Strategy::Partial), None],
                &[column.clone(), column],
            );
            let mut masked = BytesMut::new();
            let _ = mask_text_row(payload, &plan, None, &mut masked);
            masked.clear();
            let _ = mask_binary_row(payload, &plan, None, &mut masked);
        }
    }
}

/// MongoDB messages in both directions: framing within the size limit,
/// OP_MSG / OP_QUERY / OP_REPLY / OP_COMPRESSED decode or fail cleanly, an
/// OP_MSG Gate re-encodes decodes back to the same message, and commands
/// are described, guarded and their replies masked without panics.
pub fn mongodb_messages(data: &[u8]) {
    use crate::protocols::mongodb::codec::{
        MAX_MESSAGE, Message, decode_frame, decode_message, decompress, encode_compressed,
        encode_msg, opcode, verify_checksum,
    };
    use crate::protocols::mongodb::{
        command, compression, guard, hello, masking, request::Request,
    };
    use bytes::BufMut;
    use gate_policy::{Mask, Strategy};

    let masks = [
        Mask {
            column: "email".into(),
            strategy: Strategy::Partial,
            table: None,
        },
        Mask {
            column: "card.number".into(),
            strategy: Strategy::Null,
            table: None,
        },
    ];
    let masks: Vec<&Mask> = masks.iter().collect();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decode_frame(&mut buf, MAX_MESSAGE) {
        assert_eq!(frame.raw.len(), frame.header.length as usize);
        let _ = verify_checksum(&frame);
        if let Ok(Message::Msg(msg)) = decode_message(&frame) {
            let mut out = BytesMut::new();
            encode_msg(&mut out, 1, 0, &msg);
            let again = decode_frame(&mut out, usize::MAX)
                .expect("Gate's own framing decodes")
                .expect("Gate's own framing is whole");
            let mut expected = msg.clone();
            expected.flags &= !1;
            assert_eq!(
                decode_message(&again).ok(),
                Some(Message::Msg(expected)),
                "OP_MSG must round-trip"
            );
            let mut reply = msg.body.clone();
            let _ = masking::mask_reply(
                command::name(&msg.body),
                &msg.body,
                &mut reply,
                &masks,
                None,
            );
            masking::redact_errors(&mut reply);
        }
        if frame.header.opcode == opcode::COMPRESSED
            && let Ok((original, body)) = decompress(frame.body())
        {
            // What decompresses re-compresses, with every compressor, to the same body.
            let mut inner = BytesMut::new();
            inner.put_bytes(0, 12);
            inner.put_i32_le(original);
            inner.put_slice(&body);
            for compressor in [0, 1, 2, 3] {
                let mut out = BytesMut::new();
                assert!(encode_compressed(&mut out, &inner, compressor));
                let again = decode_frame(&mut out, usize::MAX)
                    .expect("Gate's own framing decodes")
                    .expect("Gate's own framing is whole");
                assert_eq!(
                    decompress(again.body()),
                    Ok((original, body.clone())),
                    "compressor {compressor} must round-trip"
                );
            }
        }
        if let Ok(request) = Request::parse(frame) {
            let query = command::describe(&request.body, Some("app"));
            assert_eq!(query.operation.as_deref(), Some(request.name.as_str()));
            let _ = guard::guard(&request.name, &request.body, &masks);
            let _ = hello::await_time(&request.body);
            for agreed in compression::negotiate(request.body.get("compression")) {
                assert!(
                    compression::SUPPORTED
                        .iter()
                        .any(|s| agreed.as_str() == Some(*s))
                );
            }
        }
    }
}

/// Terminal output in arbitrary pieces (the first byte says how many of the following bytes are
/// piece lengths, the rest is the stream) through the asciicast writer and back through its
/// parser: the events parse, their times never go backwards, and their text is exactly
/// `String::from_utf8_lossy` of the whole stream, however it was split.
pub fn asciicast_roundtrip(data: &[u8]) {
    use crate::recording::asciicast::{self, Header, Kind, Utf8Carry};
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 8).min(rest.len());
    let (sizes, mut stream) = rest.split_at(count);
    let whole = String::from_utf8_lossy(stream).into_owned();
    let env = std::collections::BTreeMap::new();
    let header = Header {
        version: 2,
        width: 80,
        height: 24,
        timestamp: 0,
        env: &env,
        command: None,
        title: None,
    };
    let mut cast = header.line();
    let mut carry = Utf8Carry::default();
    let mut at = std::time::Duration::ZERO;
    let mut sizes = sizes.iter().cycle();
    while !stream.is_empty() {
        let size = sizes
            .next()
            .map_or(stream.len(), |s| usize::from(*s).max(1));
        let (piece, next) = stream.split_at(size.min(stream.len()));
        stream = next;
        let text = carry.decode(piece);
        at += std::time::Duration::from_micros(u64::from(piece.len() as u32 % 1000));
        asciicast::event_line(at, Kind::Output, &text, &mut cast);
    }
    asciicast::event_line(at, Kind::Output, &carry.finish(), &mut cast);
    let text = String::from_utf8(cast).expect("the writer writes UTF-8");
    let parsed = asciicast::parse(&text).expect("the writer's output parses");
    let output: String = parsed.events.iter().map(|(_, _, d)| d.as_str()).collect();
    assert_eq!(output, whole, "split text differs from the lossy whole");
}
