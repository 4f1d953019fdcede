#!/usr/bin/python3
# Writes the test images of `mobileone predict` (one per image mode a user meets) and what timm's eval
# pipeline on PIL makes of them, for tests/MobileOne.Tests/Predict:
#   Images/*.png|jpg|gif        small synthetic images (a few KB each; one 4000x3000 PNG of flat blocks)
#   pil_reference.safetensors   one float32 CHW tensor per case; the metadata entry "cases" (JSON) gives
#                               for each case its file, the pipeline and its parameters and PIL's mode
# The pipeline is timm's transforms_imagenet_eval with torchvision on PIL:
#   Image.open(p).convert("RGB") -> Resize(floor(size / crop_pct), interpolation) -> CenterCrop(size)
#   -> ToTensor -> Normalize(ImageNet mean, std)
# and for Fashion-MNIST models (1 channel) the project's own evaluation transform applied to any image:
#   convert("L") -> Resize(28) -> CenterCrop(28) -> ToTensor -> Normalize(0.2860, 0.3530) -> Pad(2, black).
# Run from the repository root with Debian's python3-pil (9.4), python3-torch and python3-torchvision:
#   /usr/bin/python3 tools/predict/make-predict-references.py
# The images are deterministic (seeded); rerunning rewrites the same bytes with the same library versions.
import io
import json
import math
import os
import struct
import zlib

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image, ImageCms, ImageOps
from torchvision import transforms as T

OUT = os.path.join("tests", "MobileOne.Tests", "Predict")
IMAGES = os.path.join(OUT, "Images")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530

rng = np.random.default_rng(1723)


def photo(w, h):
    """Smooth gradients, a periodic texture, noise and a sharp-edged block: uint8 HxWx3."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = x * 255.0 / max(w - 1, 1)
    g = y * 255.0 / max(h - 1, 1)
    b = 128 + 100 * np.sin(x / 3.0 + y / 5.0)
    img = np.stack([r, g, b], -1) + rng.normal(0, 14, (h, w, 3))
    img[h // 4:h // 2, w // 3:2 * w // 3] = [250, 20, 60]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def alpha(w, h):
    """Alpha 0 in a corner block (with colour kept underneath), ramps elsewhere."""
    y, x = np.mgrid[0:h, 0:w]
    a = (x * 7 + y * 11) % 256
    a[: h // 3, : w // 3] = 0
    a[-3:, :] = 255
    return a.astype(np.uint8)


def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def filter_rows(rows, bpp, cycle):
    """PNG row filters 0..4 (cycling through `cycle`), each row against the previous unfiltered one."""
    out, prev = [], bytes(len(rows[0])) if rows else b""
    for n, row in enumerate(rows):
        kind = cycle[n % len(cycle)]
        f = bytearray()
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            f.append((x - pred) % 256)
        out.append(bytes([kind]) + bytes(f))
        prev = row
    return out


def write_png(path, width, height, bit_depth, color_type, rows, extra=(), bpp=1, cycle=(0,), pixels=None):
    """A PNG written by hand, for the layouts PIL does not write (16-bit RGB/RGBA, 4-bit grey, gAMA, iCCP,
    Adam7 interlacing). `rows` are the packed rows; `pixels` (an HxWxC array of big-endian samples' bytes per
    pixel) asks for Adam7 interlacing instead."""
    interlace = 0
    if pixels is not None:
        interlace, raw = 1, b""
        for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            sub = pixels[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += b"".join(filter_rows([sub[y].tobytes() for y in range(sub.shape[0])], bpp, cycle))
    else:
        raw = b"".join(filter_rows(rows, bpp, cycle))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for tag, payload in extra:
        data += chunk(tag, payload)
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def linear_icc():
    """PIL's built-in sRGB profile with its three tone curves replaced by gamma 1.0: any decoder that applied
    the profile would change the pixels a lot, PIL's convert('RGB') ignores it."""
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[24:36] = struct.pack(">6H", 2024, 1, 1, 0, 0, 0)  # fixed creation date, so reruns write the same bytes
    count = struct.unpack(">I", icc[128:132])[0]
    for i in range(count):
        sig, offset, size = struct.unpack(">4sII", icc[132 + 12 * i: 144 + 12 * i])
        if sig in (b"rTRC", b"gTRC", b"bTRC"):
            curve = b"curv" + b"\x00" * 4 + struct.pack(">I", 1) + struct.pack(">H", 0x0100)
            icc[offset:offset + len(curve)] = curve
            icc[132 + 12 * i + 8: 132 + 12 * i + 12] = struct.pack(">I", len(curve))
    return bytes(icc)


