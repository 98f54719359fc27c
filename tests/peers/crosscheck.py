#!/usr/bin/env python3
"""Checks the two peers against themselves and against each other, and prints what it finds.

    DIR/venv/bin/python tests/peers/crosscheck.py DIR [--count 1000] [--seed 7]

DIR is what tests/peers/setup.sh built. Exits non-zero when a peer's decode does not give back its
own vectors, or when pyiso8583 default_ascii and jPOS ISO87APackager disagree anywhere but in the
differences that tests/peers/README.md documents (EXCLUDED and LENGTH_MAX in pyiso/peer.py).
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ beside peer.py
sys.path.insert(0, os.path.join(HERE, "pyiso"))
import peer  # noqa: E402  (the pyiso8583 peer: its tables of known differences)

JAVA_MAIN = "ssn.peers.Peer"

# Hand-made ascii messages that show how the two libraries treat input that is odd or wrong.
# Each is (what it shows, message bytes); the answers are printed side by side, not asserted.
ASCII_PROBES = [
    ("lowercase hex bitmaps", b"0800" + b"a000000000000000" + b"0000000000000000" + b"000000"),
    ("non-digit in n6 (DE3)", b"0200" + b"2000000000000000" + b"00A000"),
    ("non-digit MTI", b"02A0" + b"2000000000000000" + b"000000"),
    ("trailing spaces in an8 (DE41)", b"0800" + b"0000000000800000" + b"TERM1   "),
    ("lowercase hex in b8 (DE52)", b"0200" + b"0000000000001000" + b"0123456789abcdef"),
    ("non-hex in b8 (DE52)", b"0200" + b"0000000000001000" + b"0123456789ABCDEG"),
    ("byte 0xE9 in LLLVAR (DE48)", b"0200" + b"0000000000010000" + b"003A\xe9B"),
    ("LLVAR length above max (DE2 20)", b"0200" + b"4000000000000000" + b"20" + b"1" * 20),
    ("non-digit LLVAR length", b"0200" + b"4000000000000000" + b"1A" + b"1" * 10),
    ("non-digit in LLVAR n (DE2)", b"0200" + b"4000000000000000" + b"04" + b"12A4"),
    ("bytes after the last field", b"0200" + b"2000000000000000" + b"000000" + b"XX"),
    ("message cut short", b"0200" + b"2000000000000000" + b"000"),
    ("MTI only, no bitmap", b"0800"),
    ("empty bitmap, no fields", b"0800" + b"0000000000000000"),
    ("secondary bitmap with no DE65-128", b"0800" + b"A000000000000000" + b"0000000000000000" + b"000000"),
    ("DE65 as jPOS packs it (1 byte)", b"0800" + b"8000000000000000" + b"8000000000000000" + b"AB"),
    ("DE65 as 8 bytes (16 hex chars)", b"0800" + b"8000000000000000" + b"8000000000000000" + b"0123456789ABCDEF"),
    ("DE93 as 6 chars (jPOS)", b"0800" + b"8000000000000000" + b"0000000800000000" + b"ABCDEF"),
    ("DE93 as 5 chars (pyiso8583)", b"0800" + b"8000000000000000" + b"0000000800000000" + b"ABCDE"),
    ("DE96 as 32 hex chars (jPOS)", b"0800" + b"8000000000000000" + b"0000000100000000" + b"0123456789ABCDEF" * 2),
    ("DE96 as 16 hex chars (pyiso8583)", b"0800" + b"8000000000000000" + b"0000000100000000" + b"0123456789ABCDEF"),
    ("amount sign not C/D (DE28)", b"0200" + b"0000001000000000" + b"X12345678"),
    ("track 2 with 'D' separator (DE35)", b"0200" + b"0000000020000000" + b"25" + b"4761739001010119D22122011"),
]

# Hand-made bcd messages (ISO87BPackager), hex; only jPOS answers these.
BINARY_PROBES = [
    ("DE2 odd length, pad nibble 0", "0200" "4000000000000000" "19" "47617390010101191230"),
    ("DE2 odd length, pad nibble F not 0", "0200" "4000000000000000" "19" "4761739001010119123F"),
    ("DE2 LL prefix not BCD (0x1A)", "0200" "4000000000000000" "1A" + "11" * 13),
    ("MTI with nibble A", "02A0" "2000000000000000" "000000"),
    ("DE3 with nibble A", "0200" "2000000000000000" "00A000"),
    ("DE22 n3, left pad nibble 1 not 0", "0200" "0000040000000000" "1051"),
    ("DE35 with '=' as nibble D", "0200" "0000000020000000" "25" "4761739001010119D221220110"),
    ("DE35 odd length, pad nibble F", "0200" "0000000020000000" "25" "4761739001010119D22122011F"),
    ("DE48 LLL prefix is 2 BCD bytes", "0200" "0000000000010000" "0003" "414243"),
    ("DE48 LLL prefix 1000, above 999", "0200" "0000000000010000" "1000" + "41" * 1000),
    ("DE28 amount, 'C' + 8 digits", "0200" "0000001000000000" "43" "12345678"),
    ("DE65 (1 byte)", "0800" "8000000000000000" "8000000000000000" "AB"),
    ("bytes after the last field", "0200" "2000000000000000" "000000" "FFFF"),
    ("MTI only, no bitmap", "0800"),
]


class Failed(Exception):
    pass


def run(command, lines=()):
    """Runs a peer with JSON lines on stdin and returns its JSON lines and the seconds taken."""
    started = time.monotonic()
    result = subprocess.run(
        command,
        input="".join(json.dumps(line) + "\n" for line in lines),
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise Failed(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
    return [json.loads(line) for line in result.stdout.splitlines()], seconds


class Peers:
    def __init__(self, directory):
        self.python = [os.path.join(directory, "venv", "bin", "python"), os.path.join(HERE, "pyiso", "peer.py")]
        with open(os.path.join(directory, "jpos", "classpath.txt")) as f:
            self.java = ["java", "-cp", f.read().strip(), JAVA_MAIN]

    def pyiso(self, *args, lines=()):
        return run(self.python + list(args), lines)

    def jpos(self, *args, lines=()):
        return run(self.java + list(args), lines)


def compare(vectors, answers):
    """Indexes of the vectors whose answer is an error or differs in hex or fields."""
    if len(vectors) != len(answers):
        raise Failed(f"{len(vectors)} vectors but {len(answers)} answers")
    return [
        i
        for i, (vector, answer) in enumerate(zip(vectors, answers))
        if "error" in answer or answer["hex"] != vector["hex"] or answer["fields"] != vector["fields"]
    ]


def describe(vector, answer):
    if "error" in answer:
        return answer["error"]
    fields = sorted(set(vector["fields"]) | set(answer["fields"]), key=lambda k: (k != "t", int(k) if k.isdigit() else 0))
    changed = [k for k in fields if vector["fields"].get(k) != answer["fields"].get(k)]
    return f"fields {changed} differ" if changed else "same fields, different hex"


def round_trips(peers, count, seed):
    print(f"== round trips: each peer decodes and re-encodes its own {count} vectors")
    checks = [
        ("pyiso8583 default_ascii", peers.pyiso, ["gen", "--count", str(count), "--seed", str(seed)], ["decode"]),
        ("jPOS ISO87BPackager", peers.jpos, ["gen", str(count), str(seed)], ["decode"]),
        ("jPOS ISO87APackager", peers.jpos, ["ascii-gen", str(count), str(seed)], ["ascii-decode"]),
    ]
    for name, tool, gen, decode in checks:
        vectors, gen_s = tool(*gen)
        answers, decode_s = tool(*decode, lines=vectors)
        bad = compare(vectors, answers)
        sizes = sorted(len(v["hex"]) // 2 for v in vectors)
        print(
            f"{name}: gen {gen_s:.2f}s, decode {decode_s:.2f}s, {len(bad)} of {len(vectors)} differ; "
            f"message bytes median {sizes[len(sizes) // 2]}, max {sizes[-1]}"
        )
        for i in bad[:5]:
            print(f"  vector {i}: {describe(vectors[i], answers[i])}")
        if bad:
            raise Failed(f"{name} does not give back its own vectors")


def ascii_width(jpos_line):
    """(length prefix digits, maximum data chars) of a jPOS ISO87APackager field."""
    kind, length = jpos_line["class"], int(jpos_line["length"])
    fixed = {"IFA_NUMERIC": 1, "IF_CHAR": 1, "IFA_AMOUNT": 1, "IFA_BINARY": 2, "IFA_BITMAP": 1}
    if kind in fixed:
        return 0, length * fixed[kind]
    prefixed = {"IFA_LLNUM": 2, "IFA_LLCHAR": 2, "IFA_LLLCHAR": 3}
    if kind in prefixed:
        return prefixed[kind], length
    raise Failed(f"no ascii width known for jPOS {kind}")


def tables(peers):
    print("== field tables: jPOS ISO87APackager vs pyiso8583 default_ascii")
    jpos, _ = peers.jpos("spec", "ascii")
    pyiso, _ = peers.pyiso("spec")
    pyiso = {line["field"]: line for line in pyiso}
    differing = set()
    for line in jpos:
        field = line["field"]
        ours = ascii_width(line)
        theirs = pyiso[field]
        if theirs["data_enc"] != "ascii" or theirs["len_enc"] != "ascii":
            print(f"  {field}: pyiso8583 data_enc {theirs['data_enc']} len_enc {theirs['len_enc']}")
        if ours != (theirs["len_type"], theirs["max_len"]):
            differing.add(int(field) if field.isdigit() else field)
            print(
                f"  DE{field}: jPOS {line['class']}({line['length']}) = prefix {ours[0]}, max {ours[1]} chars; "
                f"pyiso8583 len_type {theirs['len_type']}, max_len {theirs['max_len']}"
            )
    known = set(peer.EXCLUDED) | set(peer.LENGTH_MAX)
    if differing != known:
        raise Failed(f"tables differ in {sorted(differing, key=str)}, peer.py knows {sorted(known)}")
    print(f"  all other fields agree; the differences are exactly the known ones {sorted(known)}")


def cross(peers, count, seed):
    print("== cross decoding")
    vectors, _ = peers.pyiso("gen", "--count", str(count), "--seed", str(seed))
    answers, _ = peers.jpos("ascii-decode", lines=vectors)
    bad = compare(vectors, answers)
    print(f"pyiso8583 vectors -> jPOS ISO87APackager: {len(bad)} of {len(vectors)} differ")
    for i in bad[:5]:
        print(f"  vector {i}: {describe(vectors[i], answers[i])}")
    if bad:
        raise Failed("jPOS ISO87APackager disagrees with pyiso8583 on the peer's vectors")

    def known_uses(fields):
        uses = []
        for k, v in fields.items():
            if k.isdigit() and int(k) in peer.EXCLUDED:
                uses.append(f"DE{k}")
            elif k.isdigit() and len(v) > peer.LENGTH_MAX.get(int(k), len(v)):
                uses.append(f"DE{k} longer than {peer.LENGTH_MAX[int(k)]}")
        return uses

    def known(fields):
        return bool(known_uses(fields))

    # With pyiso8583's own limits, and from jPOS's side, differences may appear, but only in
    # messages that use a field known to differ.
    for name, vectors, decode in [
        ("pyiso8583 --own-limits vectors -> jPOS ISO87APackager",
         peers.pyiso("gen", "--count", str(count), "--seed", str(seed), "--own-limits")[0],
         lambda v: peers.jpos("ascii-decode", lines=v)[0]),
        ("jPOS ISO87APackager vectors -> pyiso8583",
         peers.jpos("ascii-gen", str(count), str(seed))[0],
         lambda v: peers.pyiso("decode", lines=v)[0]),
    ]:
        answers = decode(vectors)
        bad = compare(vectors, answers)
        unexplained = [i for i in bad if not known(vectors[i]["fields"])]
        print(f"{name}: {len(bad)} of {len(vectors)} differ, {len(unexplained)} not explained by known differences")
        causes = {}
        for i in bad:
            cause = ", ".join(known_uses(vectors[i]["fields"])) or "no known difference"
            causes[cause] = causes.get(cause, 0) + 1
        for cause, n in sorted(causes.items(), key=lambda item: -item[1])[:8]:
            print(f"  {n:4d} x message uses {cause}")
        agreeing = sum(1 for i, v in enumerate(vectors) if known(v["fields"]) and i not in set(bad))
        print(f"  ({agreeing} messages that use a known difference still agree)")
        for i in unexplained[:5]:
            print(f"  unexplained vector {i}: {describe(vectors[i], answers[i])}")
        if unexplained:
            raise Failed(f"{name}: differences outside the known ones")


def probes(peers):
    print("== probes: odd input, how each library answers (decoded fields; re-encoded if different)")

    def show(line, answer, text):
        if "error" in answer:
            return "error: " + answer["error"][:120]
        shown = json.dumps(answer["fields"])
        if answer["hex"] != line["hex"]:
            shown += " re-encoded " + text(answer["hex"])
        return shown

    def ascii_text(hex_text):
        return repr(bytes.fromhex(hex_text).decode("latin-1"))

    lines = [{"hex": data.hex().upper()} for _, data in ASCII_PROBES]
    pyiso, _ = peers.pyiso("decode", lines=lines)
    jpos, _ = peers.jpos("ascii-decode", lines=lines)
    print("ascii: pyiso8583 default_ascii and jPOS ISO87APackager")
    for (name, data), line, p, j in zip(ASCII_PROBES, lines, pyiso, jpos):
        print(f"- {name}: {ascii_text(line['hex'])}")
        print(f"    pyiso8583: {show(line, p, ascii_text)}")
        print(f"    jPOS:      {show(line, j, ascii_text)}")

    lines = [{"hex": hex_text} for _, hex_text in BINARY_PROBES]
    jpos, _ = peers.jpos("decode", lines=lines)
    print("bcd: jPOS ISO87BPackager")
    for (name, hex_text), line, j in zip(BINARY_PROBES, lines, jpos):
        print(f"- {name}: {hex_text if len(hex_text) <= 80 else hex_text[:80] + '...'}")
        print(f"    jPOS:      {show(line, j, lambda h: h)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", help="what tests/peers/setup.sh built, e.g. target/peers")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    peers = Peers(args.directory)
    try:
        round_trips(peers, args.count, args.seed)
        tables(peers)
        cross(peers, args.count, args.seed)
        probes(peers)
    except Failed as e:
        print(f"FAILED: {e}")
        sys.exit(1)
    print("crosscheck passed")


if __name__ == "__main__":
    main()
