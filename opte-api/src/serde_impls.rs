//! Serde support for the address types: each is written as the text an
//! operator would type (`a8:40:25:00:00:01`, `10.0.0.0/24`) in every
//! encoding, so JSON reads well and a postcard request decodes through
//! the same checks as the command line (a CIDR with host bits set, a
//! malformed MAC or a VNI above 24 bits is refused while decoding).

use core::fmt;
use core::marker::PhantomData;
use core::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::{IpCidr, Ipv4Cidr, Ipv6Cidr, MacAddr, Vni};

/// Accepts a string and parses it with `FromStr`.
struct ParseVisitor<T>(PhantomData<T>, &'static str);

impl<T> Visitor<'_> for ParseVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        s.parse().map_err(|e| E::custom(format_args!("{s:?}: {e}")))
    }
}

macro_rules! serde_as_text {
    ($($ty:ty => $what:literal),* $(,)?) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(ParseVisitor(PhantomData, $what))
            }
        }
    )*};
}

serde_as_text!(
    MacAddr => "a MAC address such as a8:40:25:00:00:01",
    Ipv4Cidr => "an IPv4 CIDR block such as 10.0.0.0/24",
    Ipv6Cidr => "an IPv6 CIDR block such as fd00::/64",
    IpCidr => "a CIDR block such as 10.0.0.0/24 or fd00::/64",
);

impl Serialize for Vni {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.value())
    }
}

impl<'de> Deserialize<'de> for Vni {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        Vni::new(v).map_err(de::Error::custom)
    }
}
