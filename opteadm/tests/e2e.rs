//! Every opteadm subcommand end to end: an xde-host control server on a
//! temporary socket, opteadm run as a subprocess, and both the table and
//! the `--json` output checked against the state the test set up.

mod common;
use common::*;

use opte::ddi::MsgBlk;
use opte::engine::port::ProcessResult;
use opte::engine::{Direction, Moment};
use opte::packet::Packet;
use serde_json::json;

/// A TCP SYN from the standard guest to 172.30.0.9:443, through the port.
fn send_syn(h: &Host, port: &str) {
    let p = h.server().driver().port(port).expect("port exists");
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2(
        [0xa8, 0x40, 0x25, 0xf7, 0x00, 0x05],
        [0xa8, 0x40, 0x25, 0xff, 0x77, 0x77],
    )
    .ipv4([172, 30, 0, 5], [172, 30, 0, 9], 64)
    .tcp(40000, 443, 1, 64240)
    .syn()
    .write(&mut frame, &[])
    .unwrap();
    let m = MsgBlk::from_bytes(64, &frame).unwrap();
    let mut pkt = Packet::parse_guest(m).map_err(|f| f.error).unwrap();
    let res = p.process(Direction::Out, &mut pkt, Moment(1_000_000_000));
    assert!(matches!(res, ProcessResult::Modified), "the SYN passes: {res:?}");
}

#[test]
fn ports_and_underlay() {
    let h = Host::start("ports");
    let t = h.ok(&["list-ports"]);
    assert!(t.starts_with("underlay: not set\nNAME"), "{t}");
    assert_eq!(h.json(&["list-ports", "--json"]), json!({"underlay": null, "ports": []}));

    h.ok(&["set-xde-underlay", "igb0", "igb1"]);
    h.ok(&strs(&create_args("xde0")));
    // A second port from a configuration file (dump-port's "cfg").
    let spec = h.json(&["dump-port", "-p", "xde0"]);
    let mut cfg = spec["cfg"].clone();
    cfg["guest_mac"] = json!("a8:40:25:f7:00:06");
    cfg["ipv4"]["private_ip"] = json!("172.30.0.6");
    cfg["ipv6"] = json!(null);
    let file = h.dir.join("cfg.json");
    std::fs::write(&file, cfg.to_string()).unwrap();
    h.ok(&["create-xde", "xde1", "--cfg", file.to_str().unwrap()]);

    let t = h.ok(&["list-ports"]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "underlay: igb0 igb1");
    assert_eq!(lines[1], "NAME  MAC                VNI   IPv4        IPv6     UNDERLAY IP  STATE");
    assert_eq!(
        lines[2],
        "xde0  a8:40:25:f7:00:05  7777  172.30.0.5  fd00::5  fd77::a      running"
    );
    assert_eq!(
        lines[3],
        "xde1  a8:40:25:f7:00:06  7777  172.30.0.6  -        fd77::a      running"
    );
    assert_eq!(lines.len(), 4);
    let j = h.json(&["list-ports", "--json"]);
    assert_eq!(j["underlay"], json!({"u1": "igb0", "u2": "igb1"}));
    assert_eq!(
        j["ports"][0],
        json!({"name": "xde0", "mac": "a8:40:25:f7:00:05", "vni": 7777, "ipv4": "172.30.0.5",
               "ipv6": "fd00::5", "phys_ip": "fd77::a", "state": "running"})
    );
    assert_eq!(j["ports"][1]["ipv6"], json!(null));

    // The port's whole configuration is what the flags said.
    let spec = h.json(&["dump-port", "-p", "xde0", "--json"]);
    assert_eq!(spec["name"], "xde0");
    assert_eq!(spec["cfg"]["ipv4"]["external"]["snat"]["first_port"], 1025);
    assert_eq!(spec["cfg"]["dhcp"]["hostname"], "guest-a");
    assert_eq!(spec["cfg"]["dhcp"]["dns4"], json!(["8.8.8.8"]));

    h.ok(&["delete-xde", "xde1"]);
    h.ok(&["delete-xde", "xde0"]);
    h.ok(&["clear-xde-underlay"]);
    assert_eq!(h.json(&["list-ports", "--json"]), json!({"underlay": null, "ports": []}));
}

