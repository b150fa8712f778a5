#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| swarmgate::fuzzing::dynamic_yaml(data));
