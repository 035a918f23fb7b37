#!/usr/bin/python3
# WebKitGTK's own floor, for comparison with the app's figures (`cargo bench -p
# callhelper-desktop`): a bare WebKitGTK window with the app's settings (no compositing,
# no GPU, a document-viewer cache), none of our code, measured the way the bench measures
# the app.
#
#   memory: an empty page, idle 15 s; PSS of the window's process and WebKit's two.
#   keys:   a page shaped like the script panel; the key "1" (sent with xdotool, 80 times)
#           redraws the panel with the other of two steps; the page times key -> painted
#           frame as the app does (requestAnimationFrame, then a posted message).
#
# Run (Debian: python3-gi, gir1.2-webkit2-4.1, xvfb, xdotool, dbus):
#   WEBKIT_DISABLE_COMPOSITING_MODE=1 WEBKIT_DISABLE_DMABUF_RENDERER=1 \
#     xvfb-run -a -s "-screen 0 1280x720x24" dbus-run-session \
#     /usr/bin/python3 src-tauri/benches/webkit-floor.py memory|keys
import json
import os
import subprocess
import sys

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("WebKit2", "4.1")
from gi.repository import GLib, Gtk, WebKit2  # noqa: E402

PANEL = """<html><head><style>
body{margin:0;font:15px "DejaVu Sans",sans-serif;background:#f5f7f8;color:#17232b}
.top{height:50px;background:#0f4c5c}.wrap{display:grid;grid-template-columns:360px 1fr;height:650px}
.left{border-right:1px solid #d9e0e4}.panel{padding:1rem 1.2rem;display:flex;flex-direction:column;gap:.6rem}
.say{background:#eef6f4;border-left:4px solid #1f7a6d;padding:.8rem 1rem;font-size:1.3rem;margin:0}
button{background:#fff;border:1px solid #d9e0e4;border-radius:6px;padding:.35rem .7rem;font:inherit;min-width:290px;text-align:left}
.obj button{background:#fff6e6}kbd{border:1px solid;border-radius:3px;font-size:.75em;padding:0 .25em}
</style></head><body><div class="top"></div><div class="wrap"><div class="left"></div><div class="panel" id="p"></div></div>
<script>
window.samples = [];
const A = {t: "Greeting", s: "Good afternoon! This is Anna from CallHelper. Could I speak to whoever runs the accounts, please?", a: ["Put through / speaking to them", "Not available", "Wrong number"]};
const B = {t: "Meeting the decision maker", s: "We help small companies keep their books online. Have you got two minutes for me to tell you how?", a: ["Happy to listen", "Busy now, call back"]};
const path = []; let cur = A;
function render() {
  path.push(cur.t);
  document.getElementById("p").innerHTML = `<h2>Cold call <b>${cur.t}</b></h2><p class="say">${cur.s}</p>
    <h3>CLIENT'S ANSWER</h3><div>${cur.a.map((x, i) => `<button><kbd>${i + 1}</kbd> ${x}</button>`).join(" ")}</div>
    <h3>OBJECTIONS</h3><div class="obj"><button><kbd>F1</kbd> Too expensive</button> <button><kbd>F2</kbd> No time</button></div>
    <h3>PATH SO FAR</h3><ol>${path.slice(-6).map((x) => `<li>${x}</li>`).join("")}</ol>`;
}
render();
addEventListener("keydown", (e) => {
  const start = e.timeStamp; cur = cur === A ? B : A; render();
  requestAnimationFrame(() => { const ch = new MessageChannel(); ch.port1.onmessage = () => samples.push(performance.now() - start); ch.port2.postMessage(0); });
});
</script></body></html>"""


def pss_mib():
    me = os.getpid()
    pids = [me]
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                stat = open(f"/proc/{p}/stat").read()
                if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                    pids.append(int(p))
            except OSError:
                pass
    total = 0
    for p in pids:
        kb = next(int(x.split()[1]) for x in open(f"/proc/{p}/smaps_rollup") if x.startswith("Pss:"))
        print(f"  {open(f'/proc/{p}/comm').read().strip():<24} {kb / 1024:7.1f} MiB")
        total += kb
    print(f"  total PSS                {total / 1024:7.1f} MiB")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "memory"
    window = Gtk.Window()
    window.set_default_size(1280, 720)
    view = WebKit2.WebView()
    settings = view.get_settings()
    settings.set_hardware_acceleration_policy(WebKit2.HardwareAccelerationPolicy.NEVER)
    settings.set_enable_page_cache(False)
    settings.set_enable_webgl(False)
    view.get_context().set_cache_model(WebKit2.CacheModel.DOCUMENT_VIEWER)
    view.load_html("<html><body>CallHelper</body></html>" if mode == "memory" else PANEL, "http://localhost/")
    window.add(view)
    window.show_all()

    if mode == "memory":
        def report():
            print("bare WebKitGTK window, empty page, idle 15 s:")
            pss_mib()
            Gtk.main_quit()
        GLib.timeout_add_seconds(15, report)
    else:
        presses = [0]

        def done(v, result, _):
            samples = sorted(json.loads(v.run_javascript_finish(result).get_js_value().to_string()))
            n = len(samples)
            print(f"bare WebKitGTK, panel redrawn on a key: median {samples[n // 2]:.1f} ms, "
                  f"p95 {samples[int(n * 0.95)]:.1f} ms over {n} presses")
            Gtk.main_quit()

        def press():
            if presses[0] < 80:
                subprocess.run(["xdotool", "key", "1"], check=True)
                presses[0] += 1
                return True
            view.run_javascript("JSON.stringify(window.samples)", None, done, None)
            return False

        def begin():
            window.present()
            GLib.timeout_add(120, press)
            return False
        GLib.timeout_add_seconds(5, begin)
    Gtk.main()


main()
