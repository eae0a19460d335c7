"""make install, the systemd units, and restarts on a socket fbconnect inherits (as from
systemd's fbconnect.socket) without dropping a request."""
import os
import socket
import subprocess
import threading
import time

import fcgi
from checks import check, wait_until
from stack import process_gone, ROOT


def test_make_install_and_units(stack):
    prefix = os.path.join(stack.dir, "inst", "usr")
    r = subprocess.run(["make", "--no-print-directory", "install", f"PREFIX={prefix}",
                        f"B={os.path.join(stack.dir, 'inst-build')}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    check(r.returncode == 0, f"make install: {r.stderr[-1500:]}")
    for f in ("bin/fbconnect", "lib/fbconnect/fbsandbox", "share/fbconnect/templates/connect.html",
              "share/fbconnect/templates/style.css", "share/fbconnect/nginx/fbconnect-site.conf",
              "lib/systemd/system/fbconnect.service", "lib/systemd/system/fbconnect.socket",
              "share/doc/fbconnect/README.md"):
        check(os.path.exists(os.path.join(prefix, f)), f"{f} not installed")
    units = [os.path.join(prefix, "lib/systemd/system", u) for u in ("fbconnect.service", "fbconnect.socket")]
    text = open(units[0]).read()
    check(f"ExecStart={prefix}/bin/fbconnect" in text and "LimitCORE=0" in text and
          "NoNewPrivileges=yes" in text, "service unit")
    r = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and not r.stderr.strip(), f"systemd-analyze verify: {r.stderr.strip()}")
    # The installed binary finds its templates from any working directory.
    env = stack.fbconnect_env()
    env.pop("FBCONNECT_TEMPLATE_DIR", None)
    r = subprocess.run([os.path.join(prefix, "bin", "fbconnect"), "--check-config"], env=env, cwd="/",
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and f"FBCONNECT_TEMPLATE_DIR={prefix}/share/fbconnect/templates" in r.stdout,
          f"installed defaults: {r.stdout[-300:]} {r.stderr[-300:]}")

    # fbsandbox (hands tokens to anyone) is test equipment: not among the production binaries.
    check(not os.path.exists(os.path.join(prefix, "bin", "fbsandbox")) and
          os.path.exists(os.path.join(prefix, "lib", "fbconnect", "fbsandbox")), "fbsandbox in bin/")

    # Every secret is a credential (the directory the unit loads), a key rotation's old keys
    # included, and the operator's commands run with the service's settings via --service.
    check("LoadCredential=fbconnect:/etc/fbconnect/credentials" in text and
          "Environment=FBCONNECT_" not in text, "the unit does not hand over every secret file")
    old_key, new_key = stack.secret_key(), os.urandom(32)
    import base64
    creds = os.path.join(stack.dir, "inst", "creds")  # as systemd lays out LoadCredential=fbconnect:DIR
    os.makedirs(creds, exist_ok=True)
    service_dir = os.path.join(stack.dir, "inst", "etc-fbconnect")
    os.makedirs(os.path.join(service_dir, "credentials"), exist_ok=True)
    secrets = {"client_secret": stack.client_secret(), "secret_key": base64.b64encode(new_key).decode(),
               "old_secret_keys": base64.b64encode(old_key).decode()}
    for name, value in secrets.items():
        for path in (os.path.join(creds, "fbconnect_" + name), os.path.join(service_dir, "credentials", name)):
            with open(path, "w") as f:
                f.write(value + "\n")
    unit_env = {k: v for k, v in stack.fbconnect_env().items() if not k.endswith("_FILE")}
    unit_env.update(CREDENTIALS_DIRECTORY=creds, FBCONNECT_REDIS_PREFIX="inst-rotation:")
    binary = os.path.join(prefix, "bin", "fbconnect")
    r = subprocess.run([binary, "--check-config"], env=unit_env, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "FBCONNECT_OLD_SECRET_KEYS=(1 keys)" in r.stdout,
          f"ExecStartPre mid-rotation: {r.returncode} {r.stdout[-300:]} {r.stderr[-300:]}")
    r = subprocess.run([binary, "rekey"], env=unit_env, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"rekey with the unit's credentials: {r.returncode} {r.stdout} {r.stderr}")
    with open(os.path.join(service_dir, "fbconnect.env"), "w") as f:
        f.write("# as in systemd/fbconnect.env.example\n")
        for k, v in unit_env.items():
            if k.startswith("FBCONNECT_"):
                f.write(f'{k}="{v}"\n')
    bare = {k: v for k, v in os.environ.items() if not k.startswith("FBCONNECT_")}
    bare["FBCONNECT_SERVICE_DIR"] = service_dir
    r = subprocess.run([binary, "--service", "--check-config"], env=bare, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "FBCONNECT_OLD_SECRET_KEYS=(1 keys)" in r.stdout,
          f"--service: {r.returncode} {r.stdout[-300:]} {r.stderr[-300:]}")
    r = subprocess.run([binary, "--service", "connections"], env=bare, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "connection" in (r.stdout.strip().splitlines() or [""])[-1],
          f"--service connections: {r.stdout[-300:]} {r.stderr}")
    bare["FBCONNECT_SERVICE_DIR"] = os.path.join(stack.dir, "inst", "nowhere")
    r = subprocess.run([binary, "--service", "connections"], env=bare, capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and "fbconnect.env" in r.stderr, f"--service without its file: {r.stderr}")


def test_restart_on_inherited_socket_drops_nothing(stack):
    path = os.path.join(stack.dir, "activated.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1024)
    env = stack.fbconnect_env(FBCONNECT_LISTEN="unix:/nonexistent/ignored.sock", LISTEN_FDS="1")

    def start():
        # fd 3 is the inherited socket; LISTEN_PID must be the service's own pid.
        return subprocess.Popen(["sh", "-c", f'LISTEN_PID=$$ exec "{stack.build}/fbconnect"'],
                                env=env, pass_fds=(3,), preexec_fn=lambda: os.dup2(listener.fileno(), 3),
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(stack.dir, "logs",
                                                                                  "activated.log"), "a"))

    proc = start()
    results = []
    done = threading.Event()

    def client():
        while not done.is_set():
            try:
                c = fcgi.Connection(path, timeout=30)
                results.append(c.request(fcgi.params("/healthz"))[0])
                c.close()
            except Exception as e:  # noqa: BLE001
                results.append(repr(e))
            time.sleep(0.002)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):  # three restarts while requests keep coming
            wait_until(lambda: len(results) > 20, what="requests before the restart")
            old = proc
            old.terminate()
            check(old.wait(timeout=30) == 0, "exit status of the old process")
            time.sleep(0.1)  # nobody accepts for a moment: new connections wait in the backlog
            proc = start()
            time.sleep(0.3)
    finally:
        done.set()
        for t in threads:
            t.join(30)
        proc.terminate()
        proc.wait(timeout=30)
        listener.close()
    bad = [r for r in results if r != 200]
    check(len(results) > 100, f"only {len(results)} requests made")
    check(not bad, f"{len(bad)} of {len(results)} requests failed across restarts: {bad[:3]}")
    check(process_gone(proc.pid), "still running")


