#!/usr/bin/env python3
"""Write the seed corpus of each fuzz target into fuzz/seeds/<target>/:
a few valid inputs and a few broken ones. Run from the repository root:
`python3 fuzz/make_seeds.py`. Uses only the standard library, the MNIST
files in data/mnist and small fixtures from tests/fixtures."""

import gzip
import json
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")


def put(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(b):
    return gzip.compress(b, mtime=0)


def idx(magic, dims, payload):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


# ---------------------------------------------------------------- idx
# flags byte: bit 0 gzip the rest, bit 1 a pair (2-byte split offset first)
images = gzip.open(os.path.join(ROOT, "data/mnist/t10k-images-idx3-ubyte.gz")).read()
labels = gzip.open(os.path.join(ROOT, "data/mnist/t10k-labels-idx1-ubyte.gz")).read()
img2 = idx(0x803, [2, 28, 28], images[16 : 16 + 2 * 784])
lab2 = idx(0x801, [2], labels[8:10])
img_small = idx(0x803, [3, 4, 4], bytes(range(48)))
lab3 = idx(0x801, [3], labels[8:11])


def pair(flags, a, b):
    return bytes([flags]) + struct.pack("<H", len(a)) + a + b


put("idx", "images2_raw", b"\x00" + img2)
put("idx", "images2_gz", b"\x00" + gz(img2))
put("idx", "images_small_flag_gz", b"\x01" + img_small)
put("idx", "labels10_raw", b"\x00" + idx(0x801, [10], labels[8:18]))
put("idx", "pair_raw", pair(2, img2, lab2))
put("idx", "pair_flag_gz", pair(3, img_small, lab3))
put("idx", "scalar", b"\x00" + idx(0x800, [], b"\x2a"))
put("idx", "bad_truncated", b"\x00" + img2[:300])
put("idx", "bad_huge_dims", b"\x00" + idx(0x803, [0xFFFFFFFF, 0xFFFFFFFF, 1000], b"\x01\x02"))
put("idx", "bad_huge_dims_gz", b"\x00" + gz(idx(0x803, [60000, 28, 28], b"\x01\x02\x03")))
put("idx", "bad_float_type", b"\x00" + idx(0x0D01, [1], b"\0\0\0\0"))
put("idx", "bad_gzip_cut", b"\x00" + gz(img2)[:200])
put("idx", "bad_pair_swapped", pair(2, lab2, img2))

# ---------------------------------------------------------------- csv
# flags byte: bit 0 gzip the rest, bit 1 scale by 1/255
rows = [
    ",".join([str(labels[8 + r])] + [str(v) for v in images[16 + r * 784 : 16 + r * 784 + 784]])
    for r in range(2)
]
mnist_csv = "\n".join(rows) + "\n"
put("csv", "mnist2", b"\x00" + mnist_csv.encode())
put("csv", "mnist2_scaled_gz", b"\x03" + mnist_csv.encode())
put("csv", "real_gz", b"\x00" + gz(b"1,2,3\n4,5,6\n"))
put("csv", "header", b"\x00label,a,b\n7,0,255\n\"2\",\"51\",102\r\n\n3.0,1e3,-2.5\n")
put("csv", "byte_order_mark", b"\x00\xef\xbb\xbf3,1,2\n4,5,6\n")
put("csv", "bad_ragged", b"\x00" + b"1,2,3\n4,5\n")
put("csv", "bad_label", b"\x00" + b"1,2\n-1,3\n2.5,4\n")
put("csv", "bad_separator", b"\x00" + b"1;2;3\n4;5;6\n")
put("csv", "bad_utf8", b"\x00" + b"1,2\n3,4\n\xff\xfe\n")
put("csv", "bad_nul", b"\x00" + b"1,\x00\n")
put("csv", "bad_idx", b"\x00" + idx(0x801, [1], b"\x01"))

# -------------------------------------------------------- safetensors


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, data = {}, b""
    for name, dtype, shape, b in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(vals):
    return struct.pack("<%df" % len(vals), *vals)


ours = safetensors(
    [
        ("1.weight", "F32", [3, 4], f32([0.1 * i for i in range(12)])),
        ("1.bias", "F32", [3], f32([0.0, 0.5, -0.5])),
        ("3.weight", "F32", [2, 3], f32([1, 2, 3, 4, 5, 6])),
        ("3.bias", "F32", [2], f32([0, 1])),
    ],
    {"format": "pt", "backprop.model": "flatten,linear(4,3),relu,linear(3,2)"},
)
put("safetensors", "ours_mlp", ours)
put(
    "safetensors",
    "ours_bn",
    safetensors(
        [
            ("0.weight", "F32", [2], f32([1, 1])),
            ("0.bias", "F32", [2], f32([0, 0])),
            ("0.running_mean", "F32", [2], f32([0, 0])),
            ("0.running_var", "F32", [2], f32([1, 1])),
            ("0.num_batches_tracked", "I64", [], struct.pack("<q", 7)),
        ],
        {"format": "pt", "backprop.model": "batchnorm1d(2)"},
    ),
)
put(
    "safetensors",
    "torch_dtypes",
    safetensors(
        [
            ("a", "F16", [2], struct.pack("<2H", 0x3C00, 0xC000)),
            ("b", "BF16", [2], struct.pack("<2H", 0x3F80, 0x4000)),
            ("c", "F64", [1, 2], struct.pack("<2d", 1.5, -2.0)),
            ("d", "I32", [1], struct.pack("<i", -3)),
            ("e", "U8", [3], b"\x01\x02\x03"),
            ("f", "F32", [0, 5], b""),
        ]
    ),
)


def with_digests(tensors, metadata):
    """`safetensors(tensors, metadata)` with the `backprop.sha256` digests
    backprop writes (see tools/verify_digests.py)."""
    import hashlib

    digests = {}
    for name, dtype, shape, b in tensors:
        h = hashlib.sha256(dtype.encode() + b"\0" + ",".join(map(str, shape)).encode() + b"\0" + b)
        digests[name] = h.hexdigest()
    h = hashlib.sha256()
    for k in sorted(metadata):
        h.update(k.encode() + b"\0" + metadata[k].encode() + b"\0")
    digests["__metadata__"] = h.hexdigest()
    return safetensors(tensors, dict(metadata, **{"backprop.sha256": json.dumps(digests, sort_keys=True, separators=(",", ":"))}))


digested = [
    ("1.weight", "F32", [3, 4], f32([0.1 * i for i in range(12)])),
    ("1.bias", "F32", [3], f32([0.0, 0.5, -0.5])),
    ("3.weight", "F32", [2, 3], f32([1, 2, 3, 4, 5, 6])),
    ("3.bias", "F32", [2], f32([0, 1])),
]
digested_meta = {"format": "pt", "backprop.model": "flatten,linear(4,3),relu,linear(3,2)"}
good = with_digests(digested, digested_meta)
put("safetensors", "ours_digested", good)
flipped = bytearray(good)
flipped[-3] ^= 0x10  # one bit of 3.bias (the last tensor's data)
put("safetensors", "bad_flipped_bit", bytes(flipped))
put("safetensors", "torch_fixture_relu", open(os.path.join(ROOT, "tests/fixtures/train_act_relu.safetensors"), "rb").read())
put("safetensors", "bad_truncated", ours[: len(ours) - 10])
put("safetensors", "bad_header_len", b"\xff" * 8 + b"{}")
put("safetensors", "bad_json", struct.pack("<Q", 8) + b'{"a":{"')
put("safetensors", "bad_offsets", safetensors([("x", "F32", [2], f32([1]))]))
put("safetensors", "bad_dtype", safetensors([("x", "BOOL", [1], b"\x01")]))

# --------------------------------------------------------- model_line
for i, line in enumerate(
    [
        "mlp",
        "lenet",
        "rnn",
        "mlp-bn",
        "flatten,linear(784,128),relu,linear(128,10)",
        "conv2d(1,6,5,padding=2),relu,maxpool2d(2)",
        "conv2d(1,4,3,stride=2,bias=false),batchnorm2d(4,eps=1e-5,momentum=0.1),LeakyReLU(0.2),"
        "maxpool2d(2,stride=1,padding=1),flatten,dropout(p=0.25),linear(784,10),log_softmax(dim=1)",
        "reshape(28,28),rnn(28,16,bias=false),prelu(num_parameters=16,init=0.1),elu(alpha=1.0),tanh,sigmoid,softmax",
        "flatten,linear(784,8),batchnorm1d(8),relu(inplace=true),linear(8,10)",
        "linear(1000000000,1000000000)",
        "flatten,linear(784",
        "flatten,,relu)",
        "conv2d(1,6)",
        "reshape(1000000,1000000,1000000)",
        "foo(1=2,3)",
    ]
):
    put("model_line", ("line%02d" if i < 9 else "bad_line%02d") % i, line)

# -------------------------------------------------------------- image
# flags byte: bit 0 fix the PNG chunk CRCs before decoding


def png(w, h, color, depth, raw_rows, palette=None, interlace=0):
    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xFFFFFFFF)

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
    if palette:
        out += chunk(b"PLTE", palette)
    out += chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + r for r in raw_rows)))
    return out + chunk(b"IEND", b"")