#[test]
fn firewall_rules() {
    let h = Host::start("fw");
    h.ok(&["set-xde-underlay", "igb0", "igb1"]);
    h.ok(&strs(&create_args("xde0")));
    let id = h.ok(&[
        "add-fw-rule",
        "-p",
        "xde0",
        "dir=in",
        "action=allow",
        "priority=10",
        "protocol=TCP",
        "port=22",
        "hosts=subnet=10.0.0.0/24",
    ]);
    let id: u64 = id.trim().parse().expect("add-fw-rule prints the id");
    let text = "dir=in action=allow priority=10 protocol=TCP port=22 hosts=subnet=10.0.0.0/24";
    let t = h.ok(&["dump-layer", "-p", "xde0", "firewall"]);
    let row = t.lines().find(|l| l.starts_with(&format!("{id} "))).expect("the rule's row");
    assert!(row.ends_with(text), "{row}");
    assert!(t.starts_with("layer firewall\n\ninbound rules (default deny; 0 flows)\n"), "{t}");
    let j = h.json(&["dump-layer", "-p", "xde0", "firewall", "--json"]);
    assert_eq!(j["name"], "firewall");
    assert_eq!(j["default_in"], "deny");
    let rules = j["rules_in"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["id"], id);
    assert_eq!(rules[0]["priority"], 10);
    assert_eq!(rules[0]["rule"], text);

    h.ok(&["rm-fw-rule", "-p", "xde0", "in", &id.to_string()]);
    let j = h.json(&["dump-layer", "-p", "xde0", "firewall", "--json"]);
    assert_eq!(j["rules_in"], json!([]));
    let e = h.fails(&["rm-fw-rule", "-p", "xde0", "in", &id.to_string()]);
    assert!(e.contains(&format!("no inbound firewall rule {id}")), "{e}");

    let rules = "# web\n\
                 dir=in action=allow priority=10 protocol=TCP port=80,443\n\
                 \n\
                 dir=in action=deny priority=5 hosts=ip=10.0.0.66\n\
                 dir=out action=deny priority=100 protocol=UDP port=53\n";
    h.ok_in(&["set-fw-rules", "-p", "xde0"], Some(rules));
    let spec = h.json(&["dump-port", "-p", "xde0"]);
    let texts: Vec<String> = spec["fw_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_value::<oxide_vpc::api::FirewallRule>(r.clone()).unwrap().to_string()
        })
        .collect();
    assert_eq!(
        texts,
        [
            "dir=in action=allow priority=10 protocol=TCP port=80,443",
            "dir=in action=deny priority=5 hosts=ip=10.0.0.66",
            "dir=out action=deny priority=100 protocol=UDP port=53",
        ]
    );
    let j = h.json(&["list-layers", "-p", "xde0", "--json"]);
    let fw = j["layers"].as_array().unwrap().iter().find(|l| l["name"] == "firewall").unwrap();
    assert_eq!((fw["rules_in"].as_u64(), fw["rules_out"].as_u64()), (Some(2), Some(1)));
}

