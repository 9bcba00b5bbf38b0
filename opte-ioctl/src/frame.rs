//! The framing of a command on the `xde-host` Unix socket: the ioctl
//! header and buffers, laid end to end. One command per connection.
//!
//! ```text
//! request:  header (56 bytes) | request body (header.req_len bytes)
//! reply:    header (56 bytes) | errno (u32) | body_len (u64) | body (body_len bytes)
//! ```
//!
//! Integers are little-endian; the header is [`OpteCmdIoctl::to_bytes`]
//! (its pointer fields are zero and ignored). The reply's header is the
//! request's with `resp_len_needed` set as the ioctl would set it; errno
//! is 0 on success; the body is what the ioctl would have copied to the
//! reply buffer (the reply, the encoded error, or nothing).
//!
//! A reader never trusts a length: the server refuses a `req_len` above
//! `MAX_REQ_LEN` without reading the body, and the client refuses a
//! `body_len` above the buffer it offered.

use std::io::{self, Read, Write};

use opte_api::OpteCmdIoctl;

/// Bytes of the reply's fixed part after the header (errno and length).
const REPLY_TRAILER: usize = 4 + 8;

/// Write a request: the header, then the body.
pub fn write_request(w: &mut impl Write, hdr: &OpteCmdIoctl, req: &[u8]) -> io::Result<()> {
    w.write_all(&hdr.to_bytes())?;
    w.write_all(req)?;
    w.flush()
}

/// Read a header.
pub fn read_header(r: &mut impl Read) -> io::Result<OpteCmdIoctl> {
    let mut b = [0u8; OpteCmdIoctl::WIRE_LEN];
    r.read_exact(&mut b)?;
    Ok(OpteCmdIoctl::from_bytes(&b))
}

/// Read exactly `len` body bytes (the caller has checked `len`). On a
/// short read the error says how many arrived.
pub fn read_body(r: &mut impl Read, len: u64) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let got = r.take(len).read_to_end(&mut body)?;
    if (got as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("truncated request: {got} of {len} bytes arrived"),
        ));
    }
    Ok(body)
}

/// Write a reply.
pub fn write_reply(
    w: &mut impl Write,
    hdr: &OpteCmdIoctl,
    errno: i32,
    body: &[u8],
) -> io::Result<()> {
    let mut out = Vec::with_capacity(OpteCmdIoctl::WIRE_LEN + REPLY_TRAILER + body.len());
    out.extend_from_slice(&hdr.to_bytes());
    out.extend_from_slice(&errno.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

/// Read a reply whose body is at most `max_body` bytes.
pub fn read_reply(r: &mut impl Read, max_body: u64) -> io::Result<(OpteCmdIoctl, i32, Vec<u8>)> {
    let hdr = read_header(r)?;
    let mut e = [0u8; 4];
    r.read_exact(&mut e)?;
    let mut l = [0u8; 8];
    r.read_exact(&mut l)?;
    let len = u64::from_le_bytes(l);
    if len > max_body {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("reply body of {len} bytes is larger than the {max_body} bytes offered"),
        ));
    }
    let body = read_body(r, len)?;
    Ok((hdr, i32::from_le_bytes(e), body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opte_api::OpteCmd;

    #[test]
    fn request_and_reply_round_trip() {
        let hdr = OpteCmdIoctl::new(OpteCmd::DumpV2p, 3, 4096);
        let mut wire = Vec::new();
        write_request(&mut wire, &hdr, &[1, 2, 3]).unwrap();
        let mut r = &wire[..];
        assert_eq!(read_header(&mut r).unwrap(), hdr);
        assert_eq!(read_body(&mut r, 3).unwrap(), [1, 2, 3]);

        let mut wire = Vec::new();
        write_reply(&mut wire, &hdr, 22, &[9; 10]).unwrap();
        assert_eq!(wire.len(), OpteCmdIoctl::WIRE_LEN + REPLY_TRAILER + 10);
        let (h, e, b) = read_reply(&mut &wire[..], 10).unwrap();
        assert_eq!((h, e, b), (hdr, 22, vec![9; 10]));
        // A body larger than offered is refused before it is read.
        let err = read_reply(&mut &wire[..], 9).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_short_body_says_how_much_arrived() {
        let err = read_body(&mut &[1u8, 2][..], 5).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("2 of 5 bytes"), "{err}");
    }
}