put("image", "gray8", b"\x01" + png(3, 2, 0, 8, [b"\x00\x33\xff", b"\x66\x99\xcc"]))
put("image", "gray16", b"\x01" + png(2, 1, 0, 16, [b"\xff\xff\x80\x00"]))
put("image", "gray_alpha", b"\x01" + png(2, 1, 4, 8, [b"\xff\x00\x33\xff"]))
put("image", "rgb", b"\x01" + png(2, 2, 2, 8, [b"\xff\0\0\0\xff\0", b"\0\0\xff\xff\xff\xff"]))
put("image", "rgba", b"\x01" + png(1, 1, 6, 8, [b"\x10\x20\x30\x40"]))
put("image", "palette1", b"\x01" + png(8, 1, 3, 1, [b"\xa5"], palette=b"\0\0\0\xff\xff\xff"))
put("image", "gray1", b"\x01" + png(4, 4, 0, 1, [b"\x90", b"\x60", b"\x60", b"\x90"]))
# Adam7 on 2x2: pass 1 holds (0,0), pass 6 (1,0), pass 7 row 1
put("image", "gray8_interlaced", b"\x01" + png(2, 2, 0, 8, [b"\x10", b"\x20", b"\x30\x40"], interlace=1))
put("image", "p2", b"\x01" + b"P2\n# made by hand\n3 2 # w h\n10\n0 5 10\n# mid\n2 4\n6\n")
put("image", "p5", b"\x01" + b"P5 # c\n2 2\n255\n\x00\xff\x33\x66")
put("image", "p5_16", b"\x01" + b"P5\n2 1\n65535\n\xff\xff\x00\x01")
put("image", "bad_png_cut", b"\x01" + png(8, 8, 2, 8, [b"\x09" * 24] * 8)[:-20])
put("image", "bad_png_huge", b"\x01" + png(8000, 8000, 0, 1, [b"\x00"]))
put("image", "bad_p5_truncated", b"\x01" + b"P5\n4000 4000\n255\n\x00")
put("image", "bad_p2_values", b"\x01" + b"P2\n2 2\n9\n1 2 3 10")
put("image", "bad_jpeg", b"\x01" + b"\xff\xd8\xff\xe0\x00\x10JFIF")
bad_crc = bytearray(png(3, 2, 0, 8, [b"\x00\x33\xff", b"\x66\x99\xcc"]))
bad_crc[29] ^= 1
put("image", "bad_png_crc", b"\x00" + bytes(bad_crc))

