"""pyiso8583's time for the same messages as `cargo bench -p ssn-codec --bench codec`.

Run by hand with the test command's virtualenv:
    target/peers/venv/bin/python codec/benches/pyiso8583_baseline.py
It decodes and encodes the host interface's 0200 purchase and 0210 approval (the codec's
`testing::sample_purchase` / `sample_purchase_response`, ascii profile) with pyiso8583 4.0.1's
`default_ascii` spec and prints nanoseconds per operation (best of 5 runs of N operations).
pyiso8583 has no BCD profile of its own, so the ratio is taken on the ascii profile.
"""

import copy
import time

import iso8583
from iso8583.specs import default_ascii

PURCHASE = {
    "t": "0200",
    "2": "6048720000000012",
    "3": "000000",
    "4": "000005000000",
    "7": "1129123045",
    "11": "000123",
    "12": "203045",
    "13": "1129",
    "14": "2812",
    "22": "051",
    "25": "00",
    "35": "6048720000000012=2812",
    "41": "EWRG0001",
    "42": "EWARONG00000001",
    "48": "B1" + "02" + "01" + "10" + "000003500000" + "07" + "02" + "000001500000",
    "49": "360",
    "52": "3A5F19C20788E461",
}
RESPONSE = {k: v for k, v in PURCHASE.items() if k in {"2", "3", "4", "7", "11", "12", "13", "41", "42", "49"}}
RESPONSE.update({"t": "0210", "37": "633412000123", "38": "A1B2C3", "39": "00", "54": "0002360C000025000000"})

N = 20_000


def best_ns(fn):
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(N):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / N)
    return best


for name, doc in (("0200", PURCHASE), ("0210", RESPONSE)):
    raw, _ = iso8583.encode(copy.deepcopy(doc), default_ascii)
    raw = bytes(raw)
    decoded, _ = iso8583.decode(raw, default_ascii)
    assert {k: v for k, v in decoded.items() if k not in ("p", "1", "h")} == doc, decoded
    print(f"pyiso8583 decode {name} ascii: {best_ns(lambda: iso8583.decode(raw, default_ascii)):.0f} ns")
    # encode() fills in the bitmap keys of the dict it is given, so each call gets a fresh dict
    # (the copy is timed separately and subtracted).
    copy_ns = best_ns(lambda: dict(doc))
    enc_ns = best_ns(lambda: iso8583.encode(dict(doc), default_ascii)) - copy_ns
    print(f"pyiso8583 encode {name} ascii: {enc_ns:.0f} ns")
