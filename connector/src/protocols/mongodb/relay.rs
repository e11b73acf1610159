//! One command of an established session: described and decided through
//! the session layer (`pre_request`: forward, rewrite, or refuse with code
//! 13), checked by the masking guard, forwarded as the bytes that arrived,
//! and its reply (every reply of an exhaust stream) relayed, masked under
//! `post_request` when its documents carry masked fields.

use std::sync::Arc;
use std::time::Instant;

use bson::{Bson, Document};
use bytes::BytesMut;
use gate_policy::Mask;
use tokio::io::AsyncWriteExt;

use super::codec::{self, Frame, Message, OpMsg, flags};
use super::command;
use super::error::{MongoError, code, error_doc, refusal};
use super::guard;
use super::masking;
use super::request::Request;
use super::upstream::Upstream;
use super::wire::{answer_to, read_frame, send_answer};
use crate::session::results::ResultOutcome;
use crate::session::{AuditText, Decision, Session};
use crate::stream::ClientStream;

/// One session's relay state.
pub(super) struct Relay<'s> {
    pub(super) session: &'s Session<'s>,
    /// The resource's `database`, for commands without `$db`.
    pub(super) default_db: Option<String>,
}

/// How a command is sent upstream.
enum Send {
    /// The bytes that arrived.
    Original,
    /// This body instead (a rewrite, or a message that arrived compressed).
    Body(Document),
}

impl Relay<'_> {
    /// Decide, forward and relay one command and its replies.
    pub(super) async fn command(
        &mut self,
        request: &Request,
        client: &mut ClientStream,
        upstream: &mut Upstream,
    ) -> Result<(), MongoError> {
        let started = Instant::now();
        let query = command::describe(&request.body, self.default_db.as_deref());
        let text: Arc<str> = query.raw.as_str().into();
        let decided = self.session.request(
            &query,
            AuditText::Text(text.clone()),
            "command refused by policy",
            None,
        );
        let audit = decided.audit;
        let send = match decided.decision {
            Decision::Block(reason) => Err(reason),
            Decision::Rewrite(json) => rewritten(&json, &request.body).map(Send::Body),
            Decision::Forward if request.reencode => Ok(Send::Body(request.body.clone())),
            Decision::Forward => Ok(Send::Original),
        };
        let verdict = self.session.expected_masks(&query);
        // A command reading other collections ($lookup, …) gets every mask.
        let reaches = guard::reaches_other_collections(&request.body)
            || matches!(&send, Ok(Send::Body(body)) if guard::reaches_other_collections(body));
        let collection = if reaches {
            None
        } else {
            query.collection.as_deref()
        };
        let masks = masking::for_collection(&verdict.masks, collection);
        let send = send.and_then(|send| {
            if verdict.is_blocked() {
                return Err(verdict
                    .reason
                    .clone()
                    .unwrap_or_else(|| "result refused by policy".into()));
            }
            let body = match &send {
                Send::Body(body) => body,
                Send::Original => &request.body,
            };
            match guard::guard(command::name(body), body, &masks) {
                Some(reason) => Err(reason),
                None => Ok(send),
            }
        });
        let send = match send {
            Ok(send) => send,
            Err(reason) => {
                if !request.more_to_come {
                    send_answer(client, &request.frame, refusal(reason)).await?;
                }
                self.session.complete(audit, started.elapsed());
                return Ok(());
            }
        };
        match &send {
            Send::Original => upstream.stream.write_all(&request.frame.raw).await?,
            Send::Body(body) => {
                let mut out = BytesMut::new();
                let msg = OpMsg {
                    flags: if request.exhaust {
                        flags::EXHAUST_ALLOWED
                    } else {
                        0
                    } | if request.more_to_come {
                        flags::MORE_TO_COME
                    } else {
                        0
                    },
                    body: body.clone(),
                    sequences: Vec::new(),
                };
                codec::encode_msg(&mut out, request.frame.header.request_id, 0, &msg);
                upstream.stream.write_all(&out).await?;
            }
        }
        if !request.more_to_come {
            let body = match &send {
                Send::Body(body) => body,
                Send::Original => &request.body,
            };
            let replies = Replies {
                session: self.session,
                operation: command::name(body),
                body,
                masks: &masks,
                audit,
                text: &text,
                verdict: &verdict,
            };
            replies.relay(client, upstream).await?;
        }
        self.session.complete(audit, started.elapsed());
        Ok(())
    }
}

