//! Pcap files in and out (classic libpcap format, Ethernet link type),
//! with `pcap-file`. Input files must be Ethernet captures; every frame
//! in one becomes an injection.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

use crate::config::{MAX_FRAME_LEN, MAX_INJECTIONS};

/// Read every frame of an Ethernet pcap file.
pub fn read(path: &Path) -> Result<Vec<Vec<u8>>> {
    let file =
        File::open(path).with_context(|| format!("cannot open pcap file {}", path.display()))?;
    let mut r = PcapReader::new(BufReader::new(file))
        .with_context(|| format!("{} is not a pcap file", path.display()))?;
    let link = r.header().datalink;
    if link != DataLink::ETHERNET {
        bail!("{}: link type {link:?}, not Ethernet", path.display());
    }
    let mut frames = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.with_context(|| {
            format!("{}: frame {} is damaged", path.display(), frames.len() + 1)
        })?;
        if p.data.len() != p.orig_len as usize {
            bail!(
                "{}: frame {} was captured truncated ({} of {} bytes)",
                path.display(),
                frames.len() + 1,
                p.data.len(),
                p.orig_len
            );
        }
        if p.data.len() < 14 || p.data.len() > MAX_FRAME_LEN {
            bail!("{}: frame {} has {} bytes", path.display(), frames.len() + 1, p.data.len());
        }
        if frames.len() >= MAX_INJECTIONS {
            bail!("{}: more than {MAX_INJECTIONS} frames", path.display());
        }
        frames.push(p.data.into_owned());
    }
    Ok(frames)
}

/// Write frames with their timestamps as an Ethernet pcap file.
pub fn write(path: &Path, frames: &[(Duration, Vec<u8>)]) -> Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = PcapWriter::new(BufWriter::new(file))
        .with_context(|| format!("cannot write {}", path.display()))?;
    for (ts, f) in frames {
        let len = u32::try_from(f.len()).context("frame too long for pcap")?;
        w.write_packet(&PcapPacket::new(*ts, len, f))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