def make_images():
    os.makedirs(IMAGES, exist_ok=True)
    w, h = 48, 40
    rgb = photo(w, h)
    a = alpha(w, h)
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    files = {}

    def save(name, im, **kw):
        path = os.path.join(IMAGES, name)
        im.save(path, **kw)
        files[name] = path

    save("rgb.png", Image.fromarray(rgb))
    save("rgba.png", Image.fromarray(np.dstack([rgb, a]), "RGBA"))
    save("la.png", Image.fromarray(np.dstack([grey, a]), "LA"))
    save("gray.png", Image.fromarray(grey, "L"))
    pal = Image.fromarray(rgb).quantize(48, dither=Image.Dither.NONE)
    save("palette.png", pal)
    trns = bytes((i * 37) % 256 if i % 3 else 0 for i in range(48))
    save("palette_trns.png", pal, transparency=trns)
    save("palette.gif", pal)
    save("bw1.png", Image.fromarray(grey, "L").convert("1"))
    # 16-bit grey: PIL opens it as mode "I" and convert("RGB") clips each value to 0..255 (no scaling).
    g16 = (grey.astype(np.uint16) * 3 + rng.integers(0, 3, grey.shape)).astype(np.uint16)
    g16[: h // 4] = g16[: h // 4] * 200  # large 16-bit values as well: they become white
    save("gray16.png", Image.fromarray(g16))
    # The same values Adam7-interlaced, the rows filtered with all five PNG filters in turn.
    write_png(os.path.join(IMAGES, "gray16_adam7.png"), w, h, 16, 0, None, bpp=2, cycle=(0, 1, 2, 3, 4),
              pixels=g16.astype(">u2").reshape(h, w, 1))
    # 16-bit RGB / RGBA / LA: PIL keeps the high byte of each sample.
    rgb16 = rgb.astype(np.uint16) * 256 + rng.integers(0, 256, rgb.shape).astype(np.uint16)
    write_png(os.path.join(IMAGES, "rgb16.png"), w, h, 16, 2, [rgb16[y].astype(">u2").tobytes() for y in range(h)])
    a16 = a.astype(np.uint16) * 256 + rng.integers(0, 256, a.shape).astype(np.uint16)
    rgba16 = np.dstack([rgb16, a16])
    write_png(os.path.join(IMAGES, "rgba16.png"), w, h, 16, 6, [rgba16[y].astype(">u2").tobytes() for y in range(h)])
    la16 = np.dstack([grey.astype(np.uint16) * 257, a16])
    write_png(os.path.join(IMAGES, "la16.png"), w, h, 16, 4, [la16[y].astype(">u2").tobytes() for y in range(h)])
    # 4-bit grey: PIL scales 0..15 to 0..255 (x17).
    g4 = (grey >> 4).astype(np.uint8)
    write_png(os.path.join(IMAGES, "gray4.png"), w, h, 4, 0,
              [bytes(((g4[y, x] << 4) | g4[y, x + 1]) for x in range(0, w, 2)) for y in range(h)])
    # Colour-management chunks PIL ignores: gAMA 1.0 with odd cHRM primaries; an iCCP with linear tone curves.
    chrm = struct.pack(">8I", 31270, 32900, 70000, 30000, 20000, 70000, 10000, 5000)
    rows = [rgb[y].tobytes() for y in range(h)]
    write_png(os.path.join(IMAGES, "rgb_gamma.png"), w, h, 8, 2, rows, [(b"gAMA", struct.pack(">I", 100000)), (b"cHRM", chrm)])
    write_png(os.path.join(IMAGES, "rgb_icc.png"), w, h, 8, 2, rows, [(b"iCCP", b"linear\x00\x00" + zlib.compress(linear_icc()))])
    save("rgb.jpg", Image.fromarray(rgb), quality=90)
    save("rgb444.jpg", Image.fromarray(rgb), quality=95, subsampling=0)
    save("progressive.jpg", Image.fromarray(rgb), quality=85, progressive=True)
    save("gray.jpg", Image.fromarray(grey, "L"), quality=90)
    save("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=90)
    save("rgb_icc.jpg", Image.fromarray(rgb), quality=90, icc_profile=linear_icc())
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    save("exif6.jpg", Image.fromarray(rgb), quality=90, exif=exif)
    save("tiny1x1.png", Image.fromarray(np.array([[[200, 30, 90]]], np.uint8)))
    save("tiny3x1.png", Image.fromarray(rgb[5:6, 10:13]))
    save("tiny2x3.jpg", Image.fromarray(rgb[10:13, 20:22]), quality=95)
    # Large: 4000x3000 flat blocks with 9-pixel stripes (compresses to a few KB); the resize spans ~80 source pixels.
    big = np.zeros((3000, 4000, 3), np.uint8)
    yy, xx = np.mgrid[0:3000, 0:4000]
    big[..., 0] = ((xx // 250) * 37 % 256).astype(np.uint8)
    big[..., 1] = ((yy // 200) * 53 % 256).astype(np.uint8)
    big[..., 2] = np.where((xx // 9) % 2 == 0, 230, 20).astype(np.uint8)
    save("large.png", Image.fromarray(big), optimize=True)
    return sorted(os.listdir(IMAGES))


def imagenet_eval(size, crop_pct, interpolation):
    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[interpolation]
    return T.Compose([
        T.Resize(math.floor(size / crop_pct), interpolation=mode),
        T.CenterCrop(size),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ])


def fashion_eval():
    black = (0.0 - FASHION_MEAN) / FASHION_STD
    return T.Compose([
        T.Resize(28, interpolation=T.InterpolationMode.BILINEAR),
        T.CenterCrop(28),
        T.ToTensor(),
        T.Normalize((FASHION_MEAN,), (FASHION_STD,)),
        lambda t: torch.nn.functional.pad(t, (2, 2, 2, 2), value=black),
    ])


def key(name):
    return name.replace(".", "_")


def main():
    names = make_images()
    tensors, cases = {}, {}

    def add(case, file, pipeline, size=None, crop_pct=None, interpolation="bilinear", exif_transpose=False):
        im = Image.open(os.path.join(IMAGES, file))
        mode = im.mode
        if exif_transpose:
            im = ImageOps.exif_transpose(im)
        if pipeline == "fashion":
            x = fashion_eval()(im.convert("L"))
        else:
            x = imagenet_eval(size, crop_pct, interpolation)(im.convert("RGB"))
        tensors[case] = x.contiguous().numpy().astype(np.float32)
        cases[case] = {"file": file, "pipeline": pipeline, "size": size, "crop_pct": crop_pct,
                       "interpolation": interpolation, "exif_transpose": exif_transpose, "pil_mode": mode,
                       "shape": list(x.shape)}

    for name in names:
        add(f"{key(name)}.s24", name, "imagenet", 24, 0.875)
    for name in ["rgb.png", "rgba.png", "palette_trns.png", "gray16.png", "tiny3x1.png", "large.png", "rgb.jpg"]:
        add(f"{key(name)}.s24_bicubic_0.9", name, "imagenet", 24, 0.9, "bicubic")
    add("exif6_jpg.s24_transposed", "exif6.jpg", "imagenet", 24, 0.875, exif_transpose=True)
    # 64x64 inputs for the end-to-end logits check (the S0 fixture runs at any size).
    add("rgb_png.s64", "rgb.png", "imagenet", 64, 0.875)
    add("rgb_jpg.s64", "rgb.jpg", "imagenet", 64, 0.875)
    for name in ["rgb.png", "gray.png", "rgba.png", "cmyk.jpg"]:
        add(f"{key(name)}.fashion", name, "fashion")

    write_safetensors(os.path.join(OUT, "pil_reference.safetensors"), tensors, {
        "cases": json.dumps(cases, sort_keys=True),
        "versions": json.dumps({"pillow": PIL.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__}),
    })
    total = sum(os.path.getsize(os.path.join(IMAGES, n)) for n in names) + os.path.getsize(os.path.join(OUT, "pil_reference.safetensors"))
    print(f"{len(names)} images, {len(cases)} cases, {total} bytes")


def write_safetensors(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name in sorted(tensors):
        blob = tensors[name].astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


if __name__ == "__main__":
    main()
