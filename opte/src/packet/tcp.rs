//! TCP header (RFC 9293) with options.

use super::error::{HeaderKind, ParseError};

/// Longest TCP options area (data offset 15).
pub const MAX_TCP_OPTIONS: usize = 40;

/// TCP flag bits (the low 8 bits of the flags field).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// A TCP header. `options` holds the raw option bytes verbatim; parsing
/// checks that they form a well-formed option list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpHdr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// The 4 reserved bits after the data offset (kept as read).
    pub reserved: u8,
    pub flags: u8,
    pub window: u16,
    /// The checksum as read; [`Packet::emit`](super::Packet::emit) owns it
    /// on output.
    pub csum: u16,
    pub urgent: u16,
    pub opt_len: u8,
    pub options: [u8; MAX_TCP_OPTIONS],
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption {
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    /// Up to four SACK blocks (left, right edges); `count` are valid.
    Sack {
        blocks: [(u32, u32); 4],
        count: u8,
    },
    Timestamps {
        val: u32,
        ecr: u32,
    },
    /// An option this parser does not interpret.
    Unknown {
        kind: u8,
        len: u8,
    },
}

impl TcpHdr {
    /// Header length without options.
    pub const MIN_LEN: usize = 20;

    /// Header length including options.
    #[inline(always)]
    pub fn hdr_len(&self) -> usize {
        Self::MIN_LEN + usize::from(self.opt_len)
    }

    /// The option bytes.
    pub fn options(&self) -> &[u8] {
        self.options.get(..usize::from(self.opt_len)).unwrap_or(&[])
    }

    /// A header with every field zero (the starting point for
    /// [`TcpHdr::read_fixed`]).
    pub const EMPTY: Self = Self {
        src_port: 0,
        dst_port: 0,
        seq: 0,
        ack: 0,
        reserved: 0,
        flags: 0,
        window: 0,
        csum: 0,
        urgent: 0,
        opt_len: 0,
        options: [0; MAX_TCP_OPTIONS],
    };

    /// Read the fixed 20 bytes; returns the header and the options length.
    pub fn parse_fixed(b: &[u8]) -> Result<(Self, usize), ParseError> {
        let mut h = Self::EMPTY;
        let opt_len = h.read_fixed(b)?;
        Ok((h, opt_len))
    }

    /// Read the fixed 20 bytes into `self` in place (options untouched);
    /// returns the options length to read next.
    #[inline(always)]
    pub fn read_fixed(&mut self, b: &[u8]) -> Result<usize, ParseError> {
        let b: &[u8; Self::MIN_LEN] =
            b.try_into().map_err(|_| ParseError::Truncated(HeaderKind::Tcp))?;
        let off = usize::from(b[12] >> 4) * 4;
        if off < Self::MIN_LEN {
            return Err(ParseError::BadLength(HeaderKind::Tcp));
        }
        self.src_port = u16::from_be_bytes([b[0], b[1]]);
        self.dst_port = u16::from_be_bytes([b[2], b[3]]);
        self.seq = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        self.ack = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        self.reserved = b[12] & 0x0f;
        self.flags = b[13];
        self.window = u16::from_be_bytes([b[14], b[15]]);
        self.csum = u16::from_be_bytes([b[16], b[17]]);
        self.urgent = u16::from_be_bytes([b[18], b[19]]);
        self.opt_len = 0;
        Ok(off - Self::MIN_LEN)
    }

    /// Attach and check the option bytes read after the fixed header.
    pub fn set_options(&mut self, opts: &[u8]) -> Result<(), ParseError> {
        let dst =
            self.options.get_mut(..opts.len()).ok_or(ParseError::BadLength(HeaderKind::Tcp))?;
        dst.copy_from_slice(opts);
        self.opt_len = opts.len() as u8;
        for o in self.option_iter() {
            o?;
        }
        Ok(())
    }

    /// Read a whole header from contiguous bytes.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        let fixed = b.get(..Self::MIN_LEN).ok_or(ParseError::Truncated(HeaderKind::Tcp))?;
        let (mut hdr, opt_len) = Self::parse_fixed(fixed)?;
        let opts = b
            .get(Self::MIN_LEN..Self::MIN_LEN + opt_len)
            .ok_or(ParseError::Truncated(HeaderKind::Tcp))?;
        hdr.set_options(opts)?;
        Ok(hdr)
    }

    /// The options, in order, up to End of Option List.
    pub fn option_iter(&self) -> TcpOptionIter<'_> {
        TcpOptionIter { rest: self.options() }
    }

    /// Write the header (the `csum` field as it stands) into `out`,
    /// returning its length (0 if `out` is too short).
    pub fn emit(&self, out: &mut [u8]) -> usize {
        let len = self.hdr_len();
        let Some(out) = out.get_mut(..len) else { return 0 };
        let Some((f, opts)) = out.split_first_chunk_mut::<{ Self::MIN_LEN }>() else {
            return 0;
        };
        f[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        f[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        f[4..8].copy_from_slice(&self.seq.to_be_bytes());
        f[8..12].copy_from_slice(&self.ack.to_be_bytes());
        f[12] = (((len / 4) as u8) << 4) | (self.reserved & 0x0f);
        f[13] = self.flags;
        f[14..16].copy_from_slice(&self.window.to_be_bytes());
        f[16..18].copy_from_slice(&self.csum.to_be_bytes());
        f[18..20].copy_from_slice(&self.urgent.to_be_bytes());
        opts.copy_from_slice(self.options());
        len
    }
}

/// Iterator over TCP options; yields an error for a malformed option and
/// then stops.
pub struct TcpOptionIter<'a> {
    rest: &'a [u8],
}

