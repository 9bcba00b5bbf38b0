//! DNS names in wire form (RFC 1035 3.1: length-prefixed labels ending in
//! a zero byte), for the DHCP domain search list (option 119, RFC 3397,
//! which compresses names with RFC 1035 4.1.4 pointers relative to the
//! start of the option data) and the DHCPv6 domain list (option 24, RFC
//! 8415 10, never compressed).
//!
//! Names come from a validated configuration (labels of 1-63 letters,
//! digits and hyphens; at most 253 bytes), and are encoded once when the
//! rules are built. A name that is not valid all the same is left out.

use alloc::vec::Vec;

/// Longest label (RFC 1035 2.3.4).
const MAX_LABEL: usize = 63;
/// Longest name in text form (RFC 1035 2.3.4, less the final dot).
const MAX_NAME: usize = 253;
/// Largest offset a compression pointer holds (14 bits).
const MAX_POINTER: usize = 0x3fff;
/// Most labels one name has (a 253-byte name of one-letter labels).
const MAX_LABELS: usize = MAX_NAME.div_ceil(2);

/// True when `name` can be encoded: 1-253 bytes of labels of 1-63 bytes.
fn encodable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('.').all(|l| !l.is_empty() && l.len() <= MAX_LABEL)
}

/// Encode `names` one after the other, each ending in a zero byte,
/// without compression.
pub fn encode_list<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names.into_iter().filter(|n| encodable(n)) {
        for label in name.split('.').take(MAX_LABELS) {
            // `encodable` bounds the label to 63 bytes.
            out.push(u8::try_from(label.len()).unwrap_or(0));
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }
    out
}

/// Encode `names` as [`encode_list`] does, but replace every suffix of a
/// name that was already written (the whole name, or its last labels) by
/// a pointer to where it was written. Names compare without regard to
/// ASCII case, as DNS names do.
pub fn encode_list_compressed<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    // Every suffix written so far and the offset it was written at.
    let mut written: Vec<(&str, usize)> = Vec::new();
    for name in names.into_iter().filter(|n| encodable(n)) {
        let mut rest = name;
        for _ in 0..MAX_LABELS {
            if let Some(&(_, at)) = written.iter().find(|(s, _)| s.eq_ignore_ascii_case(rest)) {
                // A pointer: the two top bits set, then the offset.
                let p = 0xc000 | u16::try_from(at).unwrap_or(0);
                out.extend_from_slice(&p.to_be_bytes());
                break;
            }
            if out.len() <= MAX_POINTER {
                written.push((rest, out.len()));
            }
            let (label, tail) = rest.split_once('.').unwrap_or((rest, ""));
            out.push(u8::try_from(label.len()).unwrap_or(0));
            out.extend_from_slice(label.as_bytes());
            if tail.is_empty() {
                out.push(0);
                break;
            }
            rest = tail;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_length_prefixed_labels() {
        assert_eq!(encode_list(["vpc.example", "a"]), b"\x03vpc\x07example\x00\x01a\x00".to_vec());
    }

    #[test]
    fn repeated_suffixes_become_pointers() {
        let v = encode_list_compressed(["vpc.example", "example", "eng.VPC.example"]);
        // "example" was written at offset 4; "vpc.example" at 0.
        assert_eq!(v, b"\x03vpc\x07example\x00\xc0\x04\x03eng\xc0\x00".to_vec());
    }

    #[test]
    fn invalid_names_are_left_out() {
        assert_eq!(encode_list(["", "a..b", "ok"]), b"\x02ok\x00".to_vec());
        let long = "a".repeat(64);
        assert_eq!(encode_list_compressed([long.as_str()]), Vec::<u8>::new());
    }
}
