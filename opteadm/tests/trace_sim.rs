//! `opteadm trace` on a live port shows the same per-layer path as
//! `opte-sim` for the same configuration (the port's `dump-port` and the
//! host's `dump-v2p`) and the same frame.

mod common;
use common::*;

use serde_json::{Value, json};

/// The (layer, decision) pairs and the result of the first port pass in
/// an opte-sim report (found by shape, not by position).
fn sim_path(v: &Value) -> Option<(Vec<(String, String)>, String)> {
    match v {
        Value::Object(m) => {
            if let (Some(Value::Array(steps)), Some(Value::String(result))) =
                (m.get("steps"), m.get("result"))
            {
                let path = steps
                    .iter()
                    .filter(|s| s["step"] == "layer")
                    .map(|s| {
                        (
                            s["layer"].as_str().unwrap().to_string(),
                            s["decision"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect();
                return Some((path, result.clone()));
            }
            m.values().find_map(sim_path)
        }
        Value::Array(a) => a.iter().find_map(sim_path),
        _ => None,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn trace_matches_opte_sim() {
    let h = Host::start("trace-sim");
    h.ok(&["set-xde-underlay", "igb0", "igb1"]);
    h.ok(&strs(&create_args("xde0")));
    // The order opte-sim builds a port in: rules, then routes.
    let rules = "dir=out action=deny priority=100 protocol=UDP port=53\n\
                 dir=in action=allow priority=10 protocol=TCP port=22\n";
    h.ok_in(&["set-fw-rules", "-p", "xde0"], Some(rules));
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
    h.ok(&["set-v2p", "172.30.0.9", "a8:40:25:f7:00:09", "fd77::b", "7777"]);

    let spec = h.json(&["dump-port", "-p", "xde0"]);
    let v2p = h.json(&["dump-v2p", "--json"])["mappings"].clone();
    let cfg: oxide_vpc::api::VpcCfg = serde_json::from_value(spec["cfg"].clone()).unwrap();

    let mut compared = 0;
    for flow in [
        "tcp 172.30.0.5:40000 -> 172.30.0.9:443",
        "udp 172.30.0.5:5353 -> 172.30.0.9:53",
        "icmp 172.30.0.5 -> 172.30.0.9",
        "tcp 172.30.0.5:40000 -> 93.184.216.34:443",
    ] {
        let frame = opteadm::flow_frame(flow, &cfg).unwrap();
        let t = h.json(&["trace", "-p", "xde0", "--json", "--hex", &hex(&frame)]);
        let ours: Vec<(String, String)> = t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["layer"].as_str().unwrap().into(), s["decision"].as_str().unwrap().into()))
            .collect();

        let doc = json!({
            "hosts": [{"name": "sled-a", "phys_ip": "fd77::a", "ports": [spec.clone()], "v2p": v2p.clone()}],
            "packets": [{"at": "sled-a/xde0", "hex": hex(&frame)}],
        });
        let sim_cfg = opte_sim::config::SimConfig::parse(&doc.to_string()).unwrap();
        let (report, _) =
            opte_sim::run(&sim_cfg, std::path::Path::new("."), &Default::default()).unwrap();
        let report = serde_json::to_value(&report).unwrap();
        let (theirs, result) = sim_path(&report).expect("a port pass in the sim report");
        assert!(!ours.is_empty(), "{flow}: {t}");
        assert_eq!(ours, theirs, "{flow}: opteadm trace {t}\nopte-sim {report}");
        assert_eq!(t["verdict"], result, "{flow}");
        compared += 1;
    }
    assert_eq!(compared, 4);
}
