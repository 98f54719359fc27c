//! Decode and encode of the host interface's purchase (0200) and its approval (0210) in both
//! profiles, and the whole per-request codec cost (decode the request, build the reply,
//! encode it). Run by hand: `cargo bench -p ssn-codec --bench codec`; results in
//! BENCHMARKS.md.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use ssn_codec::testing::{sample_purchase, sample_purchase_response};
use ssn_codec::{Message, MessageView, Profile};

const ECHOED: [u8; 10] = [2, 3, 4, 7, 11, 12, 13, 41, 42, 49];

fn codec(c: &mut Criterion) {
    for profile in [Profile::Ascii, Profile::Bcd] {
        let name = profile.name();
        for (mti, message) in [
            ("0200", sample_purchase()),
            ("0210", sample_purchase_response()),
        ] {
            let bytes = message.to_bytes(profile).freeze();
            c.bench_function(&format!("decode {mti} {name}"), |b| {
                b.iter(|| {
                    let view = MessageView::decode(profile, black_box(bytes.clone()));
                    black_box(view.map(|v| v.stan()).ok())
                })
            });
            let mut out = BytesMut::with_capacity(1024);
            c.bench_function(&format!("encode {mti} {name}"), |b| {
                b.iter(|| {
                    out.clear();
                    black_box(&message).encode(profile, &mut out);
                    black_box(out.len())
                })
            });
        }
        let request = sample_purchase().to_bytes(profile).freeze();
        let mut out = BytesMut::with_capacity(1024);
        c.bench_function(&format!("decode 0200 + reply 0210 + encode {name}"), |b| {
            b.iter(|| {
                let view = MessageView::decode(profile, black_box(request.clone())).ok();
                let reply = view.as_ref().and_then(|v| Message::reply_to(v, &ECHOED));
                if let Some(mut reply) = reply {
                    let _ = reply.set(37, b"633412000123");
                    let _ = reply.set(38, b"A1B2C3");
                    let _ = reply.set(39, b"00");
                    let _ = reply.set(54, b"0002360C000025000000");
                    out.clear();
                    reply.encode(profile, &mut out);
                }
                black_box(out.len())
            })
        });
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
