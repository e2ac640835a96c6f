"""A scan opened in a real genome browser: igv.js in headless Chromium, served with Range requests.

One command:

    python benchmarks/browser_check.py                    # writes docs/img/scan_igv.png

It scans 2 Mbp of chr20 with the CTCF ChIP-seq models at --step 10 (`dbtools scan ... -o DIR`,
which writes the tracks, tracks.tsv and igv_session.json), serves DIR and the genome over a
loopback HTTP server that answers Range requests (as a browser reads BigWigs: headers, index,
then the blocks it shows), opens the session in igv.js (npm package `igv`, fetched into
~/.cache/dbtools/igv on first use), and prints what the page reports: the tracks loaded, their
data at the locus and any error on the browser console. It saves a screenshot and fails
(exit 1) when a track did not load, the console shows an error, or no track drew its colour.

Needs: chromium (Debian: apt-get install chromium) and npm.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENOME = ROOT.parent / "shared" / "data" / "genome" / "20.fa.gz"
IGV_CACHE = Path.home() / ".cache" / "dbtools" / "igv"
IGV_VERSION = "3"

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>dbtools scan</title>
<style>body{margin:0;font-family:sans-serif}</style></head><body>
<div id="igv"></div><pre id="status" style="display:none">loading</pre>
<script src="igv.min.js"></script>
<script>
const errors = [];
const _error = console.error;
console.error = (...a) => { errors.push(a.map(String).join(" ")); _error(...a); };
window.addEventListener("error", e => errors.push(String(e.message)));
window.addEventListener("unhandledrejection", e => errors.push(String(e.reason)));
(async () => {
  const session = await (await fetch("tracks/igv_session.json")).json();
  session.loadDefaultGenomes = false;
  session.reference = {id: "chr20-b37", name: "chr20", fastaURL: "genome/20.fa.gz",
                       indexURL: "genome/20.fa.gz.fai", compressedIndexURL: "genome/20.fa.gz.gzi"};
  for (const t of session.tracks) { t.url = "tracks/" + t.url; t.visible = true; }
  const browser = await igv.createBrowser(document.getElementById("igv"), session);
  const report = [];
  for (const t of browser.findTracks(t => t.type === "wig")) {
    let n = 0, max = -Infinity;
    try {
      const feats = await t.getFeatures(browser.referenceFrameList[0].chr,
        browser.referenceFrameList[0].start, browser.referenceFrameList[0].end,
        browser.referenceFrameList[0].bpPerPixel);
      n = feats.length;
      for (const f of feats) max = Math.max(max, f.value);
    } catch (e) { errors.push("track " + t.name + ": " + e); }
    report.push({name: t.name, features: n, max: max});
  }
  await new Promise(r => setTimeout(r, 1500));
  document.getElementById("status").textContent = "DONE " + JSON.stringify({tracks: report, errors: errors});
})().catch(e => { document.getElementById("status").textContent = "DONE " +
   JSON.stringify({tracks: [], errors: errors.concat([String(e)])}); });
</script></body></html>
"""


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with `Range: bytes=a-b` answered by 206 Partial Content, as a browser reads BigWigs."""

    def log_message(self, *args) -> None:
        pass

    def send_head(self):
        rng = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not rng or not os.path.isfile(path):
            return super().send_head()
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
        size = os.path.getsize(path)
        if not m:
            self.send_error(416)
            return None
        a = int(m.group(1)) if m.group(1) else max(0, size - int(m.group(2)))
        b = min(size - 1, int(m.group(2))) if m.group(1) and m.group(2) else size - 1
        if a > b or a >= size:
            self.send_error(416)
            return None
        fh = open(path, "rb")
        fh.seek(a)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {a}-{b}/{size}")
        self.send_header("Content-Length", str(b - a + 1))
        self.end_headers()
        self._remaining = b - a + 1
        return fh

    def copyfile(self, source, outputfile) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        while remaining > 0:
            block = source.read(min(remaining, 1 << 16))
            if not block:
                break
            outputfile.write(block)
            remaining -= len(block)
        self._remaining = None


def igv_js() -> Path:
    """igv.min.js from npm, cached."""
    dist = IGV_CACHE / "node_modules" / "igv" / "dist" / "igv.min.js"
    if not dist.exists():
        IGV_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(IGV_CACHE), f"igv@{IGV_VERSION}"], check=True,
                       stdout=subprocess.DEVNULL)
    return dist


def chromium(*args: str) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        sys.exit("chromium not found (Debian: apt-get install chromium)")
    done = subprocess.run([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=60000", "--window-size=1400,300", *args],
                          capture_output=True, text=True, timeout=300)
    return done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genome", type=Path, default=GENOME)
    ap.add_argument("--region", default="30000000-32000000", help="bases of chr20 scanned and shown")
    ap.add_argument("--models", default="D00328.003,D00328.018", help="the CTCF ChIP-seq models")
    ap.add_argument("--screenshot", type=Path, default=ROOT / "docs" / "img" / "scan_igv.png")
    args = ap.parse_args()
    start, end = (int(x) for x in args.region.split("-"))
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        bed = site / "region.bed"
        bed.write_text(f"20\t{start}\t{end}\n")
        subprocess.run([sys.executable, "-m", "dbtools_cli.main", "scan", str(args.genome), "-r", str(bed),
                        "-m", args.models, "--step", "10", "-o", str(site / "tracks")], check=True)
        session = json.loads((site / "tracks" / "igv_session.json").read_text())
        session["locus"] = f"20:{start + 1}-{end}"
        (site / "tracks" / "igv_session.json").write_text(json.dumps(session))
        (site / "genome").mkdir()
        for suffix in ("", ".fai", ".gzi"):
            os.symlink(str(args.genome) + suffix, site / "genome" / (args.genome.name + suffix))
        shutil.copy(igv_js(), site / "igv.min.js")
        (site / "index.html").write_text(PAGE)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=tmp))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        try:
            dom = chromium("--dump-dom", url)
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            chromium(f"--screenshot={args.screenshot}", url)
        finally:
            server.shutdown()
    m = re.search(r"DONE (\{.*\})", dom)
    if not m:
        sys.exit("the page did not finish loading: " + re.sub(r"\s+", " ", dom)[-500:])
    report = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    for t in report["tracks"]:
        print(f"track {t['name']}: {t['features']} values at the locus, max {t['max']}")
    for e in report["errors"]:
        print(f"console error: {e}")
    drawn = coloured_pixels(args.screenshot)
    print(f"screenshot {args.screenshot}: {drawn} pixels of the tracks' colour")
    expected = len(args.models.split(","))
    ok = (len(report["tracks"]) == expected and all(t["features"] > 0 for t in report["tracks"])
          and not report["errors"] and drawn > 1000)
    print("browser check: " + ("passed" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


def coloured_pixels(png: Path) -> int:
    """Pixels near the ChIP-seq track colour in the screenshot."""
    import matplotlib.image as mpimg
    import numpy as np

    from dbtools.scan.browser import COLOURS

    img = (mpimg.imread(str(png))[..., :3] * 255).astype(int)
    target = np.array(COLOURS["ChIP-seq"])
    return int((np.abs(img - target).sum(axis=-1) < 60).sum())


if __name__ == "__main__":
    main()
