//! The per-purchase cost of PIN verification (unwrap TPK and PVK, decrypt DE52, parse, PVV)
//! and the card-issue cost of a PVV. Run by hand: `cargo bench -p ssn-hsm --bench hsm`;
//! results in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ssn_hsm::{EncryptedPinBlock, KeyUsage, MasterKey, Pin, Pvki, SoftHsm, TdesKey};

const TEST_KEY: &str = "0123456789ABCDEFFEDCBA9876543210";

fn hsm(c: &mut Criterion) {
    let Ok(master) = MasterKey::generate() else {
        return;
    };
    let hsm = SoftHsm::new(master);
    let (Ok(tpk), Ok(pvk), Ok(clear_tpk), Ok(pin)) = (
        hsm.import_key(KeyUsage::Tpk, TEST_KEY, "08D7B4"),
        hsm.generate_key(KeyUsage::Pvk),
        TdesKey::from_hex(TEST_KEY),
        Pin::new("4524"),
    ) else {
        return;
    };
    let pan = "6048720000001234";
    let (Ok(pvv), Ok(block)) = (
        hsm.generate_pvv(&pvk, &pin, pan, Pvki::ONE),
        EncryptedPinBlock::encrypt(&pin, pan, &clear_tpk),
    ) else {
        return;
    };
    c.bench_function("verify_pin (stored keys)", |b| {
        b.iter(|| hsm.verify_pin(&tpk, black_box(&block), pan, &pvk, Pvki::ONE, &pvv))
    });
    c.bench_function("generate_pvv (stored key)", |b| {
        b.iter(|| hsm.generate_pvv(&pvk, black_box(&pin), pan, Pvki::ONE))
    });
}

criterion_group!(benches, hsm);
criterion_main!(benches);
