#!/usr/bin/env python3
"""Writes the hostile checkpoints of docs/reliability.md into a folder, for measuring the CLI by hand:

    python3 tools/reliability/hostile_files.py /tmp/hostile
    for f in /tmp/hostile/*; do /usr/bin/time -f "%e s %M KB" dotnet src/MobileOne.Cli/bin/Release/net10.0/MobileOne.Cli.dll convert "$f" /tmp/hostile-out.safetensors; done

The pickles are assembled opcode by opcode (no torch needed). The test suite builds the same files itself
(tests/MobileOne.Tests/IO/HostileCheckpointTests.cs); this script only reproduces the CLI measurements.
"""
import json
import os
import struct
import sys
import zipfile


def text(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def integer(v):
    return b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v)


def global_(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def ints(values):
    return b"(" + b"".join(integer(v) for v in values) + b"t"


def tensor(storage_type, key, numel, offset, size, stride):
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""
    storage = b"(" + text("storage") + global_("torch", storage_type) + text(key) + text("cpu") + integer(numel) + b"tQ"
    return (global_("torch._utils", "_rebuild_tensor_v2") + b"(" + storage + integer(offset) + ints(size) + ints(stride)
            + b"\x89" + global_("collections", "OrderedDict") + b")R" + b"tR")


def state_dict(items):
    return b"\x80\x02}(" + items + b"u."


def write_zip(path, entries, deflated=()):
    with zipfile.ZipFile(path, "w") as f:
        for name, data in entries:
            f.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if name in deflated else zipfile.ZIP_STORED)


def write_safetensors(path, entries):
    header, offset = {}, 0
    for key, shape in entries:
        n = 4
        for d in shape:
            n *= d
        header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + bytes(offset))


def main(folder):
    os.makedirs(folder, exist_ok=True)
    at = lambda name: os.path.join(folder, name)

    # One stored float expanded (stride 0) to 20000 x 20000: a 1.6 GB copy-out.
    write_zip(at("expanded.pt"), [("expanded/data.pkl", state_dict(text("head.fc.weight") + tensor("FloatStorage", "0", 1, 0, [20000, 20000], [0, 0]))),
                                  ("expanded/data/0", bytes(4))])

    # A dict key t30 where t(i+1) = (ti, ti) through the memo: 2^31 values to hash.
    p = b"\x80\x02}" + integer(1) + b"\x85q\x000"
    for i in range(30):
        p += b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86q" + bytes([i + 1]) + b"0"
    write_zip(at("tuples.pt"), [("tuples/data.pkl", p + b"h\x1e" + integer(1) + b"s.")])

    # OrderedDict(d) of one memoized 20,000-entry dict, 20,000 times: 4e8 copied entries.
    p = b"\x80\x02" + global_("collections", "OrderedDict") + b"q\x000}q\x01("
    p += b"".join(b"J" + struct.pack("<i", i) + integer(0) for i in range(20000)) + b"u0"
    p += b"h\x00h\x01\x85R0" * 20000
    write_zip(at("copies.pt"), [("copies/data.pkl", p + b"}.")])

    # A 64 MB storage of zeros deflated to 64 KB (ratio 1000).
    n = 16 << 20
    write_zip(at("bomb.pt"), [("bomb/data.pkl", state_dict(text("w") + tensor("FloatStorage", "0", n, 0, [n], [1]))),
                              ("bomb/data/0", bytes(4 * n))], deflated=("bomb/data/0",))

    # A block index beyond int (an OverflowException and a stack trace before).
    write_safetensors(at("blockindex.safetensors"), [("stem.conv_kxk.0.conv.weight", [8, 3, 3, 3]), ("stages.0.0.conv_kxk.0.conv.weight", [8, 1, 3, 3]),
                                                     ("stages.0.99999999999.conv_kxk.0.conv.weight", [1]), ("head.fc.weight", [10, 8])])

    # 300,000 header entries (a 26 MB header).
    write_safetensors(at("keys.safetensors"), [(f"stages.0.{i}.conv_kxk.0.conv.weight", [1, 1, 1, 1]) for i in range(300000)])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "hostile")
