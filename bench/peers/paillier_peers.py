#!/usr/bin/env python3
"""Single-core Paillier throughput of external peers, for comparison with fedchain.

Peers:
  phe         python-paillier (uses gmpy2 when importable). Encryption is
              measured through the normal public API `pk.encrypt(int)`: one
              value per ciphertext, fresh randomness from phe itself
              (r <- SystemRandom in [1, n), r^n mod n^2 computed per call).
              `raw_encrypt(m)` (same maths, no encoding layer) is reported
              separately for reference.
  fate_utils  FATE's Rust Paillier (fate_utils.paillier). Unpacked:
              `pk.encrypt_encoded(coder.encode_f64_vec(x), True)` (one value
              per ciphertext, encoding included in the timing). Packed:
              `pk.encrypt_encoded(coder.pack_floats(xs, slot_bits, pack_num,
              precision), True)`, several values per ciphertext; values/s
              counts packed values.

Single core: thread env vars (OMP/MKL/OPENBLAS/RAYON/...) are set to 1 before
any extension is imported and the process is pinned to one CPU with
sched_setaffinity. cpu_seconds/wall_seconds is reported per measurement as a
check (about 1.0 means one core was used).

Output: one JSON object on stdout. Progress and warnings go to stderr. A
missing peer is reported as {"available": false, "reason": ...}; this script
does not fail because of a missing peer.

Usage:
  "$VENV/bin/python" bench/peers/paillier_peers.py [--quick] [--peers phe,fate_utils]
If phe and fate_utils are both missing from the running interpreter and the
venv made by setup.sh exists, the script re-executes itself with the venv's
python (disable with FEDCHAIN_PEERS_NO_REEXEC=1).
"""

import os

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "RAYON_NUM_THREADS",
)
for _v in THREAD_VARS:
    os.environ[_v] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

DEFAULT_VENV = os.path.join(os.path.expanduser("~"), ".cache", "fedchain-py")

# Share of the measurement budget given to each timed loop. Key generation and
# correctness checks are outside the budget (they take well under a second
# for fate_utils and a few seconds at most for phe at 2048 bits).
BUDGET_SHARES = {
    "phe.encrypt": 0.26,
    "phe.raw_encrypt": 0.08,
    "phe.decrypt": 0.10,
    "phe.add": 0.05,
    "fate.encrypt": 0.24,
    "fate.encrypt_packed": 0.17,
    "fate.add": 0.04,
    "fate.decrypt": 0.06,
}


def log(*args):
    print("[paillier_peers]", *args, file=sys.stderr, flush=True)


def maybe_reexec_into_venv():
    if os.environ.get("FEDCHAIN_PEERS_NO_REEXEC"):
        return
    if importlib.util.find_spec("phe") or importlib.util.find_spec("fate_utils"):
        return
    venv = os.environ.get("FEDCHAIN_PY_VENV", DEFAULT_VENV)
    py = os.path.join(venv, "bin", "python")
    if not os.access(py, os.X_OK):
        return
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    log(f"phe/fate_utils not importable here; re-executing with {py}")
    os.environ["FEDCHAIN_PEERS_NO_REEXEC"] = "1"
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def pin_one_cpu():
    try:
        cpus = sorted(os.sched_getaffinity(0))
        cpu = cpus[-1]  # last allowed CPU; any single one will do
        os.sched_setaffinity(0, {cpu})
        return cpu
    except (AttributeError, OSError) as e:
        log(f"WARNING: could not pin to one CPU ({e!r}); relying on thread env vars only")
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def timed_loop(step, budget_s, min_iters=3):
    """Call step(i) until budget_s of wall time has passed (at least min_iters
    times). Returns (iterations, wall_seconds, cpu_seconds)."""
    i = 0
    w0 = time.perf_counter()
    c0 = time.process_time()
    deadline = w0 + budget_s
    while True:
        step(i)
        i += 1
        if i >= min_iters and time.perf_counter() >= deadline:
            break
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0
    return i, wall, cpu


def rate_block(count, wall, cpu, unit):
    return {
        f"{unit}_per_sec": count / wall if wall > 0 else None,
        f"{unit}_timed": count,
        "wall_seconds": round(wall, 4),
        "cpu_seconds": round(cpu, 4),
        "cpu_over_wall": round(cpu / wall, 3) if wall > 0 else None,
    }


def pkg_version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        return None


# --------------------------------------------------------------------------- phe


