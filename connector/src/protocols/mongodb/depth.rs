//! How deep a raw BSON document nests, checked iteratively before anything
//! recursive (the bson crate's conversion, masking, extended JSON) reads it,
//! so hostile input cannot exhaust the stack.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::codec::{CodecError, MAX_DEPTH, i32_at};

/// Refuse documents nested deeper than [`MAX_DEPTH`] before anything
/// recursive (the bson crate's conversion, masking, extended JSON) sees
/// them: an iterative walk over the raw elements.
pub(super) fn check_depth(doc: &[u8], what: &'static str) -> Result<(), CodecError> {
    let bad = || CodecError::Bson(what);
    let size_at = |at: usize| {
        i32_at(doc, at)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(bad)
    };
    // The end offsets of the documents we are inside, innermost last.
    let mut ends = vec![size_at(0)?];
    let mut at = 4;
    while let Some(&end) = ends.last() {
        if at + 1 == end {
            ends.pop();
            at += 1;
            continue;
        }
        let kind = *doc.get(at).ok_or_else(bad)?;
        let key_end = doc
            .get(at + 1..end)
            .and_then(|rest| rest.iter().position(|&b| b == 0))
            .ok_or_else(bad)?;
        at += 1 + key_end + 1;
        let string = |at: usize| Ok::<usize, CodecError>(4 + size_at(at)?);
        at += match kind {
            0x01 | 0x09 | 0x11 | 0x12 => 8,
            0x02 | 0x0D | 0x0E => string(at)?,
            0x03 | 0x04 => {
                let inner = size_at(at)?;
                if inner < 5 || ends.len() >= MAX_DEPTH {
                    return Err(CodecError::TooDeep(what));
                }
                ends.push(at + inner);
                4
            }
            0x05 => 5 + size_at(at)?,
            0x06 | 0x0A | 0x7F | 0xFF => 0,
            0x07 => 12,
            0x08 => 1,
            0x0B => {
                let patterns = doc.get(at..end).ok_or_else(bad)?;
                let mut nuls = patterns.iter().enumerate().filter(|(_, b)| **b == 0);
                let (_, second) = (nuls.next(), nuls.next());
                second.map(|(i, _)| i + 1).ok_or_else(bad)?
            }
            0x0C => string(at)? + 12,
            // Code with scope: its scope is a document, bounded like any other.
            0x0F => {
                let total = size_at(at)?;
                let scope = at + 4 + string(at + 4)?;
                if ends.len() >= MAX_DEPTH {
                    return Err(CodecError::TooDeep(what));
                }
                ends.push(scope + size_at(scope)?);
                let skipped = scope + 4 - at;
                if scope + size_at(scope)? != at + total {
                    return Err(bad());
                }
                skipped
            }
            0x10 => 4,
            0x13 => 16,
            _ => return Err(bad()),
        };
        if at > end {
            return Err(bad());
        }
    }
    Ok(())
}
