#!/usr/bin/env python3
"""An independent ISO 8583 peer for the switch's interoperability tests, built on pyiso8583.

    peer.py gen --count N --seed S [--max-bytes B] [--own-limits]
        N random messages encoded with pyiso8583's default_ascii spec, one JSON line each:
        {"hex": "<uppercase hex, no length header>", "fields": {...}}
    peer.py decode
        for each JSON line on stdin with a "hex" key, one line on stdout:
        {"fields": {...}, "hex": "<pyiso8583's re-encoding of those fields>"} or {"error": "..."}
    peer.py spec
        default_ascii's field table, one JSON line per field (for crosscheck.py)

default_ascii is taken to match jPOS ISO87APackager, the switch's `ascii` profile. Where the two
disagree (tests/peers/README.md lists where), `gen` stays inside what both accept, so that every
vector it writes means the same thing to pyiso8583, jPOS and the switch; `--own-limits` lifts that
and uses default_ascii's own definitions, to show the differences. Field value conventions are
in the README.
"""

import argparse
import json
import random
import sys

import iso8583
from iso8583.specs import default_ascii as SPEC

FIELD_MAX = 128

# How jPOS ISO87APackager defines the data elements that are not numeric fixed fields (IFA_NUMERIC)
# or LL/LLL char fields (IFA_LLCHAR, IFA_LLLCHAR); default_ascii has only lengths, not kinds.
LLNUM = {2, 32, 33, 35, 99, 100}  # IFA_LLNUM
AMOUNT = {28, 29, 30, 31, 97}  # IFA_AMOUNT: C or D, then digits
BINARY = {52, 64, 65, 96, 128}  # IFA_BINARY: hex digits of the bytes
CHAR_FIXED = {37, 38, 39, 40, 41, 42, 43, 49, 50, 51, 91, 92, 93, 94, 95, 98}  # IF_CHAR

# Where default_ascii and ISO87APackager disagree, `gen` leaves the field out or stays within
# both maximums. crosscheck.py checks this list against both libraries' tables.
EXCLUDED = {
    65: "pyiso8583 4.x reads bit 65 as a tertiary bitmap and never encodes DE65; jPOS: 1 byte",
    93: "pyiso8583: 5 chars; jPOS IF_CHAR(6)",
    96: "pyiso8583: 16 chars; jPOS IFA_BINARY(16) is 32 hex chars",
}
LENGTH_MAX = {
    54: 120,  # pyiso8583: LLLVAR 240; jPOS IFA_LLLCHAR(120)
    55: 510,  # pyiso8583: LLLVAR 510; jPOS IFA_LLLCHAR(999)
}

DENSITIES = (0.02, 0.05, 0.1, 0.25, 0.5, 0.9)
DIGITS = "0123456789"
HEX_DIGITS = "0123456789ABCDEF"
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))  # space first


class Generator:
    """Random field values that default_ascii encodes, following the README's conventions."""

    def __init__(self, seed, own_limits):
        self.random = random.Random(seed)
        self.own_limits = own_limits

    def message(self):
        r = self.random
        fields = {"t": self.digits(4)}
        # A quarter of the messages use only the primary bitmap.
        last = 64 if r.randrange(4) == 0 else FIELD_MAX
        density = r.choice(DENSITIES)
        candidates = [field for field in range(2, last + 1) if self.allowed(field)]
        chosen = [field for field in candidates if r.random() < density]
        if not chosen:
            # A message needs a data element: with none, jPOS packs no bitmap and cannot read
            # its own output.
            chosen = [r.choice(candidates)]
        for field in chosen:
            fields[str(field)] = self.value(field)
        return fields

    def allowed(self, field):
        # pyiso8583 drops DE65 from whatever it encodes, so it is never generated.
        return field != 65 and (self.own_limits or field not in EXCLUDED)

    def length_max(self, field):
        length = SPEC[str(field)]["max_len"]
        if self.own_limits:
            return length
        return min(length, LENGTH_MAX.get(field, length))

    def value(self, field):
        spec = SPEC[str(field)]
        length = self.length_max(field)
        if spec["len_type"] == 0:
            if field in AMOUNT:
                return self.random.choice("CD") + self.digits(length - 1)
            if field in BINARY:
                return "".join(self.random.choices(HEX_DIGITS, k=length))
            if field in CHAR_FIXED:
                # jPOS pads fixed char fields with spaces and trims them when reading, so a
                # value ending in a space would not come back unchanged.
                return self.printable(length - 1) + self.random.choice(PRINTABLE[1:])
            return self.digits(length)
        if field == 35:
            return self.track2(length)
        if field in LLNUM:
            return self.digits(self.variable_length(0, length))
        return self.printable(self.variable_length(0, length))

    def variable_length(self, length_min, length_max):
        """Empty and full lengths come up often; they are where codecs break."""
        roll = self.random.randrange(10)
        if roll == 0:
            return length_min
        if roll == 1:
            return length_max
        return self.random.randint(length_min, length_max)

    def track2(self, length_max):
        """Track 2: digits with exactly one '=' separator."""
        length = self.variable_length(1, length_max)
        separator = self.random.randrange(length)
        return self.digits(separator) + "=" + self.digits(length - separator - 1)

    def digits(self, length):
        return "".join(self.random.choices(DIGITS, k=length))

    def printable(self, length):
        return "".join(self.random.choices(PRINTABLE, k=length))