#[test]
fn routes_mappings_and_addresses() {
    let h = Host::start("routes");
    h.ok(&["set-xde-underlay", "igb0", "igb1"]);
    h.ok(&strs(&create_args("xde0")));

    h.ok(&[
        "add-router-entry",
        "-p",
        "xde0",
        "172.30.0.0/22",
        "subnet=172.30.0.0/22",
        "--class",
        "system",
    ]);
    h.ok(&["add-router-entry", "-p", "xde0", "0.0.0.0/0", "igw", "--class", "system"]);
    h.ok(&["add-router-entry", "-p", "xde0", "10.1.0.0/16", "ip=172.30.0.9"]);
    h.ok(&["add-router-entry", "-p", "xde0", "10.2.0.0/16", "drop"]);
    h.ok(&["del-router-entry", "-p", "xde0", "10.2.0.0/16", "drop"]);
    let spec = h.json(&["dump-port", "-p", "xde0"]);
    assert_eq!(
        spec["routes"],
        json!([
            {"dest": "172.30.0.0/22", "target": {"vpc-subnet": "172.30.0.0/22"}, "class": "system"},
            {"dest": "0.0.0.0/0", "target": {"internet-gateway": null}, "class": "system"},
            {"dest": "10.1.0.0/16", "target": {"ip": "172.30.0.9"}, "class": "custom"},
        ])
    );

    h.ok(&["set-v2p", "172.30.0.9", "a8:40:25:f7:00:09", "fd77::b", "7777"]);
    h.ok(&["set-v2p", "fd00::9", "a8:40:25:f7:00:09", "fd77::b", "7777"]);
    let t = h.ok(&["dump-v2p"]);
    assert_eq!(
        t,
        "VNI   IP          MAC                HOST\n\
         7777  172.30.0.9  a8:40:25:f7:00:09  fd77::b\n\
         7777  fd00::9     a8:40:25:f7:00:09  fd77::b\n"
    );
    let j = h.json(&["dump-v2p", "--json"]);
    assert_eq!(
        j["mappings"][0],
        json!({"vni": 7777, "ip": "172.30.0.9", "mac": "a8:40:25:f7:00:09", "host": "fd77::b"})
    );
    h.ok(&["clear-v2p", "fd00::9", "7777"]);
    assert_eq!(h.json(&["dump-v2p", "--json"])["mappings"].as_array().unwrap().len(), 1);
    let e = h.fails(&["clear-v2p", "fd00::9", "7777"]);
    assert!(e.contains("no V2P mapping for fd00::9 on VNI 7777"), "{e}");

    h.ok(&["set-v2b", "0.0.0.0/0", "fd77::99", "fd77::98"]);
    let t = h.ok(&["dump-v2b"]);
    assert_eq!(t, "PREFIX     BOUNDARIES\n0.0.0.0/0  fd77::99 (VNI 99), fd77::98 (VNI 99)\n");
    let j = h.json(&["dump-v2b", "--json"]);
    assert_eq!(
        j,
        json!({"mappings": [{"prefix": "0.0.0.0/0", "boundaries": [
            {"ip": "fd77::99", "vni": 99}, {"ip": "fd77::98", "vni": 99}]}]})
    );
    h.ok(&["clear-v2b", "0.0.0.0/0"]);
    assert_eq!(h.json(&["dump-v2b", "--json"]), json!({"mappings": []}));

    h.ok(&[
        "set-external-ips",
        "-p",
        "xde0",
        "--ephemeral-ip",
        "10.9.9.9",
        "--floating-ip",
        "10.9.9.10",
    ]);
    let ext = h.json(&["dump-port", "-p", "xde0"])["cfg"]["ipv4"]["external"].clone();
    assert_eq!(ext["ephemeral_ip"], json!({"ip": "10.9.9.9", "igw": null}));
    assert_eq!(ext["floating_ips"], json!([{"ip": "10.9.9.10", "igw": null}]));
    assert_eq!(ext["snat"], json!(null), "the family's addresses are replaced");
    h.ok(&["set-external-ips", "-p", "xde0", "--clear", "v4"]);
    let ext = h.json(&["dump-port", "-p", "xde0"])["cfg"]["ipv4"]["external"].clone();
    assert_eq!(ext, json!({"snat": null, "ephemeral_ip": null, "floating_ips": []}));

    h.ok(&["allow-cidr", "-p", "xde0", "192.168.0.0/16", "out"]);
    let cfg = h.json(&["dump-port", "-p", "xde0"])["cfg"].clone();
    assert_eq!(cfg["transit"], json!([{"cidr": "192.168.0.0/16", "dir": "out"}]));
    let e = h.fails(&["allow-cidr", "-p", "xde0", "192.168.0.0/16", "out"]);
    assert!(e.contains("already configured"), "{e}");
    h.ok(&["remove-cidr", "-p", "xde0", "192.168.0.0/16", "out"]);
    assert_eq!(h.json(&["dump-port", "-p", "xde0"])["cfg"]["transit"], json!([]));

    h.ok(&["attach-subnet", "-p", "xde0", "172.31.0.0/24", "--external"]);
    let cfg = h.json(&["dump-port", "-p", "xde0"])["cfg"].clone();
    assert_eq!(cfg["attached_subnets"], json!([{"cidr": "172.31.0.0/24", "external": true}]));
    h.ok(&["detach-subnet", "-p", "xde0", "172.31.0.0/24"]);
    assert_eq!(h.json(&["dump-port", "-p", "xde0"])["cfg"]["attached_subnets"], json!([]));

    h.ok(&["add-peering", "-p", "xde0", "8888", "10.88.0.0/16", "fd88::/64"]);
    let cfg = h.json(&["dump-port", "-p", "xde0"])["cfg"].clone();
    assert_eq!(cfg["peerings"], json!([{"vni": 8888, "subnets": ["10.88.0.0/16", "fd88::/64"]}]));
    let e = h.fails(&["add-peering", "-p", "xde0", "8889", "172.30.1.0/24"]);
    assert!(e.contains("overlaps"), "{e}");
    h.ok(&["remove-peering", "-p", "xde0", "8888"]);
    assert_eq!(h.json(&["dump-port", "-p", "xde0"])["cfg"]["peerings"], json!([]));
}

