//! The response packets Gate reads or writes, pure: OK, ERR, EOF and
//! ColumnDefinition41 (where each output column comes from).
//!
//! ```text
//! OK:     0x00 (0xFE after rows with DEPRECATE_EOF) | affected lenenc | last id lenenc | status u16 | warnings u16 | info
//! ERR:    0xFF | code u16 | '#' sqlstate[5] | message
//! EOF:    0xFE | warnings u16 | status u16                                 (payload < 9 bytes)
//! Column: catalog | schema | table | org_table | name | org_name (lenenc strings) | 0x0C
//!         | charset u16 | length u32 | type u8 | flags u16 | decimals u8 | 0x0000
//! ```
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{BufMut, BytesMut};

use super::codec::{CodecError, MAX_PACKET, Reader, put_lenenc, put_lenenc_bytes};

/// Response header bytes.
pub const OK: u8 = 0x00;
pub const EOF: u8 = 0xFE;
pub const ERR: u8 = 0xFF;
/// A server's request for a client file (LOCAL INFILE).
pub const LOCAL_INFILE: u8 = 0xFB;

/// The column type masked columns are re-described as.
pub const TYPE_VAR_STRING: u8 = 0xFD;
/// utf8mb4_general_ci, the character set of re-described binary columns.
pub const UTF8MB4: u16 = 45;
/// The `binary` character set.
pub const BINARY_CHARSET: u16 = 63;

/// Column flags kept on a re-described column.
pub mod flags {
    pub const NOT_NULL: u16 = 1;
    pub const PRI_KEY: u16 = 2;
    pub const UNIQUE_KEY: u16 = 4;
    pub const MULTIPLE_KEY: u16 = 8;
    pub const UNSIGNED: u16 = 32;
}

/// The parts of an OK (or EOF) packet Gate needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OkPacket {
    pub affected_rows: u64,
    pub status: u16,
    pub warnings: u16,
}

impl OkPacket {
    /// Decode an OK packet (header 0x00, or 0xFE ending rows).
    pub fn decode(payload: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(payload);
        r.u8("OK packet")?;
        let affected_rows = r.lenenc_int("affected rows")?;
        r.lenenc_int("last insert id")?;
        let status = r.u16("status")?;
        let warnings = if r.is_empty() { 0 } else { r.u16("warnings")? };
        Ok(Self {
            affected_rows,
            status,
            warnings,
        })
    }

    /// Encode an OK packet with header `header` (no info, no session state).
    pub fn encode(&self, header: u8, out: &mut BytesMut) {
        out.put_u8(header);
        put_lenenc(out, self.affected_rows);
        put_lenenc(out, 0);
        out.put_u16_le(self.status);
        out.put_u16_le(self.warnings);
    }
}

/// Whether `payload` is an EOF packet (not a row or OK that starts with 0xFE).
pub fn is_eof(payload: &[u8]) -> bool {
    payload.first() == Some(&EOF) && payload.len() < 9
}

/// Whether `payload` ends a result's rows: EOF, or with DEPRECATE_EOF an OK
/// with header 0xFE (a row starting with 0xFE is at least 16 MiB long).
pub fn ends_rows(payload: &[u8], deprecate_eof: bool) -> bool {
    payload.first() == Some(&EOF)
        && if deprecate_eof {
            payload.len() < MAX_PACKET
        } else {
            payload.len() < 9
        }
}

/// The status flags of an EOF packet, or of an OK that ends rows.
pub fn terminator_status(payload: &[u8]) -> Result<OkPacket, CodecError> {
    if is_eof(payload) {
        let mut r = Reader::new(payload);
        r.u8("EOF packet")?;
        let warnings = r.u16("warnings")?;
        let status = r.u16("status")?;
        return Ok(OkPacket {
            affected_rows: 0,
            status,
            warnings,
        });
    }
    OkPacket::decode(payload)
}

/// A copy of an OK or EOF packet with SERVER_MORE_RESULTS_EXISTS set in
/// its status flags (another result follows that Gate adds itself).
pub fn with_more_results(payload: &[u8]) -> Result<Vec<u8>, CodecError> {
    let at = if is_eof(payload) {
        3
    } else {
        let mut r = Reader::new(payload);
        r.u8("OK packet")?;
        r.lenenc_int("affected rows")?;
        r.lenenc_int("last insert id")?;
        payload.len() - r.rest().len()
    };
    let old = payload
        .get(at..at + 2)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .ok_or(CodecError::Truncated("status"))?;
    let flags = u16::from_le_bytes(old) | super::handshake::SERVER_MORE_RESULTS_EXISTS;
    let mut patched = payload.to_vec();
    if let Some(slot) = patched.get_mut(at..at + 2) {
        slot.copy_from_slice(&flags.to_le_bytes());
    }
    Ok(patched)
}

