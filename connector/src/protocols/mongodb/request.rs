//! One client message as a command: OP_MSG (sections folded into one
//! body), or the legacy OP_QUERY on `<db>.$cmd` that drivers still open
//! the handshake with; OP_COMPRESSED decompressed first.

use bson::Document;

use super::codec::{self, CodecError, Frame, Message, flags, opcode};
use super::command;

/// A client command.
#[derive(Debug)]
pub struct Request {
    pub frame: Frame,
    /// The command with its document sequences folded in.
    pub body: Document,
    /// The command's name (its first key).
    pub name: String,
    /// The client expects no reply (OP_MSG `moreToCome`).
    pub more_to_come: bool,
    /// The client accepts several replies (OP_MSG `exhaustAllowed`).
    pub exhaust: bool,
    /// An OP_QUERY (answered with OP_REPLY; only the handshake is served so).
    pub legacy: bool,
    /// The bytes that arrived cannot go upstream as they are (they were compressed).
    pub reencode: bool,
}

impl Request {
    /// Decode `frame`, checking an OP_MSG checksum when it carries one.
    pub fn parse(frame: Frame) -> Result<Self, CodecError> {
        codec::verify_checksum(&frame)?;
        let reencode = frame.header.opcode == opcode::COMPRESSED;
        let (body, flag_bits, legacy) = match codec::decode_message(&frame)? {
            Message::Msg(msg) => (command::full_body(&msg), msg.flags, false),
            Message::Query(query) => {
                let db = query
                    .collection
                    .strip_suffix(".$cmd")
                    .ok_or(CodecError::Malformed("OP_QUERY that is not a command"))?
                    .to_owned();
                // `{$query: {...}, $readPreference: ...}` wraps the command.
                let mut body = match query.query.get_document("$query") {
                    Ok(inner) => inner.clone(),
                    Err(_) => query.query,
                };
                body.insert("$db", db);
                (body, 0, true)
            }
            Message::Reply(_) => return Err(CodecError::Opcode(opcode::REPLY)),
        };
        let name = command::name(&body).to_owned();
        Ok(Self {
            frame,
            body,
            name,
            more_to_come: flag_bits & flags::MORE_TO_COME != 0,
            exhaust: flag_bits & flags::EXHAUST_ALLOWED != 0,
            legacy,
            reencode,
        })
    }
}
