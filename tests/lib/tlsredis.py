"""TLS-only Redis for the tests: a test CA of its own (not the sandbox's), a server
certificate for localhost / 127.0.0.1 / redis.test, a client certificate for mutual TLS, and
another CA nobody trusts; redis-server with --port 0 (no plaintext port at all)."""
import os
import subprocess

from checks import wait_until
from stack import free_ports


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(d):
    """CA, server and client certificates in d (once)."""
    os.makedirs(d, exist_ok=True)
    if os.path.exists(os.path.join(d, "client.pem")):
        return
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "30", "-subj", f"/CN=fbconnect redis test {ca}", "-keyout", f"{d}/{ca}.key",
                "-out", f"{d}/{ca}.pem", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, ext in (("server", "subjectAltName=DNS:localhost,DNS:redis.test,IP:127.0.0.1\n"
                                 "extendedKeyUsage=serverAuth,clientAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", f"/CN={name}", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr")
        with open(f"{d}/{name}.ext", "w") as f:
            f.write("basicConstraints=CA:FALSE\n" + ext)
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
                "-CAcreateserial", "-days", "30", "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.pem")


class TlsRedis:
    """One TLS-only redis-server (client certificates required)."""

    def __init__(self, stack, name="tls-redis", port=None, extra=None):
        self.pki = os.path.join(stack.dir, "redis-pki")
        make_pki(self.pki)
        self.port = port or free_ports(1)[0]
        self.dir = os.path.join(stack.dir, f"{name}-{self.port}")
        os.makedirs(self.dir, exist_ok=True)
        self.extra = list(extra or [])

    def tls_args(self):
        p = self.pki
        return ["--tls-cert-file", f"{p}/server.pem", "--tls-key-file", f"{p}/server.key",
                "--tls-ca-cert-file", f"{p}/ca.pem", "--tls-auth-clients", "yes"]

    def start(self):
        subprocess.run(["redis-server", "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                        "--daemonize", "yes", "--pidfile", f"{self.dir}/redis.pid", "--dir", self.dir,
                        "--logfile", f"{self.dir}/redis.log", "--appendonly", "yes", "--save", "",
                        "--maxmemory-policy", "noeviction", *self.tls_args(), *self.extra], check=True)
        wait_until(lambda: self.cli("PING") == "PONG", what="TLS redis")

    def stop(self):
        self.cli("SHUTDOWN")
        wait_until(lambda: not os.path.exists(f"{self.dir}/redis.pid"), timeout=10, what="redis to stop")

    def cli(self, *args, port=None):
        p = self.pki
        r = subprocess.run(["redis-cli", "--tls", "--cacert", f"{p}/ca.pem", "--cert", f"{p}/client.pem",
                            "--key", f"{p}/client.key", "-h", "127.0.0.1", "-p", str(port or self.port),
                            "--raw", *args], capture_output=True, text=True, timeout=10)
        return r.stdout.strip()

    def env(self, host="localhost", **more):
        p = self.pki
        e = {"FBCONNECT_REDIS_URL": f"rediss://{host}:{self.port}", "FBCONNECT_REDIS_CA_FILE": f"{p}/ca.pem",
             "FBCONNECT_REDIS_CERT_FILE": f"{p}/client.pem", "FBCONNECT_REDIS_KEY_FILE": f"{p}/client.key"}
        e.update(more)
        return {k: v for k, v in e.items() if v is not None}