def run_make_run(stack, run_dir, env_extra, https=False):
    """Starts scripts/run.sh (what `make run` runs) in the background, returns (proc, output
    so far, ports)."""
    http_port, https_port, internal, sandbox, sandbox_http, redis = __import__("stack").free_ports(6)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FBCONNECT_")}
    env.update(RUN_DIR=run_dir, HTTP_PORT=str(http_port), HTTPS_PORT=str(https_port),
               INTERNAL_PORT=str(internal), SANDBOX_PORT=str(sandbox),
               SANDBOX_HTTP_PORT=str(sandbox_http), REDIS_PORT=str(redis), BUILD=stack.build)
    env.update(env_extra)
    out = open(os.path.join(stack.dir, "logs", "make-run.out"), "w+")
    proc = subprocess.Popen(["sh", os.path.join(ROOT, "scripts", "run.sh")], env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)

    def text():
        out.flush()
        return open(out.name).read()
    wait_until(lambda: "Ctrl-C stops everything" in text() or proc.poll() is not None, timeout=60,
               what="make run to start")
    return proc, text, http_port, https_port


def stop_make_run(proc, text):
    import signal
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    proc.wait(timeout=60)
    check("Stopped." in text(), f"no clean stop: {text()[-500:]}")


def test_make_run_twice_with_the_sandbox(stack):
    from web import request
    run_dir = os.path.join(stack.dir, "make-run")
    for attempt in (1, 2):
        proc, text, port, _ = run_make_run(stack, run_dir, {})
        check(f"http://localhost:{port}/connect" in text(), f"run {attempt}: no URL printed: {text()[-400:]}")
        r = request("GET", f"http://127.0.0.1:{port}/connect")
        check(r.status == 200 and "Connect to FreshBooks" in r.text, f"run {attempt}: /connect {r.status}")
        stop_make_run(proc, text)
        for name in ("fbconnect.pid", "fbsandbox.pid", "redis.pid", "nginx.pid"):
            check(not os.path.exists(os.path.join(run_dir, name)), f"run {attempt}: {name} left behind")


