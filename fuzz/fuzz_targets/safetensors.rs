#![no_main]

use bert_fuzz::{check, fixtures, Target};

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(Target::Safetensors, data, fixtures()));
