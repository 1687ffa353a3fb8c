"""Alert latency (issue 24): how long after a rule's condition holds (plus its `for`) each
receiver has the notification, and how long after it stops holding the resolution.

Starts, all on loopback: an HTTP receiver on :18089 (/hook, its HMAC signature checked;
/slack), an SMTP receiver on :18025 (aiosmtpd), the simulator on :18081 and flowgate with
examples/bench/alerts.toml; sends ~100 requests a second to the chat route and, each cycle,
restarts the simulator answering every request with 500, waits for the three firing
notifications, restarts it healthy and waits for the three resolutions. The condition's
times come from the client's own record of answers (the rule: more than 5% of the answers
over 10 s are 5xx, for 5 s).

    python bench/alerts.py BIN OUT_DIR [CYCLES]
"""

import asyncio
import hashlib
import hmac
import http.client
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time

from aiosmtpd.controller import Controller

BIN, OUT = sys.argv[1], sys.argv[2]
CYCLES = int(sys.argv[3]) if len(sys.argv) > 3 else 3
SECRET = "bench-secret"
WINDOW, FOR, THRESHOLD = 10.0, 5.0, 0.05

got = []  # (arrival, receiver, status)
lock = threading.Lock()


class Hooks(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        now = time.time()
        doc = json.loads(body)
        if self.path == "/hook":
            ts = self.headers["x-flowgate-timestamp"]
            want = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            if self.headers["x-flowgate-signature"] != want:
                print("bad signature", file=sys.stderr)
                self.send_response(401)
                self.end_headers()
                return
            status = doc["status"]
        else:
            status = "resolved" if doc["text"].startswith("[RESOLVED]") else "firing"
        with lock:
            got.append((now, self.path.strip("/"), status))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


class Mail:
    async def handle_DATA(self, server, session, envelope):
        now = time.time()
        text = envelope.content.decode("utf-8", "replace")
        status = "resolved" if "[RESOLVED]" in text.split("\n\n")[0] else "firing"
        with lock:
            got.append((now, "mail", status))
        return "250 OK"


def start_sim(error_rate):
    p = subprocess.Popen([BIN, "sim", "--listen", "127.0.0.1:18081", "--error-rate", str(error_rate)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", 18081, timeout=1)
            c.request("GET", "/health")
            c.getresponse().read()
            return p
        except OSError:
            time.sleep(0.02)
    raise SystemExit("the simulator did not start")


answers = []  # (time, status)
stop = threading.Event()
BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def load():
    c = None
    while not stop.is_set():
        t = time.time()
        try:
            if c is None:
                c = http.client.HTTPConnection("127.0.0.1", 18180, timeout=5)
            c.request("POST", "/v1/chat/completions", BODY, {"content-type": "application/json"})
            r = c.getresponse()
            r.read()
            status = r.status
        except OSError:
            c, status = None, 599
        with lock:
            answers.append((time.time(), status))
        time.sleep(max(0.0, 0.04 - (time.time() - t)))


def condition_changes(since, want):
    """The first answer after `since` at which the 10 s error ratio is above (want=True) or at
    or under (want=False) the threshold."""
    with lock:
        a = list(answers)
    for i, (t, _) in enumerate(a):
        if t < since:
            continue
        window = [s for (u, s) in a[: i + 1] if u > t - WINDOW]
        ratio = sum(1 for s in window if s >= 500) / len(window)
        if (ratio > THRESHOLD) == want:
            return t
    return None


def wait_for(status, since, timeout=90):
    end = time.time() + timeout
    while time.time() < end:
        with lock:
            seen = {r: t for (t, r, s) in got if s == status and t >= since}
        if len(seen) == 3:
            return seen
        time.sleep(0.05)
    raise SystemExit(f"not every receiver got a {status} notification: {seen}")


def main():
    os.makedirs(OUT, exist_ok=True)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 18089), Hooks)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    smtp = Controller(Mail(), hostname="127.0.0.1", port=18025)
    smtp.start()
    sim = start_sim(0)
    env = dict(os.environ, FLOWGATE_WEBHOOK_SECRET=SECRET)
    log = open(os.path.join(OUT, "flowgate.log"), "w")
    gw = subprocess.Popen([BIN, "serve", "--config", "examples/bench/alerts.toml"], env=env,
                          stdout=log, stderr=log, start_new_session=True)
    procs = [gw]
    try:
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", 18190, timeout=1)
                c.request("GET", "/health")
                c.getresponse().read()
                break
            except OSError:
                time.sleep(0.05)
        threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        rows = []
        time.sleep(WINDOW + 2)
        for cycle in range(1, CYCLES + 1):
            sim.terminate(); sim.wait()
            failing_at = time.time()
            sim = start_sim(1.0)
            fired = wait_for("firing", failing_at)
            time.sleep(2)
            sim.terminate(); sim.wait()
            healthy_at = time.time()
            sim = start_sim(0)
            resolved = wait_for("resolved", healthy_at)
            true_at = condition_changes(failing_at, True)
            false_at = condition_changes(healthy_at, False)
            for r in ("hook", "slack", "mail"):
                rows.append({
                    "cycle": cycle, "receiver": r,
                    "fire_after_for_s": round(fired[r] - (true_at + FOR), 3),
                    "resolve_s": round(resolved[r] - false_at, 3),
                })
            print(f"cycle {cycle}: " + ", ".join(
                f"{x['receiver']} +{x['fire_after_for_s']}s / +{x['resolve_s']}s" for x in rows[-3:]), file=sys.stderr)
            time.sleep(WINDOW + 2)
        stop.set()
        json.dump(rows, open(os.path.join(OUT, "latency.json"), "w"), indent=1)
        fire = [x["fire_after_for_s"] for x in rows]
        res = [x["resolve_s"] for x in rows]
        print(f"| measure | median | max | n |\n|---|---|---|---|")
        print(f"| firing: receiver has it, beyond the condition + `for` (s) | {statistics.median(fire):.2f} | {max(fire):.2f} | {len(fire)} |")
        print(f"| resolved: receiver has it, after the condition stops (s) | {statistics.median(res):.2f} | {max(res):.2f} | {len(res)} |")
        for r in ("hook", "slack", "mail"):
            f = [x["fire_after_for_s"] for x in rows if x["receiver"] == r]
            print(f"| {r}: firing beyond `for`, each cycle (s) | {', '.join(f'{v:.2f}' for v in f)} | | |")
    finally:
        stop.set()
        for p in procs + [sim]:
            p.terminate()
        smtp.stop()
        httpd.shutdown()


main()
