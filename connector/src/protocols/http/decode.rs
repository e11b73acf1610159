//! Content codings of responses Gate must inspect: gzip, deflate (zlib, or
//! raw as some servers send it) and br decoded with a size cap, so a small
//! compressed bomb cannot become a large body in memory.

use std::io::Read;

/// Decode `body` sent with `Content-Encoding: coding`; at most `limit` bytes
/// of output. `Err` says why (unknown coding, corrupt data, over the limit).
pub fn decode(coding: &str, body: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let coding = coding.trim().to_ascii_lowercase();
    match coding.as_str() {
        "" | "identity" => Ok(body.to_vec()),
        "gzip" | "x-gzip" => read_capped(flate2::read::MultiGzDecoder::new(body), limit, "gzip"),
        "deflate" => read_capped(flate2::read::ZlibDecoder::new(body), limit, "deflate")
            .or_else(|_| read_capped(flate2::read::DeflateDecoder::new(body), limit, "deflate")),
        "br" => read_capped(brotli::Decompressor::new(body, 8192), limit, "br"),
        other => Err(format!(
            "the response is {other}-encoded, which Gate cannot decode to inspect it"
        )),
    }
}

fn read_capped(reader: impl Read, limit: u64, coding: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("the {coding}-encoded response is corrupt: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "the decoded response exceeds the {limit}-byte inspection limit (max_body_bytes)"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn each_coding_round_trips() {
        let data = br#"[{"email":"alice@example.com"}]"#;
        assert_eq!(decode("gzip", &gzip(data), 1024).unwrap(), data);
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(data).unwrap();
        assert_eq!(
            decode("deflate", &zlib.finish().unwrap(), 1024).unwrap(),
            data
        );
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(data).unwrap();
        assert_eq!(
            decode("deflate", &raw.finish().unwrap(), 1024).unwrap(),
            data
        );
        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 5, 22)
            .write_all(data)
            .unwrap();
        assert_eq!(decode("br", &br, 1024).unwrap(), data);
    }

    #[test]
    fn bombs_and_unknown_codings_are_refused() {
        let bomb = gzip(&vec![b'a'; 1 << 20]);
        assert!(bomb.len() < 8192);
        assert!(decode("gzip", &bomb, 1000).unwrap_err().contains("limit"));
        assert!(decode("zstd", b"x", 10).unwrap_err().contains("zstd"));
        assert!(
            decode("gzip", b"not gzip", 10)
                .unwrap_err()
                .contains("corrupt")
        );
    }
}