def test_make_run_with_real_credentials(stack):
    import re
    import ssl
    import http.client
    run_dir = os.path.join(stack.dir, "make-run-real")
    proc, text, http_port, https_port = run_make_run(stack, run_dir, {"FBCONNECT_CLIENT_ID": "my-app-id",
                                                                      "FBCONNECT_CLIENT_SECRET": "my-secret"})
    try:
        # Plain HTTP goes to HTTPS (the Secure cookie would be dropped over HTTP).
        plain = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        plain.request("GET", "/connect?return_to=/x", headers={"Host": f"localhost:{http_port}"})
        r = plain.getresponse()
        check(r.status == 301 and r.getheader("Location") == f"https://localhost:{https_port}/connect?return_to=/x",
              f"http in real mode: {r.status} {r.getheader('Location')}")
        plain.close()
        check(f"https://localhost:{https_port}/callback" in text(), f"redirect URI not printed: {text()[-500:]}")
        check(not os.path.exists(os.path.join(run_dir, "fbsandbox.pid")), "sandbox started with real credentials")
        ctx = ssl.create_default_context(cafile=os.path.join(run_dir, "ca", "ca.pem"))
        c = http.client.HTTPSConnection("localhost", https_port, context=ctx, timeout=10)
        c.request("GET", "/connect")
        body = c.getresponse().read().decode()
        link = re.search(r'<a class="button" href="([^"]+)"', body).group(1)
        check(link.startswith("https://auth.freshbooks.com/oauth/authorize?") and "client_id=my-app-id" in link,
              f"authorize link: {link[:120]}")
        check("my-secret" not in text(), "the client secret was printed")
    finally:
        stop_make_run(proc, text)


def test_make_run_on_a_busy_port(stack):
    """Another program on the site's port: make run says which port and which variable
    moves it, and leaves nothing behind."""
    import socket
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    run_dir = os.path.join(stack.dir, "make-run-busy")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FBCONNECT_")}
        http_port, internal, sandbox, sandbox_http, redis = __import__("stack").free_ports(5)
        env.update(RUN_DIR=run_dir, HTTP_PORT=str(port), INTERNAL_PORT=str(internal),
                   SANDBOX_PORT=str(sandbox), SANDBOX_HTTP_PORT=str(sandbox_http), REDIS_PORT=str(redis),
                   BUILD=stack.build)
        r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "run.sh")], env=env, capture_output=True,
                           text=True, timeout=60)
        out = r.stdout + r.stderr
        check(r.returncode != 0 and f"port {port} is already in use" in out and "HTTP_PORT" in out,
              f"busy port: {r.returncode} {out[-500:]}")
        left = [f for f in os.listdir(run_dir) if f.endswith(".pid")] if os.path.isdir(run_dir) else []
        check(not left, f"pid files left behind: {left}")
    finally:
        busy.close()