#[test]
fn layers_flows_stats_and_trace() {
    let h = Host::start("flows");
    h.ok(&["set-xde-underlay", "igb0", "igb1"]);
    h.ok(&strs(&create_args("xde0")));
    h.ok(&[
        "add-router-entry",
        "-p",
        "xde0",
        "172.30.0.0/22",
        "subnet=172.30.0.0/22",
        "--class",
        "system",
    ]);
    h.ok(&["set-v2p", "172.30.0.9", "a8:40:25:f7:00:09", "fd77::b", "7777"]);

    let t = h.ok(&["list-layers", "-p", "xde0"]);
    let names: Vec<&str> =
        t.lines().skip(1).map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(names, ["gateway", "firewall", "router", "nat", "overlay"]);
    assert!(
        t.starts_with(
            "NAME      RULES IN  RULES OUT  FLOWS IN  FLOWS OUT  DEFAULT IN  DEFAULT OUT\n"
        ),
        "{t}"
    );
    let j = h.json(&["list-layers", "-p", "xde0", "--json"]);
    let jn: Vec<&str> =
        j["layers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(jn, names);

    // Empty tables.
    assert_eq!(
        h.json(&["dump-uft", "-p", "xde0", "--json"]),
        json!({"limit": 65536, "in_flows": [], "out_flows": []})
    );
    assert_eq!(h.json(&["dump-tcp-flows", "-p", "xde0", "--json"]), json!({"flows": []}));

    // Trace explains without changing anything.
    let t = h.ok(&["trace", "-p", "xde0", "tcp", "172.30.0.5:40000", "->", "172.30.0.9:443"]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "flow TCP 172.30.0.5:40000 -> 172.30.0.9:443");
    let layers: Vec<&str> =
        lines[1..lines.len() - 1].iter().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(layers, ["gateway", "firewall", "router", "nat", "overlay"], "{t}");
    assert_eq!(*lines.last().unwrap(), "-> pass", "{t}");
    let j = h.json(&[
        "trace",
        "-p",
        "xde0",
        "--json",
        "tcp",
        "172.30.0.5:40000",
        "->",
        "172.30.0.9:443",
    ]);
    assert_eq!(j["verdict"], "pass");
    assert_eq!(j["steps"].as_array().unwrap().len(), 5);
    assert_eq!(j["flow"]["dst"], "172.30.0.9");
    let s = h.json(&["stats", "-p", "xde0", "--json"]);
    assert_eq!(s["port"]["out_processed"], 0, "trace changes no counter");
    assert_eq!(h.json(&["dump-uft", "-p", "xde0", "--json"])["out_flows"], json!([]));

    // One real packet makes a flow.
    send_syn(&h, "xde0");
    let u = h.json(&["dump-uft", "-p", "xde0", "--json"]);
    let out = u["out_flows"].as_array().unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0]["flow"],
        json!({"proto": 6, "src": "172.30.0.5", "dst": "172.30.0.9", "src_port": 40000, "dst_port": 443})
    );
    let t = h.ok(&["dump-uft", "-p", "xde0"]);
    assert!(t.starts_with("unified flow table: 0 in, 1 out (limit 65536 per direction)\n"), "{t}");
    assert!(t.contains("\nout  TCP 172.30.0.5:40000 -> 172.30.0.9:443  0"), "{t}");
    let tcp = h.json(&["dump-tcp-flows", "-p", "xde0", "--json"]);
    assert_eq!(tcp["flows"].as_array().unwrap().len(), 1);
    assert_eq!(tcp["flows"][0]["flow"]["dst_port"], 443);
    let state = tcp["flows"][0]["state"].as_str().unwrap().to_string();
    let t = h.ok(&["dump-tcp-flows", "-p", "xde0"]);
    assert_eq!(
        t,
        format!(
            "FLOW                                    STATE\nTCP 172.30.0.5:40000 -> 172.30.0.9:443  {state}\n"
        )
    );

    // Counters: the packet, and every drop reason named.
    let s = h.json(&["stats", "-p", "xde0", "--json"]);
    assert_eq!(s["port"]["out_processed"], 1);
    assert_eq!(s["port"]["modified"], 1);
    for k in ["drop_exhausted", "drop_table_full", "drop_denied_rule", "drop_parse"] {
        assert_eq!(s["port"][k], 0, "{k}");
    }
    let tables: Vec<&str> =
        s["tables"].as_array().unwrap().iter().map(|t| t[0].as_str().unwrap()).collect();
    assert!(tables.starts_with(&["uft_in", "uft_out", "tcp"]), "{tables:?}");
    assert_eq!(s["tables"][1][1]["len"], 1);
    let t = h.ok(&["stats", "-p", "xde0"]);
    assert!(t.contains("\nout_processed        1\n"), "{t}");
    assert!(t.contains("\ndrop_exhausted       0\n"), "{t}");
    assert!(t.contains("\nuft_out       1    65536  1 "), "{t}");

    // The layer flow tables hold the flow until cleared.
    let j = h.json(&["list-layers", "-p", "xde0", "--json"]);
    let fw = j["layers"][1].clone();
    assert_eq!(fw["name"], "firewall");
    assert_eq!(fw["lft_out"], 1);
    h.ok(&["clear-lft", "-p", "xde0", "firewall"]);
    assert_eq!(h.json(&["list-layers", "-p", "xde0", "--json"])["layers"][1]["lft_out"], 0);
    h.ok(&["clear-lft", "-p", "xde0"]);
    let e = h.fails(&["clear-lft", "-p", "xde0", "nosuchlayer"]);
    assert!(e.contains("no layer named nosuchlayer"), "{e}");
    h.ok(&["clear-uft", "-p", "xde0"]);
    assert_eq!(h.json(&["dump-uft", "-p", "xde0", "--json"])["out_flows"], json!([]));

    // A frame given as hex.
    let hex = "ffffffffffff a84025f70005 0806 0001 0800 0604 0001 a84025f70005 ac1e0005 000000000000 ac1e0001";
    let j = h.json(&["trace", "-p", "xde0", "--json", "--hex", hex]);
    assert_eq!(j["verdict"], "hairpin", "the gateway answers ARP: {j}");
    assert_eq!(j["flow"], json!(null));
}
