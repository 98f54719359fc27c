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
    peer.py client HOST:PORT MANIFEST_JSON
        a host link on the switch's `ascii` port (4 ASCII digit length framing): sign-on,
        purchase, balance inquiry, reversal, balance inquiry, batch close with the first terminal
        and the first regular card of the demo manifest; one JSON line per answer,
        {"step": ..., "mti": ..., "fields": {...}}; exit status 1 on any unexpected answer

default_ascii is taken to match jPOS ISO87APackager, the switch's `ascii` profile. Where the two
disagree (tests/peers/README.md lists where), `gen` stays inside what both accept, so that every
vector it writes means the same thing to pyiso8583, jPOS and the switch; `--own-limits` lifts that
and uses default_ascii's own definitions, to show the differences. Field value conventions are
in the README.
"""

import argparse
import json
import random
import socket
import ssl
import sys
import time

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

# ---------------------------------------------------------------------------------------------
# client: the host interface's everyday conversation, spoken by pyiso8583 over real TCP

# Every socket wait ends by then, so a switch that stops answering fails the run, never hangs it.
ANSWER_TIMEOUT_S = 30
# What a length header can announce: 4 ASCII digits.
FRAME_BYTES_MAX = 9999
# Rp 10.000,00 in minor units (IDR exponent 2), paid for rice and eggs, which the demo city's
# programs allow (contract section 4: category code n2, quantity n2, amount n12).
PURCHASE_AMOUNT = 1_000_000
BASKET = (("01", 2, 600_000), ("02", 1, 400_000))
assert sum(amount for _, _, amount in BASKET) == PURCHASE_AMOUNT
# DE54 (contract section 5): account type 00, amount type 02 (available), IDR, credit, 12 digits.
BALANCE_PREFIX = "0002360C"


class Unexpected(Exception):
    """An answer the contract does not allow here; the run stops with exit status 1."""


def pin_block(pin, pan, tpk_hex):
    """ISO 9564-1 format 0 under the terminal PIN key (double-length 3DES, ECB), as 16 uppercase
    hex characters, the `ascii` profile's DE52."""
    from Crypto.Cipher import DES3  # pycryptodome, installed by setup.sh; only this mode needs it

    pin_field = ("0%X%s" % (len(pin), pin)).ljust(16, "F")
    account_field = "0000" + pan[-13:-1]  # rightmost 12 digits without the check digit
    clear = bytes(a ^ b for a, b in zip(bytes.fromhex(pin_field), bytes.fromhex(account_field)))
    return DES3.new(bytes.fromhex(tpk_hex), DES3.MODE_ECB).encrypt(clear).hex().upper()


def balance_of(step, answer):
    de54 = answer.get("54")
    if de54 is None or len(de54) != 20 or not de54.startswith(BALANCE_PREFIX) or not de54[8:].isdigit():
        raise Unexpected(f"{step}: DE54 is {de54!r}, not {BALANCE_PREFIX} and 12 digits")
    return int(de54[8:])


class Link:
    """One TCP connection to the switch's ascii port, one request in flight at a time."""

    def __init__(self, sock, terminal, out):
        self.sock = sock
        self.terminal = terminal
        self.out = out
        self.stan = 0

    def next_stan(self):
        self.stan += 1
        return "%06d" % self.stan

    def exchange(self, step, request, code="00"):
        """Sends request, prints the answer as one JSON line, and checks what every answer must
        have: the response MTI, the echoed STAN and terminal, and the expected DE39."""
        encoded, _ = iso8583.encode(dict(request), SPEC)
        if len(encoded) > FRAME_BYTES_MAX:
            raise Unexpected(f"{step}: {len(encoded)} bytes do not fit a 4-digit length header")
        self.sock.sendall(b"%04d" % len(encoded) + bytes(encoded))
        decoded, _ = iso8583.decode(self.read_frame(), SPEC)
        answer = ordered(decoded)
        self.out.write(json.dumps({"step": step, "mti": answer.get("t"), "fields": answer}) + "\n")
        self.out.flush()
        mti = request["t"][:2] + str(int(request["t"][2]) + 1) + request["t"][3]
        for key, want in (("t", mti), ("11", request["11"]), ("41", request["41"]), ("39", code)):
            if answer.get(key) != want:
                what = "MTI" if key == "t" else "DE" + key
                raise Unexpected(f"{step}: {what} is {answer.get(key)!r}, expected {want!r}")
        return answer

    def read_frame(self):
        while True:
            header = self.read_exact(4)
            if not header.isdigit():
                raise Unexpected(f"the length header {header!r} is not 4 digits")
            length = int(header)
            if length:  # zero is a keep-alive
                return self.read_exact(length)

    def read_exact(self, length):
        data = b""
        while len(data) < length:
            chunk = self.sock.recv(length - len(data))
            if not chunk:
                raise Unexpected(f"the switch closed the connection after {len(data)} of {length} bytes")
            data += chunk
        return data


