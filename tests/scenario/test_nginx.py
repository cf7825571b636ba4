"""The shipped nginx site (nginx/busymirror.conf) in front of `busymirror serve`,
and serve's own TLS, all on 127.0.0.1.

NginxTest runs a real nginx (Debian's, installed by scripts/deps) on a config
derived from the repository's file: only the listen addresses, server_name,
certificate paths, upstream port and the ACME root are substituted, so what is
tested is the site that ships. The emulator's real push goes through nginx
(HTTPS, HTTP/2 on offer) to the gateway on plain loopback HTTP; everything but
the notification path and /healthz is 404; bodies past the limit are 413;
robots.txt allows the notification path; HTTP/2 works.

GatewayTlsTest: the gateway terminating TLS itself (no nginx), and the refusal
of a non-loopback listen without a certificate (exit 78)."""
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unittest
import urllib.error
import urllib.request
import urllib.robotparser

from harness import BUSYMIRROR, hour, timed
from test_serve import ServeCase, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = os.path.join(HERE, "..", "..", "nginx", "busymirror.conf")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")


def need(tool, name):
    if tool is None:
        raise AssertionError("%s is not installed: run scripts/deps (it installs it)" % name)
    return tool


def self_signed(dirname):
    """A self-signed ECDSA certificate for 127.0.0.1 and localhost: (cert, key)."""
    cert, key = os.path.join(dirname, "cert.pem"), os.path.join(dirname, "key.pem")
    p = subprocess.run([need(OPENSSL, "openssl"), "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError("openssl req failed: %s" % p.stderr)
    os.chmod(key, 0o600)
    return cert, key


def substitute(text, pattern, repl, count):
    """re.subn that insists on exactly `count` matches: a shipped file that drifted
    from what this test knows fails here instead of being tested half-way."""
    out, n = re.subn(pattern, repl, text, flags=re.M)
    if n != count:
        raise AssertionError("nginx/busymirror.conf: %r matched %d times, expected %d"
                             % (pattern, n, count))
    return out


def derive_site(text, https_port, http_port, upstream_port, cert, key, www):
    t = substitute(text, r"^\s*server 127\.0\.0\.1:8443;", "    server 127.0.0.1:%d;"
                   % upstream_port, 1)
    t = substitute(t, r"^\s*listen \[::\]:(80|443)[^;]*;\n", "", 2)  # no IPv6 in the test
    t = substitute(t, r"^(\s*)listen 80;", r"\g<1>listen 127.0.0.1:%d;" % http_port, 1)
    t = substitute(t, r"^(\s*)listen 443 ssl http2;",
                   r"\g<1>listen 127.0.0.1:%d ssl http2;" % https_port, 1)
    t = substitute(t, r"server_name busymirror\.example\.com;", "server_name localhost;", 2)
    t = substitute(t, r"ssl_certificate\s+\S+;", "ssl_certificate %s;" % cert, 1)
    t = substitute(t, r"ssl_certificate_key\s+\S+;", "ssl_certificate_key %s;" % key, 1)
    t = substitute(t, r"root /var/www/html;", "root %s;" % www, 1)
    # nothing of the production machine is left outside the comments
    directives = re.sub(r"#.*", "", t)
    for prod in ("/etc/", "/var/", "example.com", r":8443\b", r":443\b", r"listen 80\b",
                 r"\[::\]"):
        # whole ports only: a free port such as 44312 is not 443
        if re.search(prod, directives):
            raise AssertionError("derived site still names %s:\n%s" % (prod, t))
    return t


class Nginx:
    """nginx on 127.0.0.1 with the derived site, everything under dirname."""

    def __init__(self, case, upstream_port, cert, key):
        self.case = case
        self.dir = os.path.join(case.dir, "nginx")
        for sub in ("", "temp", "www/.well-known/acme-challenge"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.https_port, self.http_port = free_port(), free_port()
        with open(SITE) as f:
            site = derive_site(f.read(), self.https_port, self.http_port, upstream_port, cert,
                               key, os.path.join(self.dir, "www"))
        with open(os.path.join(self.dir, "site.conf"), "w") as f:
            f.write(site)
        temp = os.path.join(self.dir, "temp")
        user = ""
        if os.geteuid() == 0:  # else the workers would become nobody
            user = "user %s %s;\n" % (pwd.getpwuid(os.getuid()).pw_name,
                                      grp.getgrgid(os.getgid()).gr_name)
        self.error_log = os.path.join(self.dir, "error.log")
        self.access_log = os.path.join(self.dir, "access.log")
        conf = (user +
                "worker_processes 1;\n"
                "pid %(d)s/nginx.pid;\n"
                "error_log %(err)s info;\n"
                "events { worker_connections 64; }\n"
                "http {\n"
                "    access_log %(acc)s;\n"
                "    client_body_temp_path %(t)s/body;\n"
                "    proxy_temp_path %(t)s/proxy;\n"
                "    fastcgi_temp_path %(t)s/fastcgi;\n"
                "    uwsgi_temp_path %(t)s/uwsgi;\n"
                "    scgi_temp_path %(t)s/scgi;\n"
                "    include %(d)s/site.conf;\n"
                "}\n") % {"d": self.dir, "err": self.error_log, "acc": self.access_log,
                          "t": temp}
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        base = [need(NGINX, "nginx"), "-p", self.dir, "-e", self.error_log, "-c", self.conf]
        t = subprocess.run(base + ["-t"], capture_output=True, text=True, timeout=30)
        if t.returncode != 0:
            raise AssertionError("nginx -t refused the derived site:\n%s\n%s" % (t.stderr, site))
        self.log = open(os.path.join(self.dir, "nginx.out"), "w")
        self.p = subprocess.Popen(base + ["-g", "daemon off;"], stdout=self.log,
                                  stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while True:
            if self.p.poll() is not None:
                raise AssertionError("nginx exited %d:\n%s" % (self.p.returncode, self.errors()))
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                socket.create_connection(("127.0.0.1", self.http_port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise AssertionError("nginx not listening in 10 s:\n%s" % self.errors())
                time.sleep(0.05)

    def errors(self):
        try:
            with open(self.error_log) as f:
                return f.read()
        except OSError:
            return ""

    def accesses(self):
        with open(self.access_log) as f:
            return f.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGQUIT)  # graceful; the master waits for its workers
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def request(url, method="GET", data=None, headers=None, cafile=None):
    """(status, headers, body) of one request; HTTPS checked against cafile."""
    ctx = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")


def curl_h2(url, cafile):
    """(http_version, status) curl saw for url with HTTP/2 asked for."""
    p = subprocess.run([need(CURL, "curl"), "--http2", "--cacert", cafile, "-s", "-o", os.devnull,
                        "-w", "%{http_version} %{http_code}", "--max-time", "10", url],
                       capture_output=True, text=True, timeout=30)
    return p.stdout.strip()


class TlsCase(ServeCase):
    def setUp(self):
        super().setUp()
        self.cert, self.key = self_signed(self.dir)


class NginxTest(TlsCase):
    def setUp(self):
        super().setUp()
        need(NGINX, "nginx")
        self.nginx = Nginx(self, self.port, self.cert, self.key)
        self.base = "https://127.0.0.1:%d" % self.nginx.https_port

    def tearDown(self):
        self.nginx.stop()
        super().tearDown()

    def get(self, path, **kw):
        return request(self.base + path, cafile=self.cert, **kw)

    def configure_behind_nginx(self):
        # the gateway: plain HTTP on loopback; Google is told nginx's address
        self.configure(gateway={"public_url": self.base + "/google/notify"})

    def test_push_reaches_serve_through_nginx(self):
        a, b, c = self.three_calendars()
        self.configure_behind_nginx()
        s = self.serve()
        self.channels_live(3)
        ev = self.emu.event(a, timed("Through nginx", hour(9)))
        self.expect_blocks([a, b, c], {a: 0, b: 1, c: 1})
        self.emu.delete_event(a, ev["id"])
        self.expect_blocks([a, b, c], {a: 0, b: 0, c: 0})
        # the notifications went through nginx (POSTs from Google's agent, answered 200)
        posts = [line for line in self.nginx.accesses().splitlines()
                 if '"POST /google/notify HTTP/' in line and "APIs-Google" in line]
        self.assertTrue(any('" 200 ' in line for line in posts), self.nginx.accesses())
        self.assertGreaterEqual(len(posts), 3 + 2, self.nginx.accesses())  # 3 syncs + 2 changes
        self.assertNotIn("[error]", self.nginx.errors())
        self.assertEqual(s.p.poll(), None)

    def test_only_the_notification_path_and_healthz_pass(self):
        self.three_calendars()
        self.configure_behind_nginx()
        s = self.serve()
        status, headers, body = self.get("/healthz")
        self.assertEqual((status, body.strip()), (200, "ok"))
        self.assertIn("max-age=", headers.get("Strict-Transport-Security", ""))
        for path in ("/metrics", "/readyz", "/", "/google/notify/x", "/google", "/healthz/x"):
            self.assertEqual(self.get(path)[0], 404, path)
        # the admin listener's /metrics answers on its own port, never through nginx
        self.assertEqual(self.admin("/metrics")[0], 200)
        # GET on the notification path is refused by nginx itself
        self.assertEqual(self.get("/google/notify")[0], 403)
        # a POST the gateway judges: headers pass through nginx (missing ones: 400)
        self.assertEqual(self.get("/google/notify", method="POST", data=b"")[0], 400)
        self.channels_live(3)
        chan, res = self.db("SELECT id, resource_id FROM channels WHERE resource_id IS NOT NULL"
                            " LIMIT 1")[0]
        forged = {"X-Goog-Channel-ID": chan, "X-Goog-Resource-ID": res,
                  "X-Goog-Resource-State": "exists", "X-Goog-Message-Number": "7",
                  "X-Goog-Channel-Token": "B" * 43}
        # from another loopback address, so that nginx's client is not its own peer
        p = subprocess.run([need(CURL, "curl"), "-s", "-o", os.devnull, "-w", "%{http_code}",
                            "--interface", "127.0.0.2", "--cacert", self.cert, "--max-time", "10",
                            "-X", "POST", "--data-binary", ""]
                           + sum((["-H", "%s: %s" % kv] for kv in forged.items()), [])
                           + [self.base + "/google/notify"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.stdout, "403", p.stderr)
        # the gateway logs the client nginx saw (X-Real-IP), and nginx as the peer
        self.wait_for("the rejection logged", lambda: re.search(
            r'reason=bad_token .*client="127\.0\.0\.2 via 127\.0\.0\.1"', s.output()))
        self.assertNotIn("B" * 43, s.output())

    def test_a_body_past_the_limit_is_413(self):
        self.three_calendars()
        self.configure_behind_nginx()
        self.serve()
        status = self.get("/google/notify", method="POST", data=b"x" * 10240,
                          headers={"Content-Type": "application/octet-stream"})[0]
        self.assertEqual(status, 413)

    def test_robots_txt_allows_the_notification_path(self):
        status, headers, body = self.get("/robots.txt")
        self.assertEqual(status, 200)
        rp = urllib.robotparser.RobotFileParser()
        rp.parse(body.splitlines())
        for agent in ("APIs-Google", "*"):
            self.assertTrue(rp.can_fetch(agent, self.base + "/google/notify"), body)
        self.assertNotIn("Disallow: /", body)

    def test_http2_through_nginx(self):
        self.three_calendars()
        self.configure_behind_nginx()
        self.serve()
        self.assertEqual(curl_h2(self.base + "/healthz", self.cert), "2 200")
        self.assertEqual(curl_h2(self.base + "/metrics", self.cert), "2 404")

    def test_plain_http_redirects_and_serves_acme_challenges(self):
        http = "http://127.0.0.1:%d" % self.nginx.http_port
        status, headers, _ = request(http + "/google/notify")
        self.assertEqual(status, 301)
        self.assertTrue(headers["Location"].startswith("https://"), headers["Location"])
        self.assertTrue(headers["Location"].endswith("/google/notify"), headers["Location"])
        with open(os.path.join(self.nginx.dir, "www/.well-known/acme-challenge/tok"), "w") as f:
            f.write("tok.thumbprint")
        status, _, body = request(http + "/.well-known/acme-challenge/tok")
        self.assertEqual((status, body), (200, "tok.thumbprint"))


class GatewayTlsTest(TlsCase):
    def test_push_over_https_to_the_gateway_itself(self):
        a, b, c = self.three_calendars()
        url = "https://127.0.0.1:%d" % self.port
        self.configure(gateway={"tls_cert": self.cert, "tls_key": self.key,
                                "public_url": url + "/google/notify"})
        self.serve()
        self.channels_live(3)
        self.emu.event(b, timed("Over TLS", hour(10)))
        self.expect_blocks([a, b, c], {a: 1, b: 0, c: 1})
        status, _, body = request(url + "/healthz", cafile=self.cert)
        self.assertEqual((status, body.strip()), (200, "ok"))
        self.assertEqual(curl_h2(url + "/healthz", self.cert), "2 200")
        # plain HTTP on the TLS port is no way in
        try:
            status = request("http://127.0.0.1:%d/healthz" % self.port)[0]
        except OSError:
            status = None
        self.assertNotEqual(status, 200)

    def test_a_non_loopback_listen_without_a_certificate_exits_78(self):
        self.three_calendars()
        self.configure(gateway={"listen": "0.0.0.0:%d" % self.port,
                                "public_url": "https://127.0.0.1:%d/google/notify" % self.port})
        p = subprocess.run([BUSYMIRROR, "-c", os.path.join(self.dir, "bm.ini"), "serve"],
                           cwd=self.dir, capture_output=True, text=True, timeout=30)
        self.outputs += [p.stdout, p.stderr]
        self.assertEqual(p.returncode, 78, p.stderr)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("[gateway] tls_cert", lines[0])
        # refused before anything ran: no watch channel points at the address
        self.assertEqual(self.emu.counters()["watch"], 0)

    def test_a_gateway_that_cannot_bind_opens_no_channel(self):
        self.three_calendars()
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            self.configure(gateway={"listen": "127.0.0.1:%d" % port, "tls_cert": self.cert,
                                    "tls_key": self.key,
                                    "public_url": "https://127.0.0.1:%d/google/notify" % port})
            p = subprocess.run([BUSYMIRROR, "-c", os.path.join(self.dir, "bm.ini"), "serve"],
                               cwd=self.dir, capture_output=True, text=True, timeout=30)
        self.outputs += [p.stdout, p.stderr]
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertIn("[gateway] listen", p.stderr)
        self.assertEqual(self.emu.counters()["watch"], 0, p.stderr)


if __name__ == "__main__":
    unittest.main()
