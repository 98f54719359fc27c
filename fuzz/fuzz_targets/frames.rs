//! Both framings and both profiles: a byte stream from a peer, cut into reads, decoded,
//! re-encoded and decoded again. The invariants live in `ssn_codec::testing::check` so that
//! the corpus is replayed by `cargo test` on stable Rust.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ssn_codec::testing::check(data);
});
