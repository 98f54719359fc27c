//! Decoding a purchase allocates nothing: the view borrows the frame's bytes and records
//! spans in a fixed array. A counting global allocator proves it. No test harness: this
//! binary runs one thread, so the allocator sees only the decode.

use bytes::Bytes;
use ssn_codec::testing::sample_purchase;
use ssn_codec::{MessageView, Profile};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    decoding_a_purchase_allocates_nothing();
    // The plain summary line CI reads when a binary has no harness of its own.
    println!("test decoding_a_purchase_allocates_nothing ... ok");
    println!("allocations: 1 passed, 0 failed");
}

fn decoding_a_purchase_allocates_nothing() {
    for profile in [Profile::Ascii, Profile::Bcd] {
        let frames: Vec<Bytes> = (0..100)
            .map(|_| sample_purchase().to_bytes(profile).freeze())
            .collect();
        let region = Region::new(GLOBAL);
        let mut amount = 0u64;
        for bytes in frames {
            let view = MessageView::decode(profile, bytes).unwrap();
            amount += view.amount().unwrap();
            let pan = view.pan().unwrap();
            assert!(pan.luhn_valid());
            assert!(
                view.pin_block().is_some() && view.stan().is_some() && view.terminal_id().is_some()
            );
            assert!(view.track2().is_some());
        }
        let change = region.change();
        assert_eq!(amount, 100 * 5_000_000);
        assert_eq!(change.allocations, 0, "{profile:?}: {change:?}");
        assert_eq!(change.reallocations, 0, "{profile:?}: {change:?}");
    }
}
