//! Error paths end to end: each answered with one line naming what failed
//! and why, a non-zero exit, and nothing changed.

mod common;
use common::*;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;

use opte_api::cmd::{encode, errno};
use opte_api::{API_VERSION, MAX_REQ_LEN, MIN_RESP_LEN, OpteCmd, OpteCmdIoctl, OpteError};
use opte_ioctl::{Endpoint, OpteHdl};
use oxide_vpc::cmd::{DumpV2pResp, ListPortsResp, SetV2pReq};
use serde_json::json;
use xde_host::Access;

fn hdl(h: &Host) -> OpteHdl {
    OpteHdl::new(Endpoint::Socket(h.sock.clone()))
}

fn ports(h: &Host) -> serde_json::Value {
    h.json(&["list-ports", "--json"])
}

#[test]
fn ports_missing_duplicate_and_underlay_in_use() {
    let h = Host::start("err-ports");
    let e = h.fails(&strs(&create_args("xde0")));
    assert_eq!(
        e,
        "opteadm: create-xde xde0: the underlay is not set (run set-xde-underlay first)\n"
    );
    let e = h.fails(&["set-xde-underlay", "igb0", "igb0"]);
    assert!(e.contains("must differ"), "{e}");
    let e = h.fails(&["set-xde-underlay", "igb0", "bad/name1"]);
    assert!(e.contains("bad name \"bad/name1\""), "{e}");
    h.ok(&["set-xde-underlay", "igb0", "igb1"]);
    h.ok(&strs(&create_args("xde0")));

    let e = h.fails(&strs(&create_args("xde0")));
    assert_eq!(e, "opteadm: create-xde xde0: port xde0 already exists\n");
    let e = h.fails(&strs(&create_args("xde")));
    assert!(e.contains("ends with a digit"), "{e}");
    for args in [
        vec!["delete-xde", "nope0"],
        vec!["list-layers", "-p", "nope0"],
        vec!["add-fw-rule", "-p", "nope0", "dir=in", "action=allow", "priority=1"],
        vec!["dump-port", "-p", "nope0"],
        vec!["stats", "-p", "nope0", "--json"],
    ] {
        let e = h.fails(&args);
        assert!(e.ends_with(": no such port: nope0\n"), "{args:?}: {e}");
        assert!(e.starts_with(&format!("opteadm: {}", args[0])), "{e}");
    }
    let e = h.fails(&["dump-layer", "-p", "xde0", "nolayer"]);
    assert!(e.contains("no layer named nolayer"), "{e}");

    let e = h.fails(&["clear-xde-underlay"]);
    assert_eq!(
        e,
        "opteadm: clear-xde-underlay: the underlay is in use by 1 port(s); delete them first\n"
    );
    let e = h.fails(&["set-xde-underlay", "igb2", "igb3"]);
    assert!(e.contains("in use by 1 port"), "{e}");
    let j = ports(&h);
    assert_eq!(j["underlay"], json!({"u1": "igb0", "u2": "igb1"}), "unchanged");
    assert_eq!(j["ports"].as_array().unwrap().len(), 1);
    h.ok(&["delete-xde", "xde0"]);
    h.ok(&["clear-xde-underlay"]);
    let e = h.fails(&["clear-xde-underlay"]);
    assert!(e.contains("not set"), "{e}");
}

#[test]
fn bad_rule_syntax_points_at_the_field() {
    let h = Host::start("err-rules");
    h.ok(&["set-xde-underlay", "igb0", "igb1"]);
    h.ok(&strs(&create_args("xde0")));
    let e = h.fails(&[
        "add-fw-rule",
        "-p",
        "xde0",
        "dir=in",
        "action=allow",
        "priority=10",
        "protocol=TCP",
        "port=22x",
    ]);
    assert!(e.contains("field `port=22x`"), "{e}");
    let e = h.fails(&["add-fw-rule", "-p", "xde0", "dir=up", "action=allow", "priority=10"]);
    assert!(e.contains("field `dir=up`: expected in or out"), "{e}");
    let e = h.fails(&["add-fw-rule", "-p", "xde0", "action=allow", "priority=10"]);
    assert!(e.contains("field `dir`: missing"), "{e}");
    let rules = "dir=in action=allow priority=10\n\
                 dir=in action=allow priority=10 hosts=subnet=10.0.0.1/24\n";
    let e = h.fails_in(&["set-fw-rules", "-p", "xde0"], Some(rules));
    assert!(e.contains("line 2: field `hosts=subnet=10.0.0.1/24`"), "{e}");
    // Nothing changed.
    assert_eq!(h.json(&["dump-port", "-p", "xde0"])["fw_rules"], json!([]));
}