/// An ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket {
    pub code: u16,
    pub sqlstate: String,
    pub message: String,
}

impl ErrPacket {
    pub fn new(code: u16, sqlstate: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            sqlstate: sqlstate.to_owned(),
            message: message.into(),
        }
    }

    pub fn decode(payload: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(payload);
        if r.u8("ERR packet")? != ERR {
            return Err(CodecError::Malformed("ERR packet"));
        }
        let code = r.u16("error code")?;
        let sqlstate = if r.peek() == Some(b'#') {
            r.u8("sqlstate marker")?;
            String::from_utf8_lossy(r.bytes(5, "sqlstate")?).into_owned()
        } else {
            "HY000".to_owned()
        };
        Ok(Self {
            code,
            sqlstate,
            message: String::from_utf8_lossy(r.rest()).into_owned(),
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(ERR);
        out.put_u16_le(self.code);
        out.put_u8(b'#');
        let state = self.sqlstate.as_bytes();
        out.put_slice(state.get(..5).unwrap_or(b"HY000"));
        out.put_slice(self.message.as_bytes());
    }
}

/// A ColumnDefinition41.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Column {
    pub schema: String,
    pub table: String,
    /// The table the column reads (empty when computed).
    pub org_table: String,
    pub name: String,
    /// The column it reads (empty when computed).
    pub org_name: String,
    pub charset: u16,
    pub length: u32,
    pub column_type: u8,
    pub flags: u16,
    pub decimals: u8,
    /// What follows the fixed fields (COM_FIELD_LIST default values), kept as is.
    pub trailer: Vec<u8>,
}

impl Column {
    pub fn decode(payload: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(payload);
        r.lenenc_str("catalog")?;
        let schema = r.lenenc_str("schema")?;
        let table = r.lenenc_str("table")?;
        let org_table = r.lenenc_str("org_table")?;
        let name = r.lenenc_str("name")?;
        let org_name = r.lenenc_str("org_name")?;
        let fixed = r.lenenc_int("fixed fields length")?;
        if fixed < 0x0C {
            return Err(CodecError::Malformed("column definition"));
        }
        let charset = r.u16("charset")?;
        let length = r.u32("column length")?;
        let column_type = r.u8("column type")?;
        let flags = r.u16("column flags")?;
        let decimals = r.u8("decimals")?;
        r.bytes(2, "filler")?;
        Ok(Self {
            schema,
            table,
            org_table,
            name,
            org_name,
            charset,
            length,
            column_type,
            flags,
            decimals,
            trailer: r.rest().to_vec(),
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        put_lenenc_bytes(out, b"def");
        for field in [
            &self.schema,
            &self.table,
            &self.org_table,
            &self.name,
            &self.org_name,
        ] {
            put_lenenc_bytes(out, field.as_bytes());
        }
        out.put_u8(0x0C);
        out.put_u16_le(self.charset);
        out.put_u32_le(self.length);
        out.put_u8(self.column_type);
        out.put_u16_le(self.flags);
        out.put_u8(self.decimals);
        out.put_u16(0);
        out.put_slice(&self.trailer);
    }

    /// Whether the column is computed (no source table and column).
    pub fn computed(&self) -> bool {
        self.org_table.is_empty() || self.org_name.is_empty()
    }

    /// This column re-described as a string, as masked values are sent.
    pub fn as_masked_string(&self, nullable: bool) -> Self {
        let keep = flags::PRI_KEY
            | flags::UNIQUE_KEY
            | flags::MULTIPLE_KEY
            | if nullable { 0 } else { flags::NOT_NULL };
        Self {
            charset: if self.charset == BINARY_CHARSET {
                UTF8MB4
            } else {
                self.charset
            },
            length: self.length.max(1024),
            column_type: TYPE_VAR_STRING,
            flags: self.flags & keep,
            decimals: 0,
            ..self.clone()
        }
    }
}

/// The light scan used for cached plans: whether a column definition is
/// traced to one of `tables` (lower case; its org_table and org_name are
/// set and the table is one of them), without building it.
pub fn column_traced(payload: &[u8], tables: &[String]) -> Result<bool, CodecError> {
    let mut r = Reader::new(payload);
    for what in ["catalog", "schema", "table"] {
        r.lenenc_bytes(what)?;
    }
    let org_table = r.lenenc_bytes("org_table")?.unwrap_or_default();
    r.lenenc_bytes("name")?;
    let org_name = r.lenenc_bytes("org_name")?.unwrap_or_default();
    Ok(!org_name.is_empty()
        && tables
            .iter()
            .any(|t| t.as_bytes().eq_ignore_ascii_case(org_table)))
}

#[cfg(test)]
#[path = "packets_tests.rs"]
mod tests;