impl Iterator for TcpOptionIter<'_> {
    type Item = Result<TcpOption, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after) = self.rest.split_first()?;
        match kind {
            0 => {
                self.rest = &[];
                return None;
            }
            1 => {
                self.rest = after;
                return Some(Ok(TcpOption::Nop));
            }
            _ => {}
        }
        let bad = ParseError::BadLength(HeaderKind::Tcp);
        let len = match after.first() {
            Some(&l) if l >= 2 && usize::from(l) <= self.rest.len() => usize::from(l),
            _ => {
                self.rest = &[];
                return Some(Err(bad));
            }
        };
        let (opt, rest) = self.rest.split_at(len);
        self.rest = rest;
        let body = opt.get(2..).unwrap_or(&[]);
        let o = match (kind, body.len()) {
            (2, 2) => TcpOption::Mss(u16::from_be_bytes([body[0], body[1]])),
            (3, 1) => TcpOption::WindowScale(body[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, n) if n % 8 == 0 && (8..=32).contains(&n) => {
                let mut blocks = [(0, 0); 4];
                for (b, c) in blocks.iter_mut().zip(body.chunks_exact(8)) {
                    *b = (
                        u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                        u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                    );
                }
                TcpOption::Sack { blocks, count: (n / 8) as u8 }
            }
            (8, 8) => TcpOption::Timestamps {
                val: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                ecr: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
            },
            (2..=5 | 8, _) => {
                self.rest = &[];
                return Some(Err(bad));
            }
            _ => TcpOption::Unknown { kind, len: len as u8 },
        };
        Some(Ok(o))
    }
}

/// Write a list of options into an options area, padding with End of
/// Option List to a multiple of 4 bytes. Returns the padded length, or
/// None when it does not fit in [`MAX_TCP_OPTIONS`] or a SACK option has
/// no blocks.
pub fn emit_tcp_options(opts: &[TcpOption], out: &mut [u8; MAX_TCP_OPTIONS]) -> Option<usize> {
    let mut n = 0usize;
    for o in opts {
        let mut buf = [0u8; 34];
        let w = match *o {
            TcpOption::Nop => {
                buf[0] = 1;
                1
            }
            TcpOption::Mss(m) => {
                buf[..2].copy_from_slice(&[2, 4]);
                buf[2..4].copy_from_slice(&m.to_be_bytes());
                4
            }
            TcpOption::WindowScale(s) => {
                buf[..3].copy_from_slice(&[3, 3, s]);
                3
            }
            TcpOption::SackPermitted => {
                buf[..2].copy_from_slice(&[4, 2]);
                2
            }
            TcpOption::Sack { blocks, count } => {
                // A SACK option carries one to four blocks.
                if count == 0 {
                    return None;
                }
                let c = usize::from(count.min(4));
                buf[0] = 5;
                buf[1] = (2 + 8 * c) as u8;
                for (i, (l, r)) in blocks.iter().take(c).enumerate() {
                    buf[2 + 8 * i..6 + 8 * i].copy_from_slice(&l.to_be_bytes());
                    buf[6 + 8 * i..10 + 8 * i].copy_from_slice(&r.to_be_bytes());
                }
                2 + 8 * c
            }
            TcpOption::Timestamps { val, ecr } => {
                buf[..2].copy_from_slice(&[8, 10]);
                buf[2..6].copy_from_slice(&val.to_be_bytes());
                buf[6..10].copy_from_slice(&ecr.to_be_bytes());
                10
            }
            TcpOption::Unknown { kind, len } => {
                let l = usize::from(len).clamp(2, buf.len());
                buf[0] = kind;
                buf[1] = l as u8;
                l
            }
        };
        out.get_mut(n..n + w)?.copy_from_slice(buf.get(..w)?);
        n += w;
    }
    let padded = n.div_ceil(4) * 4;
    out.get_mut(n..padded)?.fill(0);
    Some(padded)
}