def bench_phe(key_bits, budget):
    try:
        import phe
        from phe import paillier
        import phe.util as phe_util
    except Exception as e:  # noqa: BLE001
        return {
            "available": False,
            "reason": f"import phe failed: {e!r} (run bench/peers/setup.sh and use its venv python)",
        }

    out = {
        "available": True,
        "version": getattr(phe, "__version__", None) or pkg_version("phe"),
        "key_bits": key_bits,
        "gmpy2": bool(getattr(phe_util, "HAVE_GMP", False)),
        "gmpy2_version": None,
        "encrypt_api": "pk.encrypt(int): EncodedNumber.encode + raw_encrypt(r=1) + obfuscate() "
        "with fresh r from SystemRandom, r^n mod n^2 via gmpy2.powmod (no CRT: "
        "public key only); one value per ciphertext",
        "plaintexts": "uniform random ints in [0, 2^32)",
    }
    if out["gmpy2"]:
        try:
            import gmpy2

            out["gmpy2_version"] = gmpy2.version()
        except Exception:  # noqa: BLE001
            pass
    else:
        log("WARNING: phe is running WITHOUT gmpy2 (pure-Python big ints); numbers are not representative")

    t0 = time.perf_counter()
    pk, sk = paillier.generate_paillier_keypair(n_length=key_bits)
    out["keygen_seconds"] = round(time.perf_counter() - t0, 3)
    out["n_bits"] = pk.n.bit_length()

    rng = random.Random(12345)
    values = [rng.randrange(0, 1 << 32) for _ in range(4096)]

    # (c) encryption via the public API, one value per ciphertext.
    cts = []

    def enc_step(i):
        cts.append(pk.encrypt(values[i % len(values)]))

    n, wall, cpu = timed_loop(enc_step, budget["phe.encrypt"])
    blk = rate_block(n, wall, cpu, "values")
    out["values_per_sec"] = blk["values_per_sec"]
    out["encryptions_timed"] = n
    out["encrypt"] = blk
    log(f"phe encrypt: {blk['values_per_sec']:.1f} values/s ({n} in {wall:.2f}s)")

    # Correctness spot check (outside timing).
    for j in range(min(8, len(cts))):
        assert sk.decrypt(cts[j]) == values[j], "phe round trip failed"

    # raw_encrypt with fresh randomness (same maths, no encoding layer).
    def raw_bench():
        def raw_step(i):
            pk.raw_encrypt(values[i % len(values)])

        n, wall, cpu = timed_loop(raw_step, budget["phe.raw_encrypt"])
        out["raw_encrypt"] = rate_block(n, wall, cpu, "values")
        out["raw_encrypt"]["api"] = "pk.raw_encrypt(int) (r_value=None: fresh r each call)"
        log(f"phe raw_encrypt: {out['raw_encrypt']['values_per_sec']:.1f} values/s")

    # Decryption (CRT; public API: decrypt + decode).
    def dec_bench():
        def dec_step(i):
            sk.decrypt(cts[i % len(cts)])

        n, wall, cpu = timed_loop(dec_step, budget["phe.decrypt"])
        out["decrypt"] = rate_block(n, wall, cpu, "decryptions")
        out["decrypt"]["api"] = "sk.decrypt(EncryptedNumber) (CRT)"
        log(f"phe decrypt: {out['decrypt']['decryptions_per_sec']:.1f} /s")

    # Homomorphic addition of two ciphertexts (EncryptedNumber.__add__: one
    # mulmod mod n^2; the result is not re-obfuscated).
    def add_bench():
        m = len(cts)
        acc = [None]

        def add_step(i):
            acc[0] = cts[i % m] + cts[(i + 1) % m]

        n, wall, cpu = timed_loop(add_step, budget["phe.add"], min_iters=100)
        out["add"] = rate_block(n, wall, cpu, "additions")
        out["add"]["api"] = "EncryptedNumber + EncryptedNumber (no re-obfuscation)"
        assert sk.decrypt(cts[0] + cts[1 % m]) == values[0] + values[1 % m], "phe addition check failed"
        log(f"phe add: {out['add']['additions_per_sec']:.0f} /s")

    optional(out, "raw_encrypt", raw_bench)
    optional(out, "decrypt", dec_bench)
    optional(out, "add", add_bench)
    return out


# ------------------------------------------------------------------- fate_utils


def optional(out, key, fn):
    """Run a nice-to-have measurement; on failure record the error under
    out[key] instead of losing the peer's other results."""
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 (pyo3 PanicException is a BaseException)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        out.setdefault(key, {})["error"] = f"{type(e).__name__}: {e}"
        log(f"WARNING: {key} measurement failed: {e!r}")


def fate_n_bits(pk):
    """Bit length of n, read from PK.__getstate__ (bincode: u32 radix, u64
    length, then n as a string in that radix). Best effort."""
    try:
        st = bytes(pk.__getstate__())
        radix = int.from_bytes(st[0:4], "little")
        ln = int.from_bytes(st[4:12], "little")
        return int(st[12 : 12 + ln].decode(), radix).bit_length()
    except Exception:  # noqa: BLE001
        return None


