#!/usr/bin/env bash
# Rebuilds examples/spa (the served tree) from scripts/spa-src: fingerprinted asset names (sha256 prefix of the content), index.html pointing
# at them, favicon.ico, and precompressed .gz siblings. No toolchain needed: the output is committed, and
# `static_root` can point at this directory as it is.
set -euo pipefail
src="$(cd "$(dirname "$0")" && pwd)/spa-src"
cd "$(dirname "$0")/../examples/spa"
rm -rf assets index.html index.html.gz favicon.ico.gz
mkdir -p assets
js_hash=$(sha256sum $src/app.js | cut -c1-10)
css_hash=$(sha256sum $src/app.css | cut -c1-10)
cp $src/app.js "assets/app.${js_hash}.js"
cp $src/app.css "assets/app.${css_hash}.css"
sed -e "s/JSHASH/${js_hash}/" -e "s/CSSHASH/${css_hash}/" $src/index.html > index.html
[ -f favicon.ico ] || python3 - <<'PY'
import struct
w = h = 16
pixels = b"".join(struct.pack("<BBBB", 0xeb, 0x6f, 0x1f, 0xff) for _ in range(w * h))  # BGRA, blue square
mask = b"\x00" * (4 * h)  # 16 px rows padded to 32 bits
bmp = struct.pack("<IiiHHIIiiII", 40, w, h * 2, 1, 32, 0, len(pixels) + len(mask), 0, 0, 0, 0) + pixels + mask
ico = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", w, h, 0, 0, 1, 32, len(bmp), 6 + 16) + bmp
open("favicon.ico", "wb").write(ico)
PY
# Precompressed siblings (deterministic: no name, no timestamp).
for f in index.html "assets/app.${js_hash}.js" "assets/app.${css_hash}.css"; do
  gzip -k -n -9 -f "$f"
done
ls -la . assets