def encode(fields):
    """Uppercase hex of pyiso8583's encoding; encode() adds bitmap keys to its argument, so it
    gets a copy."""
    encoded, _ = iso8583.encode(dict(fields), SPEC)
    return bytes(encoded).hex().upper()


def encode_fitting(fields, bytes_max):
    """Encodes, dropping the longest field (the highest-numbered among equals) until the message
    fits in bytes_max or has one data element left; a bound on the size keeps generation
    deterministic."""
    while True:
        hex_text = encode(fields)
        data_elements = [k for k in fields if k != "t"]
        if bytes_max is None or len(hex_text) // 2 <= bytes_max or len(data_elements) <= 1:
            return hex_text
        longest = max(data_elements, key=lambda k: (len(fields[k]), int(k)))
        del fields[longest]


def ordered(fields):
    """The "fields" object: "t" first, then the data elements in ascending order, no bitmaps."""
    keys = sorted((k for k in fields if k.isdigit() and k != "1"), key=int)
    result = {"t": fields["t"]} if "t" in fields else {}
    result.update((k, fields[k]) for k in keys)
    return result


def generate(args, out):
    generator = Generator(args.seed, args.own_limits)
    for _ in range(args.count):
        fields = generator.message()
        hex_text = encode_fitting(fields, args.max_bytes)
        out.write(json.dumps({"hex": hex_text, "fields": ordered(fields)}) + "\n")


def decode_line(line):
    try:
        request = json.loads(line)
        hex_text = request.get("hex") if isinstance(request, dict) else None
        if not isinstance(hex_text, str):
            raise ValueError('the line has no "hex" string')
        decoded, _ = iso8583.decode(bytes.fromhex(hex_text), SPEC)
        fields = ordered(decoded)
        return {"fields": fields, "hex": encode(fields)}
    except Exception as e:  # every failure is an answer, never the end of the run
        return {"error": f"{type(e).__name__}: {e}"}


def decode(out):
    for line in sys.stdin:
        if line.strip():
            out.write(json.dumps(decode_line(line)) + "\n")


def spec(out):
    for field, definition in SPEC.items():
        line = {"field": field}
        line.update((k, definition[k]) for k in ("data_enc", "len_enc", "len_type", "max_len"))
        line["description"] = definition.get("desc", "")
        out.write(json.dumps(line) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("gen", help="write random encoded messages as JSON lines")
    gen.add_argument("--count", type=int, required=True)
    gen.add_argument("--seed", type=int, required=True)
    gen.add_argument("--max-bytes", type=int, default=None, help="bound on each message's size")
    gen.add_argument("--own-limits", action="store_true", help="use default_ascii's own field definitions")
    commands.add_parser("decode", help="decode JSON lines with a hex key from stdin")
    commands.add_parser("spec", help="print default_ascii's field table")
    args = parser.parse_args()

    out = sys.stdout
    if args.command == "gen":
        generate(args, out)
    elif args.command == "decode":
        decode(out)
    else:
        spec(out)
    out.flush()


if __name__ == "__main__":
    main()
