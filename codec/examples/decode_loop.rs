//! Decodes the sample purchase N times, for instruction-level profiling under callgrind:
//! `valgrind --tool=callgrind target/release/examples/decode_loop bcd 100000 [encode]`.

use ssn_codec::testing::sample_purchase;
use ssn_codec::{MessageView, Profile};

fn main() {
    let mut args = std::env::args().skip(1);
    let profile = match args.next().as_deref() {
        Some("ascii") => Profile::Ascii,
        _ => Profile::Bcd,
    };
    let count: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    if std::env::args().nth(3).as_deref() == Some("encode") {
        let message = sample_purchase();
        let mut out = bytes::BytesMut::with_capacity(1024);
        let mut total = 0usize;
        for _ in 0..count {
            out.clear();
            std::hint::black_box(&message).encode(profile, &mut out);
            total += out.len();
        }
        println!("{total}");
        return;
    }
    let bytes = sample_purchase().to_bytes(profile).freeze();
    let mut stans = 0u64;
    for _ in 0..count {
        if let Ok(view) = MessageView::decode(profile, std::hint::black_box(bytes.clone())) {
            stans += u64::from(view.stan().map_or(0, |s| s[5]));
        }
    }
    println!("{stans}");
}