def card_request(link, card, processing_code, transmitted):
    """The fields a purchase and a balance inquiry share (contract 3.2, 3.3)."""
    terminal = link.terminal
    now = time.localtime()
    return {
        "t": "0200",
        "2": card["pan"],
        "3": processing_code,
        "7": transmitted,
        "11": link.next_stan(),
        "12": time.strftime("%H%M%S", now),
        "13": time.strftime("%m%d", now),
        "14": card["expiry"],
        "22": "021",  # magnetic stripe, PIN entry capability
        "25": "00",
        "35": f"{card['pan']}={card['expiry']}101",
        "41": terminal["terminal_id"],
        "42": terminal["merchant_id"],
        "49": "360",
        "52": pin_block(card["pin"], card["pan"], terminal["tpk"]),
    }


def transmission_time():
    """DE7, MMDDhhmmss in UTC."""
    return time.strftime("%m%d%H%M%S", time.gmtime())


def conversation(link, card):
    terminal = link.terminal
    link.exchange("sign_on", {
        "t": "0800", "7": transmission_time(), "11": link.next_stan(),
        "41": terminal["terminal_id"], "70": "001",
    })

    purchase = card_request(link, card, "000000", transmission_time())
    purchase["4"] = "%012d" % PURCHASE_AMOUNT
    purchase["48"] = "B1%02d" % len(BASKET) + "".join(
        "%s%02d%012d" % item for item in BASKET)
    answer = link.exchange("purchase", purchase)
    for key, length in (("37", 12), ("38", 6)):
        if len(answer.get(key, "")) != length:
            raise Unexpected(f"purchase: DE{key} is {answer.get(key)!r}, expected {length} characters")
    after_purchase = balance_of("purchase", answer)

    inquiry = card_request(link, card, "310000", transmission_time())
    balance = balance_of("balance_inquiry", link.exchange("balance_inquiry", inquiry))
    if balance != after_purchase:
        raise Unexpected(f"balance_inquiry: balance {balance}, but the purchase left {after_purchase}")

    original = "0200" + purchase["11"] + purchase["7"] + "0" * 22
    reversal = {
        "t": "0400", "2": card["pan"], "3": "000000", "4": purchase["4"],
        "7": transmission_time(), "11": link.next_stan(),
        "41": terminal["terminal_id"], "42": terminal["merchant_id"], "49": "360", "90": original,
    }
    answer = link.exchange("reversal", reversal)
    if answer.get("90") != original:
        raise Unexpected(f"reversal: DE90 is {answer.get('90')!r}, expected {original!r}")

    inquiry = card_request(link, card, "310000", transmission_time())
    balance = balance_of("balance_after_reversal", link.exchange("balance_after_reversal", inquiry))
    if balance != after_purchase + PURCHASE_AMOUNT:
        raise Unexpected(f"balance_after_reversal: balance {balance}, expected "
                         f"{after_purchase} + {PURCHASE_AMOUNT} back from the reversal")

    # Sales are approved purchases not reversed (contract 3.5): the one purchase was reversed,
    # so no sales and one reversal of its amount.
    totals = "%03d%012d%03d%012d" % (0, 0, 1, PURCHASE_AMOUNT)
    try:
        link.exchange("batch_close", {
            "t": "0500", "3": "920000", "7": transmission_time(), "11": link.next_stan(),
            "41": terminal["terminal_id"], "42": terminal["merchant_id"],
            "60": "000001", "63": totals,
        })
    except Unexpected as e:
        raise Unexpected(f"{e} (terminal totals {totals})") from None


def client(args, out):
    host, _, port = args.address.rpartition(":")
    if not host or not port.isdigit():
        print(f"error: {args.address!r} is not HOST:PORT", file=sys.stderr)
        return 2
    with open(args.manifest) as f:
        manifest = json.load(f)
    terminal = manifest["terminals"][0]
    card = next(c for c in manifest["cards"] if c["kind"] == "regular")
    try:
        with socket.create_connection((host, int(port)), timeout=ANSWER_TIMEOUT_S) as sock:
            if args.tls_ca:
                # TLS as Python's ssl module does it: the switch's certificate checked against
                # the given CA (or self-signed certificate) and the address; a client
                # certificate when given (mutual TLS).
                context = ssl.create_default_context(cafile=args.tls_ca)
                if args.tls_cert:
                    context.load_cert_chain(args.tls_cert, args.tls_key)
                sock = context.wrap_socket(sock, server_hostname=host)
            conversation(Link(sock, terminal, out), card)
    except (Unexpected, OSError, ValueError) as e:
        out.flush()
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


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
    host = commands.add_parser("client", help="run the host interface's conversation against a switch")
    host.add_argument("address", help="the switch's ascii port, HOST:PORT")
    host.add_argument("manifest", help="the demo manifest, DIR/demo.json")
    host.add_argument("--tls-ca", help="speak TLS, trusting this PEM certificate for the switch")
    host.add_argument("--tls-cert", help="with --tls-ca: present this PEM client certificate")
    host.add_argument("--tls-key", help="the private key of --tls-cert (PEM)")
    args = parser.parse_args()

    out = sys.stdout
    if args.command == "client":
        sys.exit(client(args, out))
    if args.command == "gen":
        generate(args, out)
    elif args.command == "decode":
        decode(out)
    else:
        spec(out)
    out.flush()


if __name__ == "__main__":
    main()
