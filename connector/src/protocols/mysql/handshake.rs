//! The connection phase, pure: capability flags, the server's HandshakeV10,
//! the client's HandshakeResponse41 (and its short form, the SSLRequest),
//! and the AuthSwitchRequest; each decoded and encoded.
//!
//! ```text
//! HandshakeV10:  10 | version\0 | conn id u32 | scramble[8] | 0 | caps lo u16 | charset u8
//!                | status u16 | caps hi u16 | scramble len u8 | reserved[6] | MariaDB caps u32 | scramble[12..]\0 | plugin\0
//! Response41:    caps u32 | max packet u32 | charset u8 | filler[19] | MariaDB caps u32  (SSLRequest ends here)
//!                | user\0 | auth (lenenc, or u8 length) | db\0 | plugin\0 | attrs (lenenc block)
//! AuthSwitch:    0xFE | plugin\0 | data
//! ```
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{BufMut, BytesMut};

use super::codec::{CodecError, Reader, put_lenenc, put_lenenc_bytes};

/// Capability flags Gate uses.
pub mod caps {
    pub const LONG_PASSWORD: u32 = 1;
    pub const FOUND_ROWS: u32 = 1 << 1;
    pub const LONG_FLAG: u32 = 1 << 2;
    pub const CONNECT_WITH_DB: u32 = 1 << 3;
    pub const NO_SCHEMA: u32 = 1 << 4;
    pub const COMPRESS: u32 = 1 << 5;
    pub const LOCAL_FILES: u32 = 1 << 7;
    pub const IGNORE_SPACE: u32 = 1 << 8;
    pub const PROTOCOL_41: u32 = 1 << 9;
    pub const INTERACTIVE: u32 = 1 << 10;
    pub const SSL: u32 = 1 << 11;
    pub const TRANSACTIONS: u32 = 1 << 13;
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    pub const MULTI_STATEMENTS: u32 = 1 << 16;
    pub const MULTI_RESULTS: u32 = 1 << 17;
    pub const PS_MULTI_RESULTS: u32 = 1 << 18;
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    pub const CONNECT_ATTRS: u32 = 1 << 20;
    pub const PLUGIN_AUTH_LENENC: u32 = 1 << 21;
    pub const SESSION_TRACK: u32 = 1 << 23;
    pub const DEPRECATE_EOF: u32 = 1 << 24;
    /// Unset by MariaDB servers, which then send extended capabilities.
    pub const CLIENT_MYSQL: u32 = LONG_PASSWORD;
    /// MariaDB extended capability (the upper 32 bits): prepared statement
    /// results may skip column definitions the client already has.
    pub const MARIADB_CACHE_METADATA: u32 = 1 << 4;

    /// What Gate offers clients (TLS is added when configured). Never
    /// LOCAL_FILES (a server could ask for any client file) nor COMPRESS.
    pub const GATE: u32 = LONG_PASSWORD
        | FOUND_ROWS
        | LONG_FLAG
        | CONNECT_WITH_DB
        | NO_SCHEMA
        | IGNORE_SPACE
        | PROTOCOL_41
        | INTERACTIVE
        | TRANSACTIONS
        | SECURE_CONNECTION
        | MULTI_STATEMENTS
        | MULTI_RESULTS
        | PS_MULTI_RESULTS
        | PLUGIN_AUTH
        | CONNECT_ATTRS
        | PLUGIN_AUTH_LENENC
        | SESSION_TRACK
        | DEPRECATE_EOF;

    /// Flags that change what the server sends, so an upstream connection
    /// logged in with them serves only clients that chose the same.
    pub const SHAPING: u32 = FOUND_ROWS
        | LONG_FLAG
        | NO_SCHEMA
        | IGNORE_SPACE
        | INTERACTIVE
        | MULTI_STATEMENTS
        | MULTI_RESULTS
        | PS_MULTI_RESULTS
        | SESSION_TRACK
        | DEPRECATE_EOF;
}

/// Status flag: another result follows this one.
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;
/// Status flag: in a transaction.
pub const SERVER_STATUS_IN_TRANS: u16 = 0x0001;
/// Status flag: autocommit is on.
pub const SERVER_STATUS_AUTOCOMMIT: u16 = 0x0002;

/// The server's greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeV10 {
    pub server_version: String,
    pub connection_id: u32,
    /// The 20-byte scramble (nonce) of the auth plugin.
    pub scramble: Vec<u8>,
    pub capabilities: u32,
    pub charset: u8,
    pub status: u16,
    pub auth_plugin: String,
    /// MariaDB's extended capabilities (only without [`caps::CLIENT_MYSQL`]).
    pub mariadb_caps: u32,
}