# --------------------------------------------------------------- text
# flags byte: bit 0 read with the printable-ASCII vocabulary; the rest + 1:
# the window
PLAY = "KING HENRY.\nOnce more unto the breach, dear friends, once more;\nOr close the wall up with our English dead.\n"
put("text", "play_w1", b"\x00" + PLAY.encode())
put("text", "play_w8", bytes([7 << 1]) + PLAY.encode())
put("text", "play_vocab_w4", bytes([3 << 1 | 1]) + PLAY.encode())
put("text", "unicode_w2", bytes([1 << 1]) + "Ærgerlig — « très » naïve, 漢字 ok. ".encode() * 3)
put("text", "crlf_w3", bytes([2 << 1]) + b"a\r\nb\r\nc\r\nd\r\ne\r\nf\r\ng\r\nh\r\ni\r\nj\r\n" * 2)
put("text", "bad_not_utf8", b"\x00To be\xff or not to be")
put("text", "bad_one_char", b"\x00a")
put("text", "bad_empty", b"\x00")
put("text", "bad_window_too_long", bytes([100 << 1]) + PLAY.encode())
put("text", "bad_outside_vocab", bytes([1]) + "caf\u00e9 au lait, un caf\u00e9".encode())


# --------------------------------------------------------------- npy
# flags byte: bit 0 an .npz archive (else one .npy); bit 1 targets as classes
def npy(descr, shape, data):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + data


def npz(members):
    import io
    import zipfile
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, data, zipfile.ZIP_DEFLATED)
    return b.getvalue()


