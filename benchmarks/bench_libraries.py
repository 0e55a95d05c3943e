"""Issue 12 §3: what the libraries that replaced hand-written infrastructure cost, each against
a floor measured in the same run.

1. ZIP directory: `rangezip.read_directory` (zipfile over RangeFile, then our ZipMember list)
   vs the floor `zipfile.ZipFile` on the same bytes in memory (the library's parse alone).
2. HTTP: `HttpClient.read_range` (urllib3 + our checks) streaming a file from a loopback nginx
   vs the floor `http.client` reading the same range in the same 64 KiB chunks (what the
   client did before urllib3, without its checks).
3. safetensors: `load_encoder_weights` (layouts tried, shapes checked, only the encoder's
   tensors read) from a `.safetensors` file whose unused head is as large as the encoder vs
   the floor: `safetensors.torch.load_file` and `load_state_dict` of the keys that fit, nothing
   else (the plainest load of the same weights into the same module).

    python benchmarks/bench_libraries.py [--members 100000] [--mib 256] [--repeats 5]

Writes only under a temporary folder it removes. Part 2 is skipped without nginx.
"""

from __future__ import annotations

import argparse
import http.client
import io
import sys
import tempfile
import zipfile
from pathlib import Path

from benchutil import best

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


class BytesReader:
    def __init__(self, data: bytes):
        self.data, self.size = data, len(data)

    def read_at(self, offset: int, n: int) -> bytes:
        return self.data[offset:offset + n]


def bench_directory(members: int, repeats: int) -> list[tuple[str, float]]:
    from sunrgbd_tools.remote.rangezip import read_directory

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # names shaped like SUNRGBD.zip's
        for i in range(members):
            zf.writestr(zipfile.ZipInfo(f"SUNRGBD/kv2/kinect2data/{i // 20:06d}_2014-06-24_15-29-22_"
                                        f"094959634447_rgbf000{i % 100:03d}-resize/image/{i:07d}.jpg",
                                        (2014, 6, 24, 15, 29, 22)), b"")
    data = buf.getvalue()
    ours = best(lambda: read_directory(BytesReader(data), "bench.zip"), repeats)
    floor = best(lambda: zipfile.ZipFile(io.BytesIO(data)), repeats)
    return [(f"directory of {members} members: read_directory", ours),
            ("floor: zipfile.ZipFile on the same bytes", floor)]


def bench_http(mib: int, repeats: int, work: Path) -> list[tuple[str, float]]:
    from httpfixtures import Nginx, nginx_binary

    from sunrgbd_tools.remote.http import HttpClient, HttpConfig

    if nginx_binary() is None:
        print("nginx not installed: HTTP part skipped")
        return []
    www = work / "www"
    www.mkdir()
    size = mib << 20
    (www / "big.bin").write_bytes(bytes(range(256)) * (size // 256))
    srv = Nginx(www)
    try:
        client = HttpClient(HttpConfig(timeout=30))
        info = client.probe(srv.url + "big.bin")
        assert info.size == size and info.accepts_ranges

        def ours():
            n = [0]
            client.read_range(info, 0, size, lambda b: n.__setitem__(0, n[0] + len(b)))
            assert n[0] == size

        host, port = srv.url.split("//")[1].rstrip("/").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)

        def floor():
            conn.request("GET", "/big.bin", headers={"Range": f"bytes=0-{size - 1}",
                                                     "Accept-Encoding": "identity"})
            resp = conn.getresponse()
            n = 0
            while chunk := resp.read(1 << 16):
                n += len(chunk)
            assert resp.status == 206 and n == size

        ours_s = best(ours, repeats)
        floor_s = best(floor, repeats)
        conn.close()
    finally:
        srv.close()
    return [(f"HTTP range of {mib} MiB from loopback nginx: read_range", ours_s),
            ("floor: http.client, same range, same chunks", floor_s)]


def bench_safetensors(repeats: int, work: Path) -> list[tuple[str, float]]:
    import torch
    from safetensors.torch import load_file, save_file

    from segtrain.models import create_model
    from segtrain.models.pretrained import load_encoder_weights

    torch.manual_seed(0)
    model = create_model("convnext_upernet", 37, variant="tiny")
    sd = {k: v.contiguous() for k, v in model.encoder.state_dict().items() if not k.startswith("out_norms.")}
    n = sum(v.numel() for v in sd.values())
    sd["head.fc.weight"] = torch.zeros(n // 768, 768)  # an unused head as large as the encoder
    path = work / "enc.safetensors"
    save_file(sd, str(path))
    mb = path.stat().st_size / 1e6
    ours_keys = set(model.encoder.state_dict())

    def floor():
        loaded = load_file(str(path))
        model.encoder.load_state_dict({k: v for k, v in loaded.items() if k in ours_keys}, strict=False)

    ours = best(lambda: load_encoder_weights(model, path, "convnext_upernet"), repeats)
    floor_s = best(floor, repeats)
    return [(f"safetensors {mb:.0f} MB (half of it an unused head): load_encoder_weights", ours),
            ("floor: load_file + load_state_dict of the keys that fit", floor_s)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: zip,http,safetensors")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-lib-") as tmp:
        rows: list[tuple[str, float]] = []
        if "zip" not in skip:
            rows += bench_directory(args.members, args.repeats)
        if "http" not in skip:
            rows += bench_http(args.mib, args.repeats, Path(tmp))
        if "safetensors" not in skip:
            rows += bench_safetensors(args.repeats, Path(tmp))
    print(f"| measurement | seconds (best of {args.repeats}) |")
    print("|---|---|")
    for i in range(0, len(rows), 2):
        (name, s), (fname, fs) = rows[i], rows[i + 1]
        print(f"| {name} | {s:.3f} |")
        print(f"| {fname} | {fs:.3f} |")
        print(f"| **ratio** | **{s / fs:.2f}** |")


if __name__ == "__main__":
    main()