impl HandshakeV10 {
    pub fn decode(payload: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(payload);
        if r.u8("handshake")? != 10 {
            return Err(CodecError::Malformed(
                "handshake (protocol version is not 10)",
            ));
        }
        let server_version = String::from_utf8_lossy(r.nul_bytes("server version")?).into_owned();
        let connection_id = r.u32("connection id")?;
        let mut scramble = r.bytes(8, "scramble")?.to_vec();
        r.u8("filler")?;
        let lo = u32::from(r.u16("capabilities")?);
        if r.is_empty() {
            return Ok(Self {
                server_version,
                connection_id,
                scramble,
                capabilities: lo,
                charset: 0,
                status: 0,
                auth_plugin: String::new(),
                mariadb_caps: 0,
            });
        }
        let charset = r.u8("charset")?;
        let status = r.u16("status")?;
        let capabilities = lo | u32::from(r.u16("capabilities")?) << 16;
        let data_len = usize::from(r.u8("scramble length")?);
        r.bytes(6, "reserved")?;
        let extended = r.u32("extended capabilities")?;
        let mariadb_caps = if capabilities & caps::CLIENT_MYSQL == 0 {
            extended
        } else {
            0
        };
        if capabilities & caps::SECURE_CONNECTION != 0 {
            let n = data_len.saturating_sub(8).max(13);
            let part = r.bytes(n, "scramble")?;
            // The second part ends with a NUL that is not scramble.
            scramble.extend_from_slice(part.strip_suffix(&[0]).unwrap_or(part));
        }
        let auth_plugin = if capabilities & caps::PLUGIN_AUTH != 0 {
            String::from_utf8_lossy(r.nul_or_rest()).into_owned()
        } else {
            String::new()
        };
        Ok(Self {
            server_version,
            connection_id,
            scramble,
            capabilities,
            charset,
            status,
            auth_plugin,
            mariadb_caps,
        })
    }

    /// Encode; `mariadb_caps` are sent (and mean something) only without [`caps::CLIENT_MYSQL`].
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(10);
        out.put_slice(self.server_version.as_bytes());
        out.put_u8(0);
        out.put_u32_le(self.connection_id);
        let (part1, part2) = self.scramble.split_at(self.scramble.len().min(8));
        out.put_slice(part1);
        out.put_bytes(0, 8 - part1.len());
        out.put_u8(0);
        out.put_u16_le(self.capabilities as u16);
        out.put_u8(self.charset);
        out.put_u16_le(self.status);
        out.put_u16_le((self.capabilities >> 16) as u16);
        out.put_u8(u8::try_from(self.scramble.len() + 1).unwrap_or(21));
        out.put_bytes(0, 6);
        out.put_u32_le(if self.capabilities & caps::CLIENT_MYSQL == 0 {
            self.mariadb_caps
        } else {
            0
        });
        out.put_slice(part2);
        out.put_bytes(0, 13usize.saturating_sub(part2.len()).max(1));
        out.put_slice(self.auth_plugin.as_bytes());
        out.put_u8(0);
    }
}

/// The client's answer to the greeting (or the SSLRequest, its first 32 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandshakeResponse {
    pub capabilities: u32,
    pub max_packet: u32,
    pub charset: u8,
    pub user: String,
    pub auth_response: Vec<u8>,
    pub database: Option<String>,
    pub auth_plugin: Option<String>,
    pub attributes: Vec<(String, String)>,
    /// MariaDB's extended capabilities (the filler's last 4 bytes; zero from other clients).
    pub mariadb_caps: u32,
}

/// Length of an SSLRequest (and of a response's fixed part).
pub const SSL_REQUEST_LEN: usize = 32;

impl HandshakeResponse {
    /// Whether `payload` is an SSLRequest: the fixed part only, with the SSL flag.
    pub fn is_ssl_request(payload: &[u8]) -> bool {
        payload.len() == SSL_REQUEST_LEN
            && Reader::new(payload)
                .u32("capabilities")
                .is_ok_and(|c| c & caps::SSL != 0)
    }

