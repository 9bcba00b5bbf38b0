//! The address types travel as the text an operator types, in JSON and
//! in postcard alike, and malformed values are refused while decoding.

use opte_api::{Direction, IpCidr, Ipv4Cidr, MacAddr, Vni};

#[test]
fn json_reads_as_typed() {
    let mac: MacAddr = "a8:40:25:00:00:05".parse().unwrap();
    assert_eq!(serde_json::to_string(&mac).unwrap(), "\"a8:40:25:00:00:05\"");
    let c: IpCidr = "fd00::/64".parse().unwrap();
    assert_eq!(serde_json::to_string(&c).unwrap(), "\"fd00::/64\"");
    assert_eq!(serde_json::to_string(&Vni::new(99).unwrap()).unwrap(), "99");
    assert_eq!(serde_json::to_string(&Direction::In).unwrap(), "\"in\"");
    let back: Ipv4Cidr = serde_json::from_str("\"10.0.0.0/24\"").unwrap();
    assert_eq!(back.to_string(), "10.0.0.0/24");
}

#[test]
fn postcard_round_trips() {
    let v = (
        "a8:40:25:00:00:05".parse::<MacAddr>().unwrap(),
        "10.1.0.0/16".parse::<IpCidr>().unwrap(),
        Vni::new(0xff_ffff).unwrap(),
        Direction::Out,
    );
    let bytes = postcard::to_allocvec(&v).unwrap();
    let back: (MacAddr, IpCidr, Vni, Direction) = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, v);
}

#[test]
fn malformed_values_are_refused_with_the_reason() {
    let e = serde_json::from_str::<Ipv4Cidr>("\"10.0.0.5/24\"").unwrap_err().to_string();
    assert!(e.contains("10.0.0.5/24") && e.contains("bits set past the prefix"), "{e}");
    assert!(serde_json::from_str::<Vni>("16777216").is_err());
    assert!(serde_json::from_str::<MacAddr>("\"a8:40:25\"").is_err());
    assert!(serde_json::from_str::<Direction>("\"sideways\"").is_err());
    // A postcard VNI above 24 bits.
    let bytes = postcard::to_allocvec(&0x0100_0000u32).unwrap();
    assert!(postcard::from_bytes::<Vni>(&bytes).is_err());
}
