#!/usr/bin/env python3
"""What `train --serve` costs: epoch times without the page, with the server
alone, and with the page open in headless Chromium (the live charts redrawn
at every event, twice a second).

usage: python3 tools/serve_overhead.py [WORKLOAD ...] [--epochs N] [--skip K] [--rounds R] [--threads T]

Each round runs the three modes one after the other (alternating, so that a
drift of the machine hits all three alike). Chromium takes seconds of CPU to
start, so it is started --settle seconds before the run, on a waiting page
that opens the run's page as soon as the server answers. The first --skip
epochs are left out; the figure is the median over rounds of the mean of the
other epochs' training seconds. Build first: `cargo build --release`;
needs Debian's `chromium`.
"""
import argparse, http.server, json, os, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, 'target', 'release', 'backprop')
WORKLOADS = {
    'mlp-small': ['--model', 'flatten,linear(784,128),relu,linear(128,10)', '--batch-size', '64', '--optimizer', 'adam', '--lr', '1e-3'],
    'cnn-lenet': ['--model', 'lenet', '--batch-size', '64', '--optimizer', 'adam', '--lr', '1e-3'],
    'mlp-wide': ['--model', 'mlp-wide', '--batch-size', '256', '--optimizer', 'sgd', '--lr', '0.05', '--momentum', '0.9'],
}


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


WAITING = """<!doctype html><title>waiting</title><script>
// Open the run's page as soon as its server answers.
setInterval(() => fetch("http://127.0.0.1:PORT/", {mode: "no-cors"}).then(() => location = "http://127.0.0.1:PORT/", () => 0), 100);
</script>"""


def waiting_page(port):
    """Serve the waiting page on a free port (a thread); returns its address."""
    body = WAITING.replace('PORT', str(port)).encode()

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header('content-type', 'text/html')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(('127.0.0.1', 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f'http://127.0.0.1:{srv.server_address[1]}/'


def cpu_seconds(marker):
    """CPU seconds (user + system) of every process whose command line holds `marker`."""
    total = 0.0
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                if marker.encode() not in f.read():
                    continue
            with open(f'/proc/{pid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
        except OSError:
            pass
    return total


CHROMIUM_SHARE = []
SERVER_SHARE = []


def thread_cpu(pid):
    """{thread name: CPU seconds} of process `pid` (threads of one name summed)."""
    out = {}
    try:
        for tid in os.listdir(f'/proc/{pid}/task'):
            with open(f'/proc/{pid}/task/{tid}/stat') as f:
                text = f.read()
            name = text[text.index('(') + 1:text.rindex(')')]
            fields = text.rsplit(')', 1)[1].split()
            out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError):
        pass
    return out


def run(workload, mode, epochs, threads, skip, settle):
    port = free_port()
    cmd = [BIN, 'train', *WORKLOADS[workload], '--epochs', str(epochs), '--threads', str(threads),
           '--json', '--no-plots']
    if mode != 'plain':
        cmd += ['--serve', '--serve-exit', '--port', str(port)]
    browser = srv = None
    if mode == 'page':
        # Chromium first, on a page that opens the run's page once it answers;
        # its start-up (seconds of CPU) is over before the run starts.
        srv, url = waiting_page(port)
        profile = tempfile.mkdtemp()
        browser = subprocess.Popen(
            ['chromium', '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
             '--disable-background-networking', f'--user-data-dir={profile}', '--window-size=1280,1000',
             '--remote-debugging-port=0', url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(settle)
    c0, t0 = (cpu_seconds(profile), time.time()) if browser else (0, 0)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    # The server's threads' CPU time, read from /proc until the run ends.
    last = {}
    reader = threading.Thread(target=lambda: last.update(out=p.stdout.read()))
    reader.start()
    while reader.is_alive():
        t = thread_cpu(p.pid)
        if t:
            last['threads'] = t
        time.sleep(0.1)
    out = last['out']
    p.wait()
    if mode != 'plain' and last.get('threads'):
        t = last['threads']
        serving = sum(v for k, v in t.items() if k.startswith('backprop-serve') or k.startswith('tokio'))
        SERVER_SHARE.append((serving, sum(t.values())))
    if browser:
        # Chromium's CPU during the run, as a share of the machine's.
        CHROMIUM_SHARE.append((cpu_seconds(profile) - c0) / ((time.time() - t0) * os.cpu_count()))
        browser.kill()
        browser.wait()
        srv.shutdown()
    if p.returncode != 0:
        sys.exit(f'failed: {" ".join(cmd)}')
    summary = json.loads(out.strip().splitlines()[-1])
    secs = [e['train_seconds'] for e in summary['epochs']][skip:]
    return sum(secs) / len(secs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('workloads', nargs='*', default=['mlp-small', 'cnn-lenet'])
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--skip', type=int, default=1, help='epochs left out at the start')
    ap.add_argument('--settle', type=float, default=10, help='seconds for Chromium to start before the run')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    modes = ['plain', 'serve', 'page']
    print('| workload | no page (s/epoch) | --serve, no page | --serve, page open | cost of the server | cost with the page |')
    print('| --- | --- | --- | --- | --- | --- |')
    for w in a.workloads:
        t = {m: [] for m in modes}
        for _ in range(a.rounds):
            for m in modes:
                t[m].append(run(w, m, a.epochs, a.threads, a.skip, a.settle))
        med = {m: statistics.median(v) for m, v in t.items()}
        cost = lambda m: f'{(med[m] / med["plain"] - 1) * 100:+.1f} %'
        print(f'| {w} | {med["plain"]:.3f} | {med["serve"]:.3f} | {med["page"]:.3f} | {cost("serve")} | {cost("page")} |',
              flush=True)
        share = statistics.median(CHROMIUM_SHARE) * 100
        CHROMIUM_SHARE.clear()
        worst = max(SERVER_SHARE, key=lambda x: x[0] / x[1])
        SERVER_SHARE.clear()
        print(f'  the server\'s threads used at most {worst[0]:.2f} s of the training process\'s {worst[1]:.1f} s of CPU '
              f'({worst[0] / worst[1] * 100:.2f} %; /proc counts in 0.01 s)', file=sys.stderr)
        print(f'  Chromium used {share:.2f} % of the machine\'s CPU time during the runs with the page open', file=sys.stderr)
        print('  all: ' + '; '.join(f'{m} ' + ' '.join(f'{x:.3f}' for x in v) for m, v in t.items()),
              file=sys.stderr, flush=True)


if __name__ == '__main__':
    main()
