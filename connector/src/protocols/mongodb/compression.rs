//! OP_COMPRESSED, pure: the compressors Gate reads (noop, snappy, zlib,
//! zstd), the `compression` list it agrees to in `hello`, and the encoder
//! its tests and recorded frames use. Gate answers uncompressed, which every
//! driver accepts, so only the decoders run on traffic (decision 068).
//!
//! ```text
//! OP_COMPRESSED 2012: int32 originalOpcode | int32 uncompressedSize | uint8 compressorId | bytes
//! compressorId:       0 noop | 1 snappy (raw format) | 2 zlib | 3 zstd (one frame)
//! ```
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Read;

use bson::Bson;
use bytes::{BufMut, BytesMut};

use super::codec::{CodecError, HEADER, MAX_MESSAGE, i32_at, opcode, put_header};

/// Compressor ids.
pub mod id {
    pub const NOOP: u8 = 0;
    pub const SNAPPY: u8 = 1;
    pub const ZLIB: u8 = 2;
    pub const ZSTD: u8 = 3;
}

/// The compressors Gate agrees to, by the names drivers offer in `hello`.
pub const SUPPORTED: [&str; 3] = ["snappy", "zlib", "zstd"];

/// The compressors of `offered` (a `hello`'s `compression`) that Gate
/// reads, in the client's order of preference; empty when none.
pub fn negotiate(offered: Option<&Bson>) -> Vec<Bson> {
    let Some(Bson::Array(offered)) = offered else {
        return Vec::new();
    };
    let mut agreed: Vec<Bson> = Vec::new();
    for name in offered.iter().filter_map(Bson::as_str) {
        if SUPPORTED.contains(&name) && !agreed.iter().any(|a| a.as_str() == Some(name)) {
            agreed.push(Bson::from(name));
        }
    }
    agreed
}

/// Undo OP_COMPRESSED: the original opcode and body. The declared size is
/// checked against `MAX_MESSAGE` before anything is decompressed, and no
/// decoder is let produce more than it.
pub fn decompress(body: &[u8]) -> Result<(i32, Vec<u8>), CodecError> {
    let opcode = i32_at(body, 0).ok_or(CodecError::Truncated("OP_COMPRESSED"))?;
    let size = i32_at(body, 4).ok_or(CodecError::Truncated("OP_COMPRESSED"))?;
    let compressor = *body.get(8).ok_or(CodecError::Truncated("OP_COMPRESSED"))?;
    let data = body.get(9..).unwrap_or_default();
    let size = usize::try_from(size).map_err(|_| CodecError::Malformed("uncompressedSize"))?;
    if size > MAX_MESSAGE {
        return Err(CodecError::TooLarge {
            got: size,
            max: MAX_MESSAGE,
        });
    }
    let out = match compressor {
        id::NOOP => data.to_vec(),
        id::SNAPPY => {
            // The raw format opens with its decompressed length: checked before decoding.
            let declared = snap::raw::decompress_len(data)
                .map_err(|_| CodecError::Malformed("snappy data"))?;
            if declared != size {
                return Err(CodecError::Malformed("uncompressedSize"));
            }
            snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|_| CodecError::Malformed("snappy data"))?
        }
        id::ZLIB => bounded(flate2::read::ZlibDecoder::new(data), size, "zlib data")?,
        id::ZSTD => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|_| CodecError::Malformed("zstd data"))?;
            bounded(decoder, size, "zstd data")?
        }
        other => return Err(CodecError::Compressor(other)),
    };
    if out.len() != size {
        return Err(CodecError::Malformed("uncompressedSize"));
    }
    Ok((opcode, out))
}

/// Read at most one byte more than `size` from `decoder` (a longer output is caught by the caller).
fn bounded(decoder: impl Read, size: usize, what: &'static str) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(size);
    decoder
        .take(size as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| CodecError::Malformed(what))?;
    Ok(out)
}

/// `body` compressed with `compressor`; `None` for an unknown one.
fn compress(body: &[u8], compressor: u8) -> Option<Vec<u8>> {
    use std::io::Write;
    match compressor {
        id::NOOP => Some(body.to_vec()),
        id::SNAPPY => snap::raw::Encoder::new().compress_vec(body).ok(),
        id::ZLIB => {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(body).ok()?;
            z.finish().ok()
        }
        id::ZSTD => Some(ruzstd::encoding::compress_to_vec(
            body,
            ruzstd::encoding::CompressionLevel::Fastest,
        )),
        _ => None,
    }
}

/// Append an OP_COMPRESSED wrapping `inner` (a whole encoded message) with
/// `compressor`; for tests and recorded frames. `false` when `inner` is not
/// a message or the compressor is unknown.
pub fn encode_compressed(out: &mut BytesMut, inner: &[u8], compressor: u8) -> bool {
    let (Some(op), Some(request_id), Some(response_to)) =
        (i32_at(inner, 12), i32_at(inner, 4), i32_at(inner, 8))
    else {
        return false;
    };
    let body = inner.get(HEADER..).unwrap_or_default();
    let Some(data) = compress(body, compressor) else {
        return false;
    };
    let start = out.len();
    out.put_bytes(0, HEADER);
    out.put_i32_le(op);
    out.put_i32_le(body.len() as i32);
    out.put_u8(compressor);
    out.put_slice(&data);
    put_header(out, start, request_id, response_to, opcode::COMPRESSED);
    true
}
