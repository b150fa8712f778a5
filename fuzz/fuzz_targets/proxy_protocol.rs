#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| swarmgate::fuzzing::proxy_protocol(data));