def bench_fate(key_bits, budget, batch, slot_bits, precision, pack_cts):
    try:
        import numpy as np
        import fate_utils.paillier as fp
    except BaseException as e:  # noqa: BLE001 (pyo3 panics are BaseException)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return {
            "available": False,
            "reason": f"import fate_utils.paillier failed: {e!r} (run bench/peers/setup.sh and use its venv python)",
        }

    out = {
        "available": True,
        "version": pkg_version("fate_utils"),
        "key_bits": key_bits,
        "threads": "fate_utils.paillier has no thread option in this version (encrypt_encoded "
        "is a sequential loop); RAYON_NUM_THREADS=1 set and process pinned to one CPU anyway",
        "encrypt_api": "sk, pk, coder = fate_utils.paillier.keygen(bits); "
        "pk.encrypt_encoded(coder.encode_f64_vec(x), True)  # obfuscate=True: fresh r, r^n mod n^2 "
        "(no CRT: public key only); one value per ciphertext; encoding included in timing",
        "plaintexts": "uniform random float64 in [0, 1), fixed-point encoded by Coder (base 16, exact)",
        "batch_size": batch,
    }
    t0 = time.perf_counter()
    sk, pk, coder = fp.keygen(key_bits)
    out["keygen_seconds"] = round(time.perf_counter() - t0, 3)
    out["n_bits"] = fate_n_bits(pk)

    rng = np.random.default_rng(12345)
    xs = [rng.random(batch) for _ in range(16)]

    # (d) unpacked: one value per ciphertext.
    cvs = []

    def enc_step(i):
        cvs.append(pk.encrypt_encoded(coder.encode_f64_vec(xs[i % len(xs)]), True))

    n, wall, cpu = timed_loop(enc_step, budget["fate.encrypt"])
    blk = rate_block(n * batch, wall, cpu, "values")
    out["values_per_sec"] = blk["values_per_sec"]
    out["encryptions_timed"] = n * batch
    out["encrypt"] = blk
    log(f"fate_utils encrypt: {blk['values_per_sec']:.1f} values/s ({n * batch} in {wall:.2f}s)")

    dec = coder.decode_f64_vec(sk.decrypt_to_encoded(cvs[0]))
    assert np.array_equal(dec, xs[0]), "fate_utils round trip failed"

    # Packed: pack_num fixed-point values (precision fractional bits, in
    # slot_bits-wide slots) per plaintext; pack_num * slot_bits <= bits(n) - 1.
    pack_num = (key_bits - 1) // slot_bits
    packed = {
        "supported": hasattr(coder, "pack_floats") and hasattr(coder, "unpack_floats"),
        "api": f"pk.encrypt_encoded(coder.pack_floats(xs, {slot_bits}, {pack_num}, {precision}), True); "
        f"decode: coder.unpack_floats(sk.decrypt_to_encoded(ct), {slot_bits}, {pack_num}, {precision}, len(xs))",
        "slot_bits": slot_bits,
        "precision_bits": precision,
        "values_per_ciphertext": pack_num,
        "values_per_call": pack_num * pack_cts,
        "notes": "Coder.pack_floats(list[float], offset_bit, pack_num, precision) turns each value "
        "into floor(x * 2^precision) in an offset_bit-wide slot, pack_num slots per plaintext. "
        "Non-negative values only (negative inputs decode to garbage; FL callers must offset). "
        f"{slot_bits - precision} bits of headroom per slot for homomorphic sums of values < 1. "
        "Timing includes pack_floats. CiphertextVector.pack_squeeze(pack_num, offset_bit, pk) also "
        "exists (packs already-encrypted ciphertexts, one modexp per extra value); not measured.",
    }
    out["packed"] = packed

    def packed_bench():
        vals_per_call = pack_num * pack_cts
        plists = [rng.random(vals_per_call).tolist() for _ in range(8)]
        pcts = []

        def penc_step(i):
            pv = coder.pack_floats(plists[i % len(plists)], slot_bits, pack_num, precision)
            pcts.append(pk.encrypt_encoded(pv, True))

        n, wall, cpu = timed_loop(penc_step, budget["fate.encrypt_packed"])
        blk = rate_block(n * vals_per_call, wall, cpu, "values")
        blk["ciphertexts_per_sec"] = n * pack_cts / wall
        packed.update(blk)
        # Correctness (outside timing): decrypt + unpack, and after one homomorphic add.
        a0, a1 = np.array(plists[0]), np.array(plists[1 % len(plists)])
        got = np.array(coder.unpack_floats(sk.decrypt_to_encoded(pcts[0]), slot_bits, pack_num, precision, vals_per_call))
        s = pcts[0].add(pk, pcts[1 % len(pcts)])
        got2 = np.array(coder.unpack_floats(sk.decrypt_to_encoded(s), slot_bits, pack_num, precision, vals_per_call))
        err, err2 = float(np.max(np.abs(got - a0))), float(np.max(np.abs(got2 - (a0 + a1))))
        packed["max_abs_error_roundtrip"] = err
        packed["max_abs_error_after_add"] = err2
        tol = 2.0 ** (1 - precision)
        assert err <= tol and err2 <= 2 * tol, f"fate_utils packing error too large: {err}, {err2}"
        log(f"fate_utils packed encrypt: {blk['values_per_sec']:.1f} values/s ({pack_num} values/ct)")

    if packed["supported"]:
        optional(out, "packed", packed_bench)

    # Ciphertext + ciphertext (vector add: element-wise mulmod n^2).
    def add_bench():
        a, b = cvs[0], cvs[1 % len(cvs)]
        holder = [None]

        def add_step(i):
            holder[0] = a.add(pk, b)

        n, wall, cpu = timed_loop(add_step, budget["fate.add"], min_iters=20)
        out["add"] = rate_block(n * batch, wall, cpu, "additions")
        out["add"]["api"] = "CiphertextVector.add(pk, other) on vectors of batch_size (same exponents)"
        got = coder.decode_f64_vec(sk.decrypt_to_encoded(holder[0]))
        assert np.allclose(got, xs[0] + xs[1 % len(xs)], rtol=0, atol=1e-12), "fate_utils add check failed"
        log(f"fate_utils add: {out['add']['additions_per_sec']:.0f} /s")

    optional(out, "add", add_bench)

    # Decryption (CRT) + decode.
    def dec_bench():
        def dec_step(i):
            coder.decode_f64_vec(sk.decrypt_to_encoded(cvs[i % len(cvs)]))

        n, wall, cpu = timed_loop(dec_step, budget["fate.decrypt"])
        out["decrypt"] = rate_block(n * batch, wall, cpu, "decryptions")
        out["decrypt"]["api"] = "coder.decode_f64_vec(sk.decrypt_to_encoded(ct)) (CRT)"
        log(f"fate_utils decrypt: {out['decrypt']['decryptions_per_sec']:.1f} /s")

    optional(out, "decrypt", dec_bench)
    return out