F4 = struct.pack("<4f", 1.0, -2.0, 0.5, 3.0)
put("npy", "f4_2x2", b"\x00" + npy("<f4", "(2, 2)", F4))
put("npy", "i8_labels", b"\x02" + npy("<i8", "(3,)", struct.pack("<3q", 0, 4, 1)))
put("npy", "u1_images", b"\x00" + npy("|u1", "(2, 2, 2)", bytes(range(8))))
put("npy", "be_f8", b"\x00" + npy(">f8", "(2,)", struct.pack(">2d", 1.5, -1.0)))
put("npy", "npz_train_test", b"\x03" + npz([
    ("x_train.npy", npy("<f4", "(2, 2)", F4)),
    ("y_train.npy", npy("<i8", "(2,)", struct.pack("<2q", 1, 0))),
    ("x_test.npy", npy("<f4", "(1, 2)", struct.pack("<2f", 0, 1))),
    ("y_test.npy", npy("<i8", "(1,)", struct.pack("<q", 1)))]))
put("npy", "bad_complex", b"\x00" + npy("<c8", "(1,)", bytes(8)))
put("npy", "bad_truncated", b"\x00" + npy("<f4", "(4, 4)", F4))
put("npy", "bad_fortran", b"\x00" + npy("<f4", "(2, 2)", F4).replace(b"False", b"True "))
put("npy", "bad_magic", b"\x00PK\x03\x04not numpy")
put("npy", "bad_npz_not_zip", b"\x01" + npy("<f4", "(2, 2)", F4))

# --------------------------------------------------------------- cifar
# flags byte: bit 0 CIFAR-100 (two label bytes)
PIX = bytes((i * 7) % 256 for i in range(3072))
put("cifar", "ten_two", b"\x00" + b"\x03" + PIX + b"\x09" + PIX)
put("cifar", "ten_gz", b"\x00" + gz(b"\x00" + PIX))
put("cifar", "hundred_one", b"\x01" + b"\x02\x63" + PIX)
put("cifar", "bad_cut", b"\x00" + (b"\x03" + PIX)[:-1])
put("cifar", "bad_label", b"\x00" + b"\x0a" + PIX)
put("cifar", "bad_empty", b"\x00")

# --------------------------------------------------------------- csv_columns
# flags byte: bit 0 the target as class labels, bit 1 gzip; a line naming
# the targets; the file
put("csv_columns", "price", b"\x00price\nrooms,price,age\n3,250.5,10\n4,300,2\n")
put("csv_columns", "two_targets", b"\x00a,b\nx,a,y,b\n1,2,3,4\n5,6,7,8\n")
put("csv_columns", "label_classes", b"\x01label\nlabel,f1,f2\n1,0.5,2\n0,1,1\n")
put("csv_columns", "gz_quoted", b"\x02y\n" + b'"x","y"\n"1.5","2"\n')
put("csv_columns", "bad_missing_column", b"\x00price\nrooms,age\n3,10\n")
put("csv_columns", "bad_no_header", b"\x00price\n1,2\n3,4\n")
put("csv_columns", "bad_text_value", b"\x00y\nx,y\n1,cheap\n")
put("csv_columns", "bad_class_float", b"\x01y\nx,y\n1,0.5\n")
put("csv_columns", "bad_all_targets", b"\x00x\nx\n1\n")

# --------------------------------------------------------------- image_sample
# flags byte: bit 0 RGB (else grey), bits 1-3 the side - 1
put("image_sample", "gray_to_4", bytes([3 << 1]) + png(4, 4, 0, 1, [b"\x90", b"\x60", b"\x60", b"\x90"]))
put("image_sample", "rgb_to_2", bytes([1 << 1 | 1]) + png(3, 2, 2, 8, [b"\x00" * 9, b"\xff" * 9]))
put("image_sample", "gray8_to_8", bytes([7 << 1]) + png(2, 2, 0, 8, [b"\x10\x20", b"\x30\x40"]))
put("image_sample", "palette_rgb", bytes([1]) + png(8, 1, 3, 1, [b"\xa5"], palette=b"\0\0\0\xff\xff\xff"))
put("image_sample", "bad_jpeg_head", b"\x01\xff\xd8\xff\xe0\x00\x10JFIF")
put("image_sample", "bad_png_cut", b"\x01" + png(8, 8, 2, 8, [b"\x09" * 24] * 8)[:-20])
put("image_sample", "bad_pgm", b"\x00P5\n2 2\n255\n\x00\xff\x33\x66")
