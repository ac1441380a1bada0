#!/usr/bin/env python3
"""Generate Paillier known-answer vectors with python-paillier (phe).

Writes crypto/tests/fixtures/phe_vectors.json (all big integers as decimal
strings):

  {"generator": "python-paillier <version>",
   "n": ..., "g": ... (= n + 1), "p": ..., "q": ...,
   "raw":    [{"m", "r", "c"}, ...]   # c = pk.raw_encrypt(m, r_value=r)
                                      #   = (1 + n*m) * r^n mod n^2
   "random": [{"m", "c"}, ...]}       # c = pk.encrypt(m).ciphertext(be_secure=True)
                                      #   (phe's own randomness; m is an int,
                                      #    so its encoding exponent is 0 and
                                      #    raw_decrypt(c) == m)

Every c is checked to decrypt back to m with phe (and the raw entries also
against the textbook formula) before the file is written.

The key is generated once with phe.generate_paillier_keypair(n_length=1024).
When the output file already exists its p and q are reused, so re-running the
script keeps the same key and reproduces the "raw" section exactly (m and r
come from a fixed-seed PRNG; they are test data, not secrets). The "random"
section changes on every run by design. Pass --new-key to generate a new key.

Run with the venv from bench/peers/setup.sh:
  "${FEDCHAIN_PY_VENV:-$HOME/.cache/fedchain-py}/bin/python" crypto/tests/kat/gen_phe_vectors.py
"""

import argparse
import json
import math
import os
import random
import sys

try:
    import phe
    from phe import paillier
except ImportError as e:
    sys.exit(f"gen_phe_vectors: cannot import phe ({e}); run bench/peers/setup.sh and use its venv python")

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "phe_vectors.json"))
KEY_BITS = 1024
SEED = 20251125  # fixed: m and r of the "raw" section are reproducible for a given key


def load_or_make_key(path, new_key):
    if not new_key and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        p, q = int(old["p"]), int(old["q"])
        print(f"gen_phe_vectors: reusing p, q from {path}", file=sys.stderr)
        pk = paillier.PaillierPublicKey(p * q)
        sk = paillier.PaillierPrivateKey(pk, p, q)
    else:
        pk, sk = paillier.generate_paillier_keypair(n_length=KEY_BITS)
        print(f"gen_phe_vectors: generated a new {KEY_BITS}-bit key", file=sys.stderr)
    assert pk.n.bit_length() == KEY_BITS, pk.n.bit_length()
    assert sk.p * sk.q == pk.n and sk.p != sk.q
    assert pk.g == pk.n + 1
    return pk, sk


def rand_unit(rng, n):
    """Random r in [1, n) with gcd(r, n) == 1."""
    while True:
        r = rng.randrange(1, n)
        if math.gcd(r, n) == 1:
            return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--new-key", action="store_true", help="generate a new key instead of reusing the one in --out")
    args = ap.parse_args()

    pk, sk = load_or_make_key(args.out, args.new_key)
    n, nsq = pk.n, pk.nsquare
    rng = random.Random(SEED)

    # --- raw: explicit r -------------------------------------------------
    raw_ms = [
        0, 1, 2, 3, 42, 2**32 - 1, 2**64 + 1,
        pk.max_int,          # largest int phe.encrypt accepts (n//3 - 1)
        n - pk.max_int,      # first m where phe.raw_encrypt takes its "negative" shortcut
        (n - 1) // 2,
        n - 2, n - 1,
    ]
    while len(raw_ms) < 16:
        raw_ms.append(rng.randrange(n // 2, n))  # random large m < n
    raw = []
    for i, m in enumerate(raw_ms):
        if i == 1:
            r = 1  # edge case: c = 1 + n*m
        elif i == 2:
            r = n - 1  # edge case: r = -1 mod n
        else:
            r = rand_unit(rng, n)
        c = pk.raw_encrypt(m, r_value=r)
        assert c == (1 + n * m) * pow(r, n, nsq) % nsq, f"raw[{i}]: phe disagrees with textbook formula"
        assert 0 < c < nsq and math.gcd(c, n) == 1
        assert sk.raw_decrypt(c) == m, f"raw[{i}]: phe raw_decrypt != m"
        raw.append({"m": str(m), "r": str(r), "c": str(c)})

    # --- random: phe's own randomness -------------------------------------
    rnd_ms = [0, 1, 255, 2**31, 2**63 + 5, rng.getrandbits(512), rng.randrange(pk.max_int), pk.max_int]
    rnd = []
    for i, m in enumerate(rnd_ms):
        enc = pk.encrypt(m)
        assert enc.exponent == 0
        c = enc.ciphertext(be_secure=True)
        assert sk.raw_decrypt(c) == m, f"random[{i}]: phe raw_decrypt != m"
        assert sk.decrypt(paillier.EncryptedNumber(pk, c, 0)) == m, f"random[{i}]: phe decrypt != m"
        assert c != (1 + n * m) % nsq, f"random[{i}]: ciphertext not obfuscated"
        rnd.append({"m": str(m), "c": str(c)})

    doc = {
        "generator": f"python-paillier {phe.__version__}",
        "n": str(n),
        "g": str(pk.g),
        "p": str(sk.p),
        "q": str(sk.q),
        "raw": raw,
        "random": rnd,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"gen_phe_vectors: wrote {args.out} ({len(raw)} raw, {len(rnd)} random, "
          f"{os.path.getsize(args.out)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
