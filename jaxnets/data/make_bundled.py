"""Copy the official MNIST test set and the UCI occupancy data into `jaxnets/data/bundled/`.

    python -m jaxnets.data.make_bundled SHARED_DATA_DIR

SHARED_DATA_DIR holds `mnist/t10k-{images-idx3,labels-idx1}-ubyte.gz` (the published files)
and `occupancy/datatraining.txt`, `occupancy/datatest.txt` (as published by their authors).
Every file is checked against the MD5 below before it is copied: the MNIST files are copied
unchanged, the two occupancy files are gzip-compressed (level 9, no name or time in the
header, so the output is the same every time) and nothing else is changed.

    python -m jaxnets.data.make_bundled --names names-0.3.0.tar.gz

copies the US Census first-name lists out of the `names` package's source archive
(`pip download names==0.3.0 --no-deps`), checked and compressed the same way. Attribution and
licences: jaxnets/data/bundled/ATTRIBUTION.md.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import tarfile
from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"

#: relative path in the shared folder -> (MD5 of the content as published, name in bundled/)
FILES = {
    "mnist/t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", "mnist/t10k-images-idx3-ubyte.gz"),
    "mnist/t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", "mnist/t10k-labels-idx1-ubyte.gz"),
    "occupancy/datatraining.txt": ("e656cd731300cb444bd10fcd28071e37", "occupancy/datatraining.txt.gz"),
    "occupancy/datatest.txt": ("e9ae415a491d807ccdece8e948458de0", "occupancy/datatest.txt.gz"),
}

#: member of the `names` 0.3.0 source archive -> (MD5 as published, name in bundled/)
NAMES_FILES = {
    "names-0.3.0/names/dist.male.first": ("e9ebdf8e78f6d0581fdd74ab89c13317", "names/dist.male.first.gz"),
    "names-0.3.0/names/dist.female.first": ("b287e9dc189c649960ae4c8bded3a5c5", "names/dist.female.first.gz"),
}


def published_bytes(src_name: str, stored: bytes) -> bytes:
    """The published file `src_name`'s bytes from its bundled copy's (gunzipped when it was
    compressed here)."""
    return stored if FILES[src_name][1] == src_name else gzip.decompress(stored)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def copy(shared: Path, out: Path = BUNDLED_DIR) -> None:
    for src_name, (digest, dst_name) in FILES.items():
        data = (shared / src_name).read_bytes()
        if md5(data) != digest:
            raise SystemExit(f"{shared / src_name}: MD5 {md5(data)}, expected the published {digest}")
        dst = out / dst_name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data if dst_name == src_name else gzip.compress(data, compresslevel=9, mtime=0))
        print(f"wrote {dst} ({dst.stat().st_size / 1e3:.0f} kB)")


def copy_names(sdist: Path, out: Path = BUNDLED_DIR) -> None:
    """The first-name lists of the `names` source archive, MD5-checked, gzip-compressed."""
    with tarfile.open(sdist, "r:gz") as tar:
        for member, (digest, dst_name) in NAMES_FILES.items():
            data = tar.extractfile(member).read()
            if md5(data) != digest:
                raise SystemExit(f"{sdist}:{member}: MD5 {md5(data)}, expected the published {digest}")
            dst = out / dst_name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
            print(f"wrote {dst} ({dst.stat().st_size / 1e3:.0f} kB)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shared", type=Path, nargs="?", help="the folder holding mnist/ and occupancy/")
    ap.add_argument("--names", type=Path, help="the `names` 0.3.0 source archive (names-0.3.0.tar.gz)")
    ap.add_argument("--out", type=Path, default=BUNDLED_DIR)
    args = ap.parse_args(argv)
    if args.shared is None and args.names is None:
        ap.error("give SHARED_DATA_DIR, --names ARCHIVE, or both")
    if args.shared is not None:
        copy(args.shared, args.out)
    if args.names is not None:
        copy_names(args.names, args.out)


if __name__ == "__main__":
    main()