    pub fn decode(payload: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(payload);
        let capabilities = r.u32("capabilities")?;
        if capabilities & caps::PROTOCOL_41 == 0 {
            return Err(CodecError::Malformed(
                "handshake response (pre-4.1 protocol is not supported)",
            ));
        }
        let max_packet = r.u32("max packet size")?;
        let charset = r.u8("charset")?;
        r.bytes(19, "filler")?;
        let mariadb_caps = r.u32("extended capabilities")?;
        let user = String::from_utf8_lossy(r.nul_bytes("user name")?).into_owned();
        let auth_response = if capabilities & caps::PLUGIN_AUTH_LENENC != 0 {
            r.lenenc_bytes("auth response")?
                .ok_or(CodecError::Malformed("auth response"))?
                .to_vec()
        } else if capabilities & caps::SECURE_CONNECTION != 0 {
            let n = usize::from(r.u8("auth response length")?);
            r.bytes(n, "auth response")?.to_vec()
        } else {
            r.nul_bytes("auth response")?.to_vec()
        };
        let database = if capabilities & caps::CONNECT_WITH_DB != 0 && !r.is_empty() {
            Some(String::from_utf8_lossy(r.nul_or_rest()).into_owned())
        } else {
            None
        };
        let auth_plugin = if capabilities & caps::PLUGIN_AUTH != 0 && !r.is_empty() {
            Some(String::from_utf8_lossy(r.nul_or_rest()).into_owned())
        } else {
            None
        };
        let mut attributes = Vec::new();
        if capabilities & caps::CONNECT_ATTRS != 0 && !r.is_empty() {
            let block = r
                .lenenc_bytes("connection attributes")?
                .ok_or(CodecError::Malformed("connection attributes"))?;
            let mut a = Reader::new(block);
            while !a.is_empty() {
                let key = a.lenenc_str("attribute name")?;
                let value = a.lenenc_str("attribute value")?;
                attributes.push((key, value));
            }
        }
        Ok(Self {
            capabilities,
            max_packet,
            charset,
            user,
            auth_response,
            database,
            auth_plugin,
            attributes,
            mariadb_caps,
        })
    }

    /// The fixed part alone: an SSLRequest when `capabilities` has SSL.
    pub fn encode_fixed(&self, out: &mut BytesMut) {
        out.put_u32_le(self.capabilities);
        out.put_u32_le(self.max_packet);
        out.put_u8(self.charset);
        out.put_bytes(0, 19);
        out.put_u32_le(self.mariadb_caps);
    }

    pub fn encode(&self, out: &mut BytesMut) {
        self.encode_fixed(out);
        out.put_slice(self.user.as_bytes());
        out.put_u8(0);
        if self.capabilities & caps::PLUGIN_AUTH_LENENC != 0 {
            put_lenenc_bytes(out, &self.auth_response);
        } else {
            let n = self.auth_response.len().min(255);
            out.put_u8(n as u8);
            out.put_slice(self.auth_response.get(..n).unwrap_or_default());
        }
        if self.capabilities & caps::CONNECT_WITH_DB != 0 {
            out.put_slice(self.database.as_deref().unwrap_or_default().as_bytes());
            out.put_u8(0);
        }
        if self.capabilities & caps::PLUGIN_AUTH != 0 {
            out.put_slice(self.auth_plugin.as_deref().unwrap_or_default().as_bytes());
            out.put_u8(0);
        }
        if self.capabilities & caps::CONNECT_ATTRS != 0 {
            let mut block = BytesMut::new();
            for (k, v) in &self.attributes {
                put_lenenc_bytes(&mut block, k.as_bytes());
                put_lenenc_bytes(&mut block, v.as_bytes());
            }
            put_lenenc(out, block.len() as u64);
            out.put_slice(&block);
        }
    }
}

/// The server asks the client to authenticate with another plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSwitch {
    pub plugin: String,
    pub data: Vec<u8>,
}

impl AuthSwitch {
    /// Decode a packet that starts with 0xFE during the connection phase.
    pub fn decode(payload: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(payload);
        if r.u8("auth switch")? != 0xFE {
            return Err(CodecError::Malformed("auth switch"));
        }
        let plugin = String::from_utf8_lossy(r.nul_or_rest()).into_owned();
        let rest = r.rest();
        Ok(Self {
            plugin,
            data: rest.strip_suffix(&[0]).unwrap_or(rest).to_vec(),
        })
    }

    /// Encode with the plugin data followed by a NUL (as servers send a scramble).
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(0xFE);
        out.put_slice(self.plugin.as_bytes());
        out.put_u8(0);
        out.put_slice(&self.data);
        out.put_u8(0);
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
