//! Writes seed inputs for the fuzz target: the spec's purchase and response framed in both
//! profiles, with keep-alives and a few read sizes. `cargo run -p ssn-codec --example
//! fuzz_seeds -- DIR`.

use bytes::BytesMut;
use ssn_codec::testing::{sample_purchase, sample_purchase_response};
use ssn_codec::{FrameCodec, Message, Mti, Outbound, Profile, Tpdu};
use tokio_util::codec::Encoder;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus/frames".into());
    std::fs::create_dir_all(&dir)?;
    let mut echo = Message::new(Mti::NETWORK_REQUEST);
    for (n, v) in [
        (7, &b"1129123045"[..]),
        (11, b"000001"),
        (41, b"EWRG0001"),
        (70, b"301"),
    ] {
        echo.set(n, v).map_err(std::io::Error::other)?;
    }
    let messages = [sample_purchase(), sample_purchase_response(), echo];
    for (p, profile) in [Profile::Ascii, Profile::Bcd].into_iter().enumerate() {
        let mut codec = FrameCodec::new(profile, 4096);
        for (i, m) in messages.iter().enumerate() {
            for chunk in [1u8, 7, 127] {
                let mut wire = BytesMut::new();
                let tpdu = Some(Tpdu([0x60, 0, 1, 0, 2]));
                codec
                    .encode(Outbound::KeepAlive, &mut wire)
                    .map_err(std::io::Error::other)?;
                codec
                    .encode(Outbound::Message { tpdu, message: m }, &mut wire)
                    .map_err(std::io::Error::other)?;
                let mut data = vec![(chunk << 1) | p as u8];
                data.extend_from_slice(&wire);
                std::fs::write(format!("{dir}/seed-{}-{i}-{chunk}", profile.name()), data)?;
            }
            // Unframed message bytes too, which the first half of `check` decodes whole.
            let mut data = vec![p as u8];
            data.extend_from_slice(&m.to_bytes(profile));
            std::fs::write(format!("{dir}/seed-{}-{i}-raw", profile.name()), data)?;
        }
    }
    Ok(())
}