def run_peer(name, fn, *args):
    try:
        return fn(*args)
    except BaseException as e:  # noqa: BLE001 (pyo3 PanicException is a BaseException)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        log(f"WARNING: {name} benchmark failed: {e!r}")
        return {"available": False, "reason": f"benchmark raised {type(e).__name__}: {e}"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about 10 s in total instead of about 60 s")
    ap.add_argument("--budget", type=float, default=None, help="seconds shared by all timed loops (overrides mode)")
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--peers", default="phe,fate_utils", help="comma-separated subset of phe,fate_utils")
    ap.add_argument("--fate-batch", type=int, default=32, help="values per encrypt_encoded call (unpacked)")
    ap.add_argument("--pack-slot-bits", type=int, default=64, help="bits per packed slot (fate_utils offset_bit)")
    ap.add_argument("--pack-precision", type=int, default=32, help="fractional bits per packed value")
    ap.add_argument("--pack-cts", type=int, default=4, help="ciphertexts per packed encrypt_encoded call")
    args = ap.parse_args()

    maybe_reexec_into_venv()
    cpu = pin_one_cpu()

    total = args.budget if args.budget is not None else (8.0 if args.quick else 57.0)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = set(peers) - {"phe", "fate_utils"}
    if unknown:
        ap.error(f"unknown peers: {sorted(unknown)}")
    # Give a missing peer's share to the others so the total stays similar.
    shares = {k: v for k, v in BUDGET_SHARES.items() if (k.startswith("phe.") and "phe" in peers)
              or (k.startswith("fate.") and "fate_utils" in peers)}
    scale = total / sum(shares.values()) if shares else 0.0
    budget = {k: v * scale for k, v in shares.items()}

    result = {
        "benchmark": "paillier_peers",
        "mode": "quick" if args.quick else "default",
        "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "python": sys.version.split()[0],
            "python_executable": sys.executable,
            "platform": platform.platform(),
            "cpu_model": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "pinned_cpu": cpu,
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
            "thread_env": {v: os.environ.get(v) for v in THREAD_VARS},
        },
        "budget_seconds": round(total, 2),
    }
    t0 = time.perf_counter()
    if "phe" in peers:
        log("measuring phe ...")
        result["phe"] = run_peer("phe", bench_phe, args.key_bits, budget)
    if "fate_utils" in peers:
        log("measuring fate_utils ...")
        result["fate_utils"] = run_peer(
            "fate_utils", bench_fate, args.key_bits, budget, args.fate_batch,
            args.pack_slot_bits, args.pack_precision, args.pack_cts,
        )
    result["total_seconds"] = round(time.perf_counter() - t0, 2)
    if hasattr(os, "getloadavg"):
        result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