#[test]
fn version_mismatch_names_both_versions() {
    let h = Host::start("err-version");
    let mut hdr = OpteCmdIoctl::new(OpteCmd::ListPorts, 0, MIN_RESP_LEN);
    hdr.api_version = API_VERSION + 41;
    let r = hdl(&h).send_raw(&hdr, &[]).unwrap();
    assert_eq!(r.errno, errno::EPROTO);
    let e = r.decode::<ListPortsResp>(OpteCmd::ListPorts).unwrap_err();
    assert_eq!(e, OpteError::VersionMismatch { client: API_VERSION + 41, driver: API_VERSION });
    let m = e.to_string();
    assert!(m.contains(&format!("version {}", API_VERSION + 41)), "{m}");
    assert!(m.contains(&format!("version {API_VERSION}")), "{m}");
    // The version query itself works across versions.
    let mut v = OpteCmdIoctl::new(OpteCmd::ApiVersion, 0, MIN_RESP_LEN);
    v.api_version = 999;
    let r = hdl(&h).send_raw(&v, &[]).unwrap();
    assert_eq!(r.decode::<u64>(OpteCmd::ApiVersion), Ok(API_VERSION));
    let out = h.ok(&["--version"]);
    assert_eq!(
        out,
        format!(
            "opteadm {} (API version {API_VERSION})\ndriver API version {API_VERSION}\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn truncated_garbage_and_unknown_requests() {
    let h = Host::start("err-garbage");
    let c = hdl(&h);
    // The header names more bytes than arrive.
    let hdr = OpteCmdIoctl::new(OpteCmd::SetXdeUnderlay, 100, MIN_RESP_LEN);
    let r = c.send_raw(&hdr, &[1, 2, 3]).unwrap();
    assert_eq!(r.errno, errno::EINVAL);
    let e = r.decode::<()>(OpteCmd::SetXdeUnderlay).unwrap_err();
    assert!(e.to_string().contains("truncated request: 3 of 100 bytes"), "{e}");
    // Bytes that are no request.
    for body in [&[0xffu8; 7][..], &[3, b'i', b'g', b'b'][..], &[][..]] {
        let hdr = OpteCmdIoctl::new(OpteCmd::SetXdeUnderlay, body.len() as u64, MIN_RESP_LEN);
        let r = c.send_raw(&hdr, body).unwrap();
        assert_eq!(r.errno, errno::EINVAL, "{body:?}");
        let e = r.decode::<()>(OpteCmd::SetXdeUnderlay).unwrap_err();
        assert!(matches!(e, OpteError::Malformed { .. }), "{e}");
        assert!(e.to_string().starts_with("malformed set-xde-underlay request"), "{e}");
    }
    // A good body with trailing garbage.
    let mut body =
        encode(&oxide_vpc::cmd::SetXdeUnderlayReq { u1: "a0".into(), u2: "b0".into() }).unwrap();
    body.push(0);
    let hdr = OpteCmdIoctl::new(OpteCmd::SetXdeUnderlay, body.len() as u64, MIN_RESP_LEN);
    let e = c.send_raw(&hdr, &body).unwrap().decode::<()>(OpteCmd::SetXdeUnderlay).unwrap_err();
    assert!(e.to_string().contains("trailing"), "{e}");
    // An unknown command code and unknown flags.
    let mut hdr = OpteCmdIoctl::new(OpteCmd::ListPorts, 0, MIN_RESP_LEN);
    hdr.cmd = 7777;
    let r = c.send_raw(&hdr, &[]).unwrap();
    assert_eq!(r.errno, errno::ENOTSUP);
    assert_eq!(r.decode::<()>(OpteCmd::ListPorts), Err(OpteError::UnknownCommand(7777)));
    let mut hdr = OpteCmdIoctl::new(OpteCmd::ListPorts, 0, MIN_RESP_LEN);
    hdr.flags = 4;
    let r = c.send_raw(&hdr, &[]).unwrap();
    assert_eq!(r.decode::<ListPortsResp>(OpteCmd::ListPorts), Err(OpteError::BadFlags(4)));
    // Half a header: the server closes without answering.
    let mut s = UnixStream::connect(&h.sock).unwrap();
    s.write_all(&[1, 0, 0, 0, 0, 0]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // The server is alive and nothing changed.
    assert_eq!(ports(&h), json!({"underlay": null, "ports": []}));
}

#[test]
fn oversized_requests_are_refused() {
    let h = Host::start("err-big");
    let c = hdl(&h);
    // The header alone says too much: refused without reading the body.
    let hdr = OpteCmdIoctl::new(OpteCmd::SetFwRules, MAX_REQ_LEN + 1, MIN_RESP_LEN);
    let r = c.send_raw(&hdr, &[0; 64]).unwrap();
    assert_eq!(r.errno, errno::E2BIG);
    let e = r.decode::<()>(OpteCmd::SetFwRules).unwrap_err();
    assert_eq!(e, OpteError::RequestTooLarge { len: MAX_REQ_LEN + 1, max: MAX_REQ_LEN });
    assert!(e.to_string().contains("larger than the limit"), "{e}");
    // The client refuses to send one.
    let big = oxide_vpc::cmd::TraceReq {
        port: "xde0".into(),
        dir: opte_api::Direction::Out,
        frame: vec![0; MAX_REQ_LEN as usize + 10],
    };
    let e = c.call::<_, ()>(OpteCmd::Trace, &big).unwrap_err();
    assert!(matches!(e, OpteError::RequestTooLarge { .. }), "{e}");
    // A list past its limit is refused while decoding.
    h.ok(&["set-xde-underlay", "igb0", "igb1"]);
    h.ok(&strs(&create_args("xde0")));
    let rule: oxide_vpc::api::FirewallRule = "dir=in action=deny priority=1".parse().unwrap();
    let req = oxide_vpc::cmd::SetFwRulesReq { port: "xde0".into(), rules: vec![rule; 4097] };
    let e = c.call::<_, ()>(OpteCmd::SetFwRules, &req).unwrap_err();
    assert!(e.to_string().contains("a list longer than its limit"), "{e}");
    assert_eq!(h.json(&["dump-port", "-p", "xde0"])["fw_rules"], json!([]));
}

#[test]
fn a_large_reply_is_fetched_again_with_a_bigger_buffer() {
    let h = Host::start("err-reply");
    let c = hdl(&h);
    for i in 0..200u32 {
        let mapping = oxide_vpc::api::V2pMapping {
            vni: opte_api::Vni::new(7777).unwrap(),
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)),
            mac: "a8:40:25:00:00:01".parse().unwrap(),
            host: "fd77::b".parse().unwrap(),
        };
        c.call::<_, ()>(OpteCmd::SetV2p, &SetV2pReq { mapping }).unwrap();
    }
    let hdr = OpteCmdIoctl::new(OpteCmd::DumpV2p, 1, MIN_RESP_LEN);
    let r = c.send_raw(&hdr, &encode(&()).unwrap()).unwrap_or_else(|e| panic!("{e}"));
    // `()` encodes to no bytes: the header's 1 is a lie.
    assert_eq!(r.errno, errno::EINVAL);
    let hdr = OpteCmdIoctl::new(OpteCmd::DumpV2p, 0, MIN_RESP_LEN);
    let r = c.send_raw(&hdr, &[]).unwrap();
    assert_eq!(r.errno, errno::ENOBUFS);
    assert!(r.hdr.resp_len_needed > MIN_RESP_LEN, "{}", r.hdr.resp_len_needed);
    let all: DumpV2pResp = c.call(OpteCmd::DumpV2p, &()).unwrap();
    assert_eq!(all.mappings.len(), 200);
    assert_eq!(h.json(&["dump-v2p", "--json"])["mappings"].as_array().unwrap().len(), 200);
    // A change with too small a reply buffer is refused before it applies.
    let mapping = all.mappings[0];
    let body = encode(&SetV2pReq { mapping }).unwrap();
    let hdr = OpteCmdIoctl::new(OpteCmd::ClearV2p, body.len() as u64, 8);
    let r = c.send_raw(&hdr, &body).unwrap();
    assert_eq!(r.errno, errno::ENOBUFS);
    assert_eq!(r.hdr.resp_len_needed, MIN_RESP_LEN);
}

#[test]
fn the_socket_is_private_and_other_users_change_nothing() {
    let h = Host::start("err-perm");
    let meta = std::fs::metadata(&h.sock).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "created mode 0600");
    if !is_root() {
        eprintln!("skipped: the other-user half needs root");
        return;
    }
    h.ok(&["set-xde-underlay", "igb0", "igb1"]);
    // Make the socket reachable, as a mistaken chmod would.
    std::fs::set_permissions(&h.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&h.sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let nobody = Some((65534, 65534));
    for args in [strs(&create_args("xde0")), vec!["clear-xde-underlay"], vec!["list-ports"]] {
        let o = run_opteadm(&h.sock, &args, None, nobody);
        assert!(!o.status.success(), "{args:?} as nobody");
        let e = expect_one_error_line(&o);
        assert!(e.contains("permission denied: uid 65534 is not root"), "{args:?}: {e}");
    }
    let j = ports(&h);
    assert_eq!(j["ports"], json!([]), "nothing created");
    assert_eq!(j["underlay"], json!({"u1": "igb0", "u2": "igb1"}), "nothing cleared");
}

#[test]
fn a_group_may_be_allowed() {
    let h = Host::start_with("err-group", Access::with_group("nogroup").unwrap());
    let meta = std::fs::metadata(&h.sock).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 65534);
    if !is_root() {
        eprintln!("skipped: the other-user half needs root");
        return;
    }
    std::fs::set_permissions(&h.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = run_opteadm(&h.sock, &["list-ports", "--json"], None, Some((65534, 65534)));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Another user outside the group is refused.
    let o = run_opteadm(&h.sock, &["set-xde-underlay", "igb0", "igb1"], None, Some((65533, 65533)));
    if o.status.success() {
        panic!("uid 65533 outside nogroup was let in");
    }
    let e = String::from_utf8_lossy(&o.stderr);
    // Not in the group: no access to the 0660 socket at all, or refused
    // by the peer check.
    assert!(e.contains("Permission denied") || e.contains("permission denied"), "{e}");
    assert_eq!(ports(&h)["underlay"], json!(null));
}
