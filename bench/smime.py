"""S/MIME sign+encrypt benchmark: phigate against ``openssl cms``, same run.

Run by hand, not in CI:

    .venv/bin/python bench/smime.py              # 5 KB, 1 MB, 10 MB
    .venv/bin/python bench/smime.py --json

Per size, the same message (text part + random base64 attachment, CRLF) is
signed (SHA-256, detached, the intermediate included) and then encrypted
(AES-256-CBC) to the recipient and the practice's own certificate (RSA 2048):

* phigate: ``gateway.crypto.smime_out.sign_and_encrypt`` in this process;
* openssl: ``openssl cms -sign -md sha256 … | openssl cms -encrypt -aes256 …``
  (two processes, a pipe, files in a temp dir), as an administrator would.

Each figure is the median wall time of several runs (more for small sizes);
the ratio is phigate / openssl (below 1 means phigate is faster). openssl's
figures include starting two processes, which dominates at 5 KB.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.crypto.certstore import Identity
from gateway.crypto.smime_out import sign_and_encrypt
from tests.crypto.pki import TestPKI, write_pem

SIZES = {"5 KB": 5_000, "1 MB": 1_000_000, "10 MB": 10_000_000}
RUNS = {"5 KB": 30, "1 MB": 7, "10 MB": 5}


def message(size: int) -> bytes:
    attachment = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    return (b"From: dr.lee@smile.test\r\nTo: os@surgery.test\r\nSubject: bench\r\n"
            b"Date: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <b@smile.test>\r\n"
            b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
            b"--b\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + attachment + b"--b--\r\n")


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pki = TestPKI()
    sub = pki.intermediate()
    me, peer = pki.leaf("dr.lee@smile.test", issuer=sub), pki.leaf("os@surgery.test")
    identity = Identity("dr.lee@smile.test", me.cert, me.key, (sub.cert,))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        me_pem, me_key = me.write(d, "me")
        peer_pem, _ = peer.write(d, "peer")
        chain = write_pem(d / "chain.pem", sub.cert)
        pipeline = (f"openssl cms -sign -md sha256 -signer {me_pem} -inkey {me_key} "
                    f"-certfile {chain} -in {d / 'msg.eml'} | "
                    f"openssl cms -encrypt -aes256 -out {d / 'out.p7m'} {peer_pem} {me_pem}")
        for label, size in SIZES.items():
            raw = message(size)
            (d / "msg.eml").write_bytes(raw)
            ours = median_time(lambda raw=raw: sign_and_encrypt(
                raw, identity, [peer.cert, me.cert], cipher="aes256"), RUNS[label])
            theirs = median_time(lambda: subprocess.run(pipeline, shell=True, check=True),
                                 RUNS[label])
            results.append({"size": label, "bytes": len(raw), "phigate_ms": ours * 1000,
                            "openssl_ms": theirs * 1000, "ratio": ours / theirs})
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'size':>6}  {'phigate ms':>10}  {'openssl ms':>10}  {'ratio':>5}")
    for r in results:
        print(f"{r['size']:>6}  {r['phigate_ms']:10.1f}  {r['openssl_ms']:10.1f}  "
              f"{r['ratio']:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
