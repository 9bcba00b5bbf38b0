//! The `opte-sim` command as an operator runs it: `--help` documents
//! every flag and the formats, the example runs as text and as JSON, and
//! bad input is an error message and exit status 1, never a panic.

use std::process::Command;

fn sim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opte-sim"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    c
}

#[test]
fn help_documents_every_flag_and_the_formats() {
    let out = sim().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "--json",
        "--out",
        "--inject ",
        "--inject-pcap",
        "--reply",
        "--time",
        "--no-config-packets",
        "--max-hops",
        "--layer-xforms",
        "examples/two-hosts.json",
        "phys_ip",
        "PortSpec",
        "v2p",
        "v2b",
        "boundaries",
        "HOST/PORT",
        "internet.pcap",
        "HOST-underlay.pcap",
        "DROPPED",
    ] {
        assert!(text.contains(word), "--help does not mention {word:?}");
    }
}

#[test]
fn the_example_runs_as_text_and_as_json() {
    let out = sim().arg("examples/two-hosts.json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("=> ANSWERED by sled-a/xde0 (hairpin)"));
    assert!(text.contains("=> TO INTERNET through boundary"));
    assert!(text.contains("gateway   rule "), "layer decisions are shown");

    let out = sim().args(["examples/two-hosts.json", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["packets"].as_array().unwrap().len() >= 10);
}

#[test]
fn a_frame_given_on_the_command_line_is_injected_after_the_config() {
    // Guest A pings guest B, who answers.
    let b = etherparse::PacketBuilder::ethernet2(
        [0xa8, 0x40, 0x25, 0xf7, 0x00, 0x05],
        [0xa8, 0x40, 0x25, 0xff, 0x77, 0x77],
    )
    .ipv4([172, 30, 0, 5], [172, 30, 0, 9], 64)
    .icmpv4_echo_request(7, 1);
    let mut f = Vec::new();
    b.write(&mut f, b"cli").unwrap();
    let hex: String = f.iter().map(|x| format!("{x:02x}")).collect();
    let out = sim()
        .args(["examples/two-hosts.json", "--no-config-packets", "--reply", "--inject"])
        .arg(format!("sled-a/xde0={hex}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("#1 --inject sled-a/xde0"), "{text}");
    assert!(text.contains("=> DELIVERED to sled-b/xde0"), "{text}");
    assert!(text.contains("=> answer DELIVERED to sled-a/xde0"), "{text}");
}

#[test]
fn bad_input_is_an_error_message_not_a_panic() {
    let out = sim().arg("no/such/config.json").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("opte-sim: cannot read config no/such/config.json"), "{err}");

    let out = sim().args(["examples/two-hosts.json", "--inject", "sled-a/xde0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains("expected AT=VALUE"));

    let out =
        sim().args(["examples/two-hosts.json", "--inject", "nowhere=00112233"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not HOST/PORT, a host or a boundary"), "{err}");
    assert!(!err.contains("panicked"));
}
