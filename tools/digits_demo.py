#!/usr/bin/python3
"""Run the digits example through kiln and show what it sees and predicts.

For every examples/digits/samples/digit_<k>.npy this runs

    kiln run examples/digits/digits.yaml --interp --input image=digit_<k>.npy --output TMP

prints the image as text, the class kiln predicts with its probability, and
checks it against examples/digits/expected.txt (PyTorch's prediction).
Exits 1 when any prediction differs, or kiln fails.

    /usr/bin/python3 tools/digits_demo.py [--kiln PATH/TO/kiln] [--quiet]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SHADES = " .:-=+*#%@"


def ascii_art(img):
    rows = []
    for r in img[2:26]:
        rows.append("".join(SHADES[min(9, int(v * 9.99))] * 2 for v in r[2:26]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", default=shutil.which("kiln") or "kiln")
    ap.add_argument("--dir", default=os.path.join(ROOT, "examples", "digits"))
    ap.add_argument("--quiet", action="store_true", help="one line per sample, no pictures")
    args = ap.parse_args()

    expected = {}
    with open(os.path.join(args.dir, "expected.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, k = line.split()
                expected[name] = int(k)

    model = os.path.join(args.dir, "digits.yaml")
    bad = 0
    tmp = tempfile.mkdtemp(prefix="kiln-digits-")
    try:
        for name in sorted(expected):
            sample = os.path.join(args.dir, "samples", name)
            out = os.path.join(tmp, name[:-4])
            cmd = [args.kiln, "run", model, "--interp", "--input", "image=" + sample, "--output", out]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print("%s: kiln failed (%d):\n%s%s" % (name, p.returncode, p.stdout, p.stderr))
                bad += 1
                continue
            probs = np.load(os.path.join(out, "probs.npy")).reshape(-1)
            pred = int(probs.argmax())
            ok = pred == expected[name]
            bad += not ok
            status = "ok" if ok else "MISMATCH: PyTorch predicts %d" % expected[name]
            if not args.quiet:
                print("\n".join(ascii_art(np.load(sample)[0, 0])))
            print("%s: kiln predicts %d (p = %.4f)  %s" % (name, pred, probs[pred], status))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d of %d samples agree with PyTorch" % (len(expected) - bad, len(expected)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