/// A rewrite's command: the policy's JSON (extended JSON) as a document,
/// keeping the original's `$db` and session fields when it leaves them out.
fn rewritten(json: &str, original: &Document) -> Result<Document, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("the policy's rewrite is not JSON: {e}"))?;
    let mut doc = Document::try_from(
        value
            .as_object()
            .cloned()
            .ok_or("the policy's rewrite is not a JSON object")?,
    )
    .map_err(|e| format!("the policy's rewrite is not a MongoDB command: {e}"))?;
    for field in ["$db", "lsid", "txnNumber", "autocommit", "startTransaction"] {
        if !doc.contains_key(field)
            && let Some(value) = original.get(field)
        {
            doc.insert(field, value.clone());
        }
    }
    Ok(doc)
}

/// The replies to one forwarded command.
struct Replies<'r> {
    session: &'r Session<'r>,
    operation: &'r str,
    body: &'r Document,
    masks: &'r [&'r Mask],
    audit: crate::session::AuditId,
    text: &'r Arc<str>,
    verdict: &'r Arc<gate_policy::Verdict>,
}

impl Replies<'_> {
    /// Relay every reply (an exhaust stream ends with one without `moreToCome`).
    async fn relay(
        &self,
        client: &mut ClientStream,
        upstream: &mut Upstream,
    ) -> Result<(), MongoError> {
        let mut outcome = ResultOutcome::Pass;
        loop {
            let frame = read_frame(&mut upstream.stream, &mut upstream.buf)
                .await?
                .ok_or_else(|| MongoError::Io(std::io::ErrorKind::UnexpectedEof.into()))?;
            let more = reply_flags(&frame) & flags::MORE_TO_COME != 0;
            if self.masks.is_empty() {
                client.write_all(&frame.raw).await?;
            } else {
                match self.masked(&frame) {
                    Ok(Some(out)) => {
                        outcome = ResultOutcome::Mask;
                        client.write_all(&out).await?;
                    }
                    Ok(None) => client.write_all(&frame.raw).await?,
                    Err(error) => {
                        // Fail closed: what cannot be inspected does not reach the client.
                        let reason = error.to_string();
                        // In the reply's place: an answer to the client's request.
                        let refused = error_doc(
                            code::PROTOCOL_ERROR,
                            format!(
                                "Gate cannot inspect the reply ({error}); refused while masks apply"
                            ),
                        );
                        let mut out = BytesMut::new();
                        answer_to(&mut out, frame.header.response_to, false, refused);
                        client.write_all(&out).await?;
                        self.session.result_decided(
                            Some(self.audit),
                            self.text,
                            self.verdict,
                            ResultOutcome::Refuse(&reason),
                        );
                        if more {
                            return Err(error);
                        }
                        return Ok(());
                    }
                }
            }
            if !more {
                break;
            }
        }
        self.session
            .result_decided(Some(self.audit), self.text, self.verdict, outcome);
        Ok(())
    }

    /// The reply re-encoded with its documents masked, `None` when nothing
    /// in it was masked; an error when it cannot be read.
    fn masked(&self, frame: &Frame) -> Result<Option<BytesMut>, MongoError> {
        let mut msg = match codec::decode_message(frame).map_err(MongoError::UpstreamProtocol)? {
            Message::Msg(msg) => msg,
            _ => {
                return Err(MongoError::UpstreamProtocol(codec::CodecError::Malformed(
                    "reply that is not OP_MSG",
                )));
            }
        };
        let key = self.session.gate.masking_key.as_ref();
        let masked = masking::mask_reply(self.operation, self.body, &mut msg.body, self.masks, key)
            .map_err(|e| MongoError::ClientUnexpected(e.to_string()))?;
        for sequence in &mut msg.sequences {
            for doc in &mut sequence.documents {
                let mut value = Bson::Document(std::mem::take(doc));
                masking::mask_value(&mut value, self.masks, key)
                    .map_err(|e| MongoError::ClientUnexpected(e.to_string()))?;
                if let Bson::Document(d) = value {
                    *doc = d;
                }
            }
        }
        self.session.add_rows(self.audit, masked);
        let redacted = masking::redact_errors(&mut msg.body);
        if masked == 0 && redacted == 0 && msg.sequences.is_empty() {
            return Ok(None);
        }
        let mut out = BytesMut::with_capacity(frame.raw.len() + 64);
        codec::encode_msg(
            &mut out,
            frame.header.request_id,
            frame.header.response_to,
            &msg,
        );
        Ok(Some(out))
    }
}

/// An OP_MSG reply's flag bits, inside OP_COMPRESSED too (0 for anything else).
fn reply_flags(frame: &Frame) -> u32 {
    let flags_of = |body: &[u8]| {
        body.get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes)
    };
    match frame.header.opcode {
        codec::opcode::MSG => flags_of(frame.body()),
        codec::opcode::COMPRESSED => match codec::decompress(frame.body()) {
            Ok((codec::opcode::MSG, body)) => flags_of(&body),
            _ => 0,
        },
        _ => 0,
    }
}
