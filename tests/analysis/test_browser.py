"""report.html in a real browser (headless Debian chromium): not blank, and every figure decoded.

Heavy tier only; it FAILS when chromium is missing (CI installs it) rather than skipping silently.
"""

import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib import image as mpimg

from analysis.report import write_report
from tests.analysis.helpers import make_grid_results

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=5000",
]  # fmt: skip

# Test-only probe appended to a copy of the report: marks <body> once every <img> has decoded.
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.length > 0 && imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute('data-figures', ok ? 'loaded:' + imgs.length : 'broken');
});
</script></body>"""


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    assert path, "chromium is not installed: `apt-get install -y chromium` (CI's .ci/run does it)"
    return path


def _run(args, tmp_path, timeout=120):
    profile = tmp_path / "profile"
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.ci
def test_report_html_renders_with_figures(tmp_path):
    html = write_report(make_grid_results(tmp_path / "g"))["html"]
    shot = tmp_path / "shot.png"
    res = _run([f"--screenshot={shot}", "--window-size=1200,2000", html.resolve().as_uri()], tmp_path)
    assert shot.exists(), res.stderr[-2000:]
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert float(pixels.var()) > 0.005, "screenshot is blank"
    assert float((pixels.mean(axis=2) < 0.5).mean()) > 0.01, "almost no dark pixels: no text or plots drawn"

    probed = tmp_path / "probed.html"
    probed.write_text(html.read_text().replace("</body>", PROBE))
    res = _run(["--dump-dom", probed.resolve().as_uri()], tmp_path)
    assert 'data-figures="loaded:3"' in res.stdout, res.stdout[-500:] + res.stderr[-2000:]

    # the probe can fail: the same page with one figure's bytes damaged is reported broken
    damaged = tmp_path / "damaged.html"
    damaged.write_text(probed.read_text().replace("base64,iVBOR", "base64,AAAA", 1))
    res = _run(["--dump-dom", damaged.resolve().as_uri()], tmp_path)
    assert 'data-figures="broken"' in res.stdout, res.stdout[-500:]
