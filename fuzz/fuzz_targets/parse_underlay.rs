#![no_main]
//! Fuzz the underlay (Geneve) parser over arbitrary bytes split into
//! blocks.

use libfuzzer_sys::fuzz_target;
use opte_fuzz::{Entry, run};

fuzz_target!(|data: &[u8]| run(data, Entry::Underlay));
