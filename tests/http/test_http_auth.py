#!/usr/bin/env python3
"""Access control and HTTPS of the example server, against the local stack.

    test_http_auth.py SERVER_BINARY AMQP_QUEUE_DELETE_BINARY

Server A has four tokens: a write token given in plain, a read token given
by its SHA-256, and from a tokens file (mode 600) a second write token and a
second read one. Requests without a token, with a wrong one and with a
malformed Authorization get 401; the read token reads but every write gets
403; the write tokens submit, cancel and delete; each refusal is logged
without the token, and /metrics counts the 401 and 403 answers. /health is
open but shows the version and the services' addresses only with a token.
Start-up refusals: a tokens file others may read, no tokens on a
non-loopback address, bad auth settings (each message names the key, none
quotes a token), unreadable or invalid TLS files. Server T serves HTTPS with
a self-signed certificate made by openssl for the run: a client that trusts
that certificate gets answers, plain HTTP to the port gets none.
Everything the run creates is deleted at the end. Prints TAP.
"""
import hashlib
import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_http import (  # noqa: E402
    Failure, Server, case_registry, check, check_no_sanitizer_report, compact, finish,
    run_cases, stack_settings_present)

JOB_TIMEOUT = 180  # hang guards, not timing assertions
START_TIMEOUT = 120
EXIT_CONFIG = 78
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})? (\S+)$')


class Run:
    pass


run = Run()
cases, case = case_registry()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def cfg(**members):
    members["run"] = run.tag
    return members


def submit(config, token):
    r = run.a.call("POST", "/jobs", {"queue": run.queue, "config": config}, bearer(token))
    check(r.status in (200, 202), f"POST /jobs {compact(config)}: {r}")
    doc = r.json()
    run.submitted.add(doc["id"])
    return doc["id"]


def job(job_id, token=None):
    r = run.a.call("GET", f"/jobs/{job_id}", headers=bearer(token or run.read_token))
    check(r.status == 200, f"GET /jobs/{job_id}: {r}")
    return r.json()


def wait_status(job_id, statuses):
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        doc = job(job_id)
        if doc["status"] in statuses:
            return doc
        check(time.monotonic() < deadline, f"job {job_id} still {doc['status']}")
        time.sleep(0.05)


def check_401(r, invalid_token):
    check(r.status == 401, f"expected 401, got {r}")
    doc = r.json()
    check(doc.get("error") == "unauthorized" and isinstance(doc.get("detail"), str),
          f"401 body: {doc}")
    wanted = 'Bearer realm="acp"' + (', error="invalid_token"' if invalid_token else "")
    check(r.headers.get("www-authenticate") == wanted,
          f"WWW-Authenticate {r.headers.get('www-authenticate')!r}, wanted {wanted!r}")


def check_403(r, route):
    check(r.status == 403, f"expected 403, got {r}")
    doc = r.json()
    check(doc.get("error") == "forbidden" and doc.get("detail") == f"{route} needs a write token",
          f"403 body: {doc}")


def log_text(server):
    with open(server.log_path, errors="replace") as f:
        return f.read()


def wait_log(server, pattern):
    """The first line of the server's log that matches @pattern; the log
    line of a refusal is written before its answer, so this is quick."""
    deadline = time.monotonic() + 30
    while True:
        for line in log_text(server).splitlines():
            if re.search(pattern, line):
                return line
        check(time.monotonic() < deadline, f"no log line matches {pattern!r}:\n"
                                           f"{server.log_tail()}")
        time.sleep(0.05)


def metrics(token):
    r = run.a.call("GET", "/metrics", headers=bearer(token))
    check(r.status == 200, f"GET /metrics: {r}")
    samples = {}
    for line in r.body.decode().splitlines():
        m = SAMPLE.match(line) if line and not line.startswith("#") else None
        if m:
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples


def write_config(name, config):
    path = os.path.join(run.work, f"{name}.json")
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return path


def refused_start(name, config):
    """Start the server on @config, expecting it to refuse: (exit status,
    stderr). A refusal comes before any service is contacted."""
    path = write_config(name, config)
    wrapper = shlex.split(os.environ.get("ACP_HTTP_SERVER_WRAPPER", ""))
    try:
        p = subprocess.run(wrapper + [run.binary, "--config", path], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failure(f"{name}: the server did not refuse to start")
    check(p.stdout == b"", f"{name}: it printed {p.stdout!r}")
    return p.returncode, p.stderr.decode(errors="replace")


def check_refused(name, config, *needles, absent=()):
    status, err = refused_start(name, config)
    check(status == EXIT_CONFIG, f"{name}: exit {status}, wanted {EXIT_CONFIG}: {err}")
    for needle in needles:
        check(needle in err, f"{name}: the message lacks {needle!r}: {err}")
    for secret in absent:
        check(secret not in err, f"{name}: the message quotes a token: {err}")
    check_no_sanitizer_report(err, f"{name}: {err}")
    return err


def with_auth(auth, **listen):
    """A's settings with @auth (and listen members) instead of its own."""
    config = json.loads(json.dumps(run.base))
    config["listen"].update(listen)
    config["queues"] = [{"id": run.queue}]
    if auth is None:
        config.pop("auth", None)
    else:
        config["auth"] = auth
    return config


# ---- the cases ------------------------------------------------------------

@case("a server with tokens (inline, by SHA-256, from a tokens file) starts on loopback; "
      "GET /health answers without a token: status and each service's name and state only")
def t_start():
    run.a.start()
    r = run.a.call("GET", "/health")
    check(r.status == 200, f"/health: {r}")
    doc = r.json()
    check("version" not in doc and doc["status"] == "ok", f"/health without a token: {doc}")
    for s in doc["services"]:
        check(set(s) == {"name", "state"}, f"a service shows more than its state: {s}")
    # A wrong token on the open route gets the same open answer.
    r = run.a.call("GET", "/health", headers=bearer("x" * 20))
    check(r.status == 200 and "version" not in r.json(), f"/health with a wrong token: {r}")


@case("GET /health with a valid token adds the version and each service's host:port")
def t_health_token():
    r = run.a.call("GET", "/health", headers=bearer(run.read_token))
    check(r.status == 200, f"/health: {r}")
    doc = r.json()
    check(re.fullmatch(r"\d+\.\d+\.\d+", doc.get("version") or ""), f"version: {doc}")
    env = os.environ
    wanted = {"postgres": f"{env['ACP_TEST_PG_HOST']}:{env['ACP_TEST_PG_PORT']}",
              "s3": f"{env['ACP_TEST_S3_HOST']}:{env['ACP_TEST_S3_PORT']}",
              "rabbitmq": f"{env['ACP_TEST_AMQP_HOST']}:{env['ACP_TEST_AMQP_PORT']}"}
    got = {s["name"]: s.get("address") for s in doc["services"]}
    check(got == wanted, f"addresses {got}, wanted {wanted}")
    # And the unauthorised answer, served from the same cache, still has none.
    r = run.a.call("GET", "/health")
    check(all("address" not in s for s in r.json()["services"]), f"/health after: {r}")


@case("no token: 401 unauthorized with WWW-Authenticate: Bearer realm=\"acp\" on every API "
      "route and method; the refusal is logged with client, method, path and reason")
def t_no_token():
    some_id = secrets.token_hex(16)
    for method, path in (("GET", "/jobs"), ("GET", f"/jobs/{some_id}"), ("GET", "/metrics"),
                         ("HEAD", "/jobs"), ("POST", "/jobs"),
                         ("POST", f"/jobs/{some_id}/cancel"), ("DELETE", f"/jobs/{some_id}"),
                         ("GET", "/no-such-route"), ("POST", "/health")):
        body = {"queue": run.queue, "config": cfg(executor="sleep", seconds=0)} \
            if method == "POST" else None
        r = run.a.call(method, path, body)
        if method == "HEAD":
            check(r.status == 401 and r.headers.get("www-authenticate") == 'Bearer realm="acp"',
                  f"HEAD {path}: {r} {r.headers}")
        else:
            check_401(r, invalid_token=False)
    line = wait_log(run.a, rf"warn .*DELETE /jobs/{some_id} from 127\.0\.0\.1: refused \(401\)")
    check("no Authorization header" in line, f"log line: {line}")
    # Nothing was submitted.
    r = run.a.call("GET", f"/jobs?queue={run.queue}", headers=bearer(run.read_token))
    check(r.status == 200 and r.json()["jobs"] == [], f"a refused POST submitted: {r}")


@case("a wrong token: 401 with error=\"invalid_token\"; the log has the attempt but not the "
      "token; a malformed Authorization (Basic, Bearer without a token) is 401 without it")
def t_wrong_token():
    wrong = "wrong-" + secrets.token_hex(12)
    path = f"/jobs?limit=1&probe={run.tag}"
    check_401(run.a.call("GET", path, headers=bearer(wrong)), invalid_token=True)
    line = wait_log(run.a, r"warn .*GET /jobs from 127\.0\.0\.1: refused \(401\): an unknown token")
    check(wrong not in log_text(run.a), f"the wrong token is in the log: {line}")
    # The scheme is case-insensitive: a right token under "bearer" works.
    r = run.a.call("GET", "/jobs?limit=1", headers={"Authorization": f"bearer {run.read_token}"})
    check(r.status == 200, f"lower-case scheme: {r}")
    for header in (f"Basic {run.write_token}", "Bearer", "Bearer    ", f"Token {run.write_token}"):
        check_401(run.a.call("GET", "/jobs", headers={"Authorization": header}),
                  invalid_token=False)
    # The right token with a different case is another token.
    check_401(run.a.call("GET", "/jobs", headers=bearer(run.read_token.upper())),
              invalid_token=True)


@case("the write token submits and the job runs; the read token (configured by its SHA-256) "
      "reads /jobs, /jobs/{id}, its files and /metrics")
def t_read():
    run.done_id = submit(cfg(executor="checksum", text="auth"), run.write_token)
    doc = wait_status(run.done_id, {"complete", "failed"})
    check(doc["status"] == "complete", f"job: {doc}")
    for token in (run.read_token, run.file_read_token):
        h = bearer(token)
        r = run.a.call("GET", f"/jobs?queue={run.queue}", headers=h)
        check(r.status == 200 and [j["id"] for j in r.json()["jobs"]] == [run.done_id],
              f"GET /jobs: {r}")
        check(run.a.call("GET", f"/jobs/{run.done_id}", headers=h).status == 200, "GET job")
        r = run.a.call("GET", f"/jobs/{run.done_id}/files", headers=h)
        check(r.status == 200 and [f["name"] for f in r.json()["files"]] == ["checksum.json"],
              f"files: {r}")
        r = run.a.call("GET", f"/jobs/{run.done_id}/files/checksum.json", headers=h)
        check(r.status == 200 and json.loads(r.body)["sha256"] ==
              hashlib.sha256(b"auth").hexdigest(), f"download: {r}")
        check(run.a.call("HEAD", f"/jobs/{run.done_id}", headers=h).status == 200, "HEAD job")
        check(run.a.call("GET", "/metrics", headers=h).status == 200, "GET /metrics")


@case("the read token may not write: POST /jobs, cancel, expire and DELETE get 403 naming the "
      "route; the log names the token's name, never the token; the job is untouched")
def t_read_forbidden():
    h = bearer(run.read_token)
    r = run.a.call("POST", "/jobs", {"queue": run.queue, "config": cfg(executor="sleep",
                                                                       seconds=0)}, h)
    check_403(r, "POST /jobs")
    check_403(run.a.call("POST", f"/jobs/{run.done_id}/cancel", headers=h),
              "POST /jobs/{id}/cancel")
    check_403(run.a.call("POST", f"/jobs/{run.done_id}/expire", headers=h),
              "POST /jobs/{id}/expire")
    check_403(run.a.call("DELETE", f"/jobs/{run.done_id}", headers=h), "DELETE /jobs/{id}")
    check_403(run.a.call("DELETE", f"/jobs/{run.done_id}",
                         headers=bearer(run.file_read_token)), "DELETE /jobs/{id}")
    line = wait_log(run.a, rf"warn .*DELETE /jobs/{run.done_id} from 127\.0\.0\.1: refused "
                           r"\(403\): token \"viewer\" has the read role")
    check(run.read_token not in log_text(run.a), f"the read token is in the log: {line}")
    doc = job(run.done_id)
    check(doc["status"] == "complete", f"the job changed: {doc}")


@case("the write tokens (inline and from the tokens file) cancel a running job and delete it; "
      "the requests' log lines name the tokens")
def t_write():
    long_id = submit(cfg(executor="sleep", seconds=60), run.file_write_token)
    wait_status(long_id, {"in-progress"})
    r = run.a.call("POST", f"/jobs/{long_id}/cancel", headers=bearer(run.file_write_token))
    check(r.status == 200, f"cancel: {r}")
    wait_status(long_id, {"cancelled", "failed"})
    r = run.a.call("DELETE", f"/jobs/{long_id}", headers=bearer(run.write_token))
    check(r.status == 204, f"DELETE: {r}")
    r = run.a.call("GET", f"/jobs/{long_id}", headers=bearer(run.write_token))
    check(r.status == 404, f"GET after DELETE: {r}")
    # The request's log line names the token that did it.
    wait_log(run.a, rf'info .*DELETE /jobs/{long_id} 204 [0-9.]+ ms \(token "ops"\)')
    wait_log(run.a, rf'info .*POST /jobs/{long_id}/cancel 200 [0-9.]+ ms \(token "cli"\)')


@case("/metrics counts the 401 and 403 answers under their routes")
def t_metrics():
    before = metrics(run.read_token)
    for _ in range(3):
        run.a.call("GET", "/jobs")
    run.a.call("DELETE", f"/jobs/{run.done_id}", headers=bearer(run.read_token))
    wanted = {'acp_http_requests_total{route="/jobs",status="401"}': 3,
              'acp_http_requests_total{route="/jobs/{id}",status="403"}': 1}
    # A request is counted when libmicrohttpd reports it complete, which may
    # be a moment after its client has the answer: poll (a hang guard).
    deadline = time.monotonic() + 30
    while True:
        after = metrics(run.read_token)
        grown = {k: after.get(k, 0) - before.get(k, 0) for k in wanted}
        if all(grown[k] >= n for k, n in wanted.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    check(grown == wanted, f"counted {grown}, wanted {wanted}")


@case("a tokens file readable by group or others is refused at start, naming the file")
def t_tokens_file_mode():
    loose = os.path.join(run.work, "loose-tokens.json")
    shutil.copyfile(run.tokens_file, loose)
    for mode in (0o640, 0o604):
        os.chmod(loose, mode)
        check_refused(f"loose-{mode:o}", with_auth({"tokens_file": loose}),
                      f"auth.tokens_file: {loose}: mode 0{mode:o}", "chmod 600",
                      absent=(run.file_write_token,))
    missing = os.path.join(run.work, "no-such-tokens.json")
    check_refused("missing-file", with_auth({"tokens_file": missing}),
                  f"auth.tokens_file: {missing}: No such file")


@case("without tokens a non-loopback listen.address is refused (exit 78) naming listen.address "
      "and auth.tokens; an empty token list counts as none")
def t_exposed():
    for address, auth in (("0.0.0.0", None), ("::", None), ("0.0.0.0", {"tokens": []})):
        check_refused(f"exposed-{address}", with_auth(auth, address=address),
                      f'listen.address "{address}" is not a loopback address', "auth.tokens")


@case("bad auth settings are refused naming the key; no message quotes a token")
def t_bad_settings():
    ok = {"name": "x", "role": "read", "token": "t" * 16}
    short = "short-" + secrets.token_hex(2)
    cases_ = [
        ({"tokens": [ok, dict(ok, name="y", role="admin", token="u" * 16)]},
         'auth.tokens[1].role: expected "read" or "write"'),
        ({"tokens": [dict(ok, token=short)]}, "auth.tokens[0].token: expected 16..256"),
        ({"tokens": [dict(ok, token="with a space 1234")]}, "auth.tokens[0].token"),
        ({"tokens": [ok, dict(ok, token="v" * 16)]},
         'auth.tokens[1].name: "x" is already the name of another token'),
        ({"tokens": [ok, dict(ok, name="y")]}, 'auth.tokens[1]: the same token as "x"'),
        ({"tokens": [dict(ok, sha256="0" * 64)]},
         'auth.tokens[0]: give exactly one of "token" and "sha256"'),
        ({"tokens": [{"name": "x", "role": "read"}]},
         'auth.tokens[0]: give exactly one of "token" and "sha256"'),
        ({"tokens": [{"name": "x", "role": "read", "sha256": "abc"}]},
         "auth.tokens[0].sha256: expected 64 hexadecimal digits"),
        ({"tokens": [{"role": "read", "token": "t" * 16}]}, "auth.tokens[0].name: missing"),
        ({"tokens": [dict(ok, roles="read")]}, "auth.tokens[0].roles: unknown setting"),
        ({"tokens": ok}, "auth.tokens: expected an array"),
        ({"token": [ok]}, "auth.token: unknown setting"),
    ]
    config_path_hint = os.path.join(run.work, "bad-auth-0.json")
    for i, (auth, needle) in enumerate(cases_):
        err = check_refused(f"bad-auth-{i}", with_auth(auth), needle, absent=(short, "t" * 16))
        if i == 0:
            check(f"{config_path_hint}: auth.tokens[1].role" in err, f"file not named: {err}")
    # An entry of the tokens file is named by the file and its index.
    bad_file = os.path.join(run.work, "bad-tokens.json")
    with open(bad_file, "w") as f:
        json.dump({"tokens": [dict(ok, role="owner")]}, f)
    os.chmod(bad_file, 0o600)
    check_refused("bad-file-entry", with_auth({"tokens_file": bad_file}),
                  f'auth.tokens_file: {bad_file}: tokens[0].role: expected "read" or "write"')
    # A name given in the file and inline is a duplicate too.
    with open(bad_file, "w") as f:
        json.dump({"tokens": [dict(ok, token="w" * 16)]}, f)
    check_refused("dup-across", with_auth({"tokens": [ok], "tokens_file": bad_file}),
                  f'auth.tokens_file: {bad_file}: tokens[0].name: "x" is already the name')


def openssl(*args):
    p = subprocess.run(["openssl", *args], capture_output=True, cwd=run.work)
    check(p.returncode == 0, f"openssl {' '.join(args)}: {p.stderr.decode()}")


@case("HTTPS: with listen.tls (an openssl self-signed certificate) the server prints "
      "https://, answers a client that trusts the certificate, and plain HTTP gets no answer")
def t_tls():
    run.cert = os.path.join(run.work, "cert.pem")
    run.key = os.path.join(run.work, "key.pem")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", run.key, "-out",
            run.cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
            "subjectAltName=IP:127.0.0.1")
    os.chmod(run.key, 0o600)
    config = with_auth(run.base["auth"])
    config["listen"]["tls"] = {"cert_file": run.cert, "key_file": run.key}
    config["queues"] = [{"id": run.queue_tls, "workers": 1}]
    config["workspace_root"] = f"{run.work}/ws-t"
    run.t = Server(run.binary, run.work, "server-t", config, tls_ca=run.cert)
    run.t.start()
    r = run.t.call("GET", "/health", headers=bearer(run.read_token))
    check(r.status == 200 and "version" in r.json(), f"/health over HTTPS: {r}")
    r = run.t.call("GET", f"/jobs?queue={run.queue}", headers=bearer(run.read_token))
    check(r.status == 200 and [j["id"] for j in r.json()["jobs"]] == [run.done_id],
          f"GET /jobs over HTTPS: {r}")
    check_401(run.t.call("GET", "/jobs"), invalid_token=False)
    # Plain HTTP to the HTTPS port: no HTTP answer comes back.
    conn = http.client.HTTPConnection("127.0.0.1", run.t.port, timeout=30)
    try:
        conn.request("GET", "/health")
        r = conn.getresponse()
        raise Failure(f"plain HTTP got an answer: {r.status}")
    except (OSError, http.client.HTTPException):
        pass
    finally:
        conn.close()
    # Nor does a client that does not trust the certificate.
    try:
        http.client.HTTPSConnection("127.0.0.1", run.t.port, timeout=30,
                                    context=ssl.create_default_context()).request("GET", "/")
        raise Failure("a client without the certificate connected")
    except ssl.SSLCertVerificationError:
        pass
    status = run.t.stop()
    check(status == 0, f"T exited with {status}:\n{run.t.log_tail()}")


@case("TLS files: an unreadable, a non-PEM or a mismatched certificate or key is refused at "
      "start naming the file")
def t_tls_bad():
    garbage = os.path.join(run.work, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("not a certificate\n")
    other_key = os.path.join(run.work, "other-key.pem")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", other_key)
    os.chmod(other_key, 0o600)
    missing = os.path.join(run.work, "missing.pem")
    for name, cert, key, needles in (
            ("tls-missing-cert", missing, run.key, [f"listen.tls.cert_file: {missing}"]),
            ("tls-garbage-cert", garbage, run.key,
             [f"listen.tls.cert_file: {garbage}: not a PEM certificate"]),
            ("tls-garbage-key", run.cert, garbage,
             [f"listen.tls.key_file: {garbage}: not an unencrypted PEM private key"]),
            ("tls-other-key", run.cert, other_key,
             [f"listen.tls.key_file: {other_key}: not the key of the certificate in {run.cert}"])):
        config = with_auth(run.base["auth"])
        config["listen"]["tls"] = {"cert_file": cert, "key_file": key}
        check_refused(name, config, *needles)
    config = with_auth(run.base["auth"])
    config["listen"]["tls"] = {"cert_file": run.cert}
    check_refused("tls-no-key", config, "listen.tls.key_file: missing")


@case("clean-up: every job of the run is deleted; A stops cleanly; no token is in any log")
def t_cleanup():
    h = bearer(run.write_token)
    for job_id in sorted(run.submitted):
        run.a.call("POST", f"/jobs/{job_id}/cancel", headers=h)  # 409 for one that ended
        d = run.a.call("DELETE", f"/jobs/{job_id}", headers=h)
        check(d.status in (204, 404, 409), f"DELETE {job_id}: {d}")
        if d.status == 409:
            wait_status(job_id, {"complete", "failed", "cancelled"})
            d = run.a.call("DELETE", f"/jobs/{job_id}", headers=h)
            check(d.status in (204, 404), f"DELETE {job_id}: {d}")
    run.cleaned = True
    status = run.a.stop()
    check(status == 0, f"A exited with {status}:\n{run.a.log_tail()}")
    for server in (run.a, getattr(run, "t", None)):
        if not server or not os.path.exists(server.log_path):
            continue
        log = log_text(server)
        check_no_sanitizer_report(log, f"{server.name}'s log")
        for token in (run.write_token, run.read_token, run.file_write_token,
                      run.file_read_token):
            check(token not in log, f"a token is in {server.name}'s log")


# ---- driver ---------------------------------------------------------------

def main():
    stack_settings_present()
    run.binary, queue_delete = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    run.tag = secrets.token_hex(4)
    run.queue, run.queue_tls = f"auth-{run.tag}", f"auth-{run.tag}-tls"
    run.work = tempfile.mkdtemp(prefix=f"acp-auth-{run.tag}-")
    run.submitted, run.cleaned = set(), False
    run.write_token = "w-" + secrets.token_urlsafe(24)
    run.read_token = "r-" + secrets.token_urlsafe(24)
    run.file_write_token = "fw-" + secrets.token_urlsafe(24)
    run.file_read_token = "fr-" + secrets.token_urlsafe(24)
    run.tokens_file = os.path.join(run.work, "tokens.json")
    fd = os.open(run.tokens_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"tokens": [
            {"name": "cli", "role": "write", "token": run.file_write_token},
            {"name": "dashboard", "role": "read",
             "sha256": hashlib.sha256(run.file_read_token.encode()).hexdigest().upper()}]}, f)
    run.base = {
        "listen": {"address": "127.0.0.1", "port": 0, "request_timeout": 5},
        "s3": {"root_path": f"auth-test-{run.tag}"},
        "layout": os.environ.get("ACP_TEST_LAYOUT", "native"),
        "shutdown_timeout": 5,
        "health_cache_seconds": 2,
        "log_level": "info",
        "executors": {"sleep": {"max_seconds": 600}},
        "auth": {
            "tokens": [
                {"name": "ops", "role": "write", "token": run.write_token},
                {"name": "viewer", "role": "read",
                 "sha256": hashlib.sha256(run.read_token.encode()).hexdigest()},
            ],
            "tokens_file": run.tokens_file,
        },
    }
    run.a = Server(run.binary, run.work, "server-a", dict(
        run.base, queues=[{"id": run.queue, "workers": 2}], workspace_root=f"{run.work}/ws-a"))
    print(f"# run {run.tag}: queue {run.queue}, files in {run.work}")

    failed = run_cases(cases)
    return finish(run, failed, [run.a, getattr(run, "t", None)], [run.a], queue_delete, [f"{run.queue}_jobs", f"{run.queue_tls}_jobs"])


if __name__ == "__main__":
    sys.exit(main())
