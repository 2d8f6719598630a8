#!/usr/bin/env python3
"""The example HTTP server over real HTTP, against the local service stack.

    test_http.py SERVER_BINARY AMQP_QUEUE_DELETE_BINARY

Starts the server on a free loopback port with a queue id, an S3 root and a
scratch directory unique to the run, drives whole jobs through every
executor, paging, expiry and deletion, provokes every error status, and
stops the server with SIGTERM. Everything the run creates is deleted at the
end (jobs through the API, the RabbitMQ queues with the helper, local
files). Prints TAP.

Skips without the ACP_TEST_* settings, unless ACP_TEST_REQUIRE_SERVICES=1
(scripts/test, CI), where missing settings fail. ACP_HTTP_SERVER_WRAPPER,
when set, is a command the server runs under (for example valgrind).
"""
import hashlib
import http.client
import json
import os
import re
import secrets
import select
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timedelta, timezone

STACK_VARS = [
    "ACP_TEST_PG_HOST", "ACP_TEST_PG_PORT", "ACP_TEST_PG_USER", "ACP_TEST_PG_PASSWORD",
    "ACP_TEST_PG_DB", "ACP_TEST_AMQP_HOST", "ACP_TEST_AMQP_PORT", "ACP_TEST_AMQP_USER",
    "ACP_TEST_AMQP_PASSWORD", "ACP_TEST_S3_HOST", "ACP_TEST_S3_PORT", "ACP_TEST_S3_ACCESS_KEY",
    "ACP_TEST_S3_SECRET_KEY", "ACP_TEST_S3_BUCKET",
]
MIB = 1024 * 1024
# Hang guards, not timing assertions: a job of this suite takes seconds.
JOB_TIMEOUT = 180
START_TIMEOUT = 120
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def compact(value):
    """A config's compact JSON text, as the library (and Jackson) write it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def derived_id(config):
    return hashlib.md5(compact(config).encode()).hexdigest()


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise Failure(f"not JSON ({self.status}): {self.body[:200]!r}")

    def __repr__(self):
        return f"{self.status} {self.body[:300]!r}"


def request(port, method, path, body=None, headers=None, tls_ca=None):
    """One request to 127.0.0.1:@port; over HTTPS trusting only the
    certificate file @tls_ca when it is given."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    if tls_ca:
        context = ssl.create_default_context(cafile=tls_ca)
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=120, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def free_port():
    """A loopback port nobody listens on (bound, noted, closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process of @config; with @tls_ca it serves HTTPS (its
    listen.tls) and is asked trusting only that certificate file."""

    def __init__(self, binary, workdir, name, config, tls_ca=None):
        self.binary, self.name, self.tls_ca = binary, name, tls_ca
        self.config_path = os.path.join(workdir, f"{name}.json")
        self.log_path = os.path.join(workdir, f"{name}.log")
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)
        self.proc = None
        self.port = None

    def launch(self):
        wrapper = shlex.split(os.environ.get("ACP_HTTP_SERVER_WRAPPER", ""))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(wrapper + [self.binary, "--config", self.config_path],
                                         stdout=subprocess.PIPE, stderr=log)

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def start(self):
        self.launch()
        line = self.proc.stdout.readline().decode()
        scheme = "https" if self.tls_ca else "http"
        if not line.startswith(f"listening on {scheme}://"):
            status = self.proc.wait()
            raise Failure(f"{self.name} did not start on {scheme} (exit {status}, printed "
                          f"{line!r}):\n{self.log_tail()}")
        self.port = int(line.strip().rsplit(":", 1)[1])
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if self.call("GET", "/health").status == 200:
                    return
            except OSError:
                pass
            check(time.monotonic() < deadline, f"{self.name}: /health never answered 200")
            time.sleep(0.2)

    def stop(self):
        """SIGTERM by pid; returns the exit status."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure(f"{self.name} did not stop within 180 s of SIGTERM")
        finally:
            self.proc.stdout.close()

    def call(self, method, path, body=None, headers=None):
        return request(self.port, method, path, body, headers, self.tls_ca)


# ---- the run's state and helpers ------------------------------------------

class Run:
    pass


run = Run()
def run_cases(cases):
    """Run each (description, fn) of @cases, printing TAP; a case's failure
    does not stop the others. Returns the number that failed."""
    failed = 0
    for number, (description, fn) in enumerate(cases, 1):
        try:
            fn()
            print(f"ok {number} - {description}", flush=True)
        except Exception as e:
            failed += 1
            print(f"not ok {number} - {description}")
            detail = str(e) if isinstance(e, Failure) else traceback.format_exc()
            for line in detail.splitlines():
                print(f"# {line}")
            sys.stdout.flush()
    print(f"1..{len(cases)}")
    return failed


def finish(run, failed, servers, shown, queue_delete, queues):
    """The end of a run, whatever happened: stop the @servers still running
    (None entries are skipped), print the last lines of the @shown servers'
    logs when a case failed, delete the run's RabbitMQ @queues, and remove
    run.work when the run cleaned up after itself and nothing failed (else
    say where the logs are). Returns the exit status."""
    for server in servers:
        if server and server.proc and server.proc.poll() is None:
            try:
                server.stop()
            except Failure:
                pass
    if failed:
        for server in shown:
            print(f"# {server.name} log (last lines):\n# " +
                  server.log_tail(40).replace("\n", "\n# "))
    subprocess.run([queue_delete, os.environ["ACP_TEST_AMQP_HOST"],
                    os.environ["ACP_TEST_AMQP_PORT"], os.environ["ACP_TEST_AMQP_USER"],
                    os.environ["ACP_TEST_AMQP_PASSWORD"], *queues], check=False)
    if run.cleaned and not failed:
        shutil.rmtree(run.work, ignore_errors=True)
    else:
        print(f"# jobs of queue {run.queue} may be left; logs kept in {run.work}")
    return 1 if failed else 0


def case_registry():
    """A list of cases, (description, function), and the decorator that
    appends to it."""
    cases = []

    def case(description):
        def register(fn):
            cases.append((description, fn))
            return fn
        return register
    return cases, case


cases, case = case_registry()


def submit(config, expect=202, server=None, queue=None, job_id=None):
    body = {"queue": queue or run.queue, "config": config}
    if job_id:
        body["id"] = job_id
    r = (server or run.a).call("POST", "/jobs", body)
    check(r.status == expect, f"POST /jobs {compact(config)}: expected {expect}, got {r}")
    doc = r.json()
    if r.status in (200, 202):
        run.submitted.add(doc["id"])
    return doc, r


def job(job_id, server=None):
    r = (server or run.a).call("GET", f"/jobs/{job_id}")
    check(r.status == 200, f"GET /jobs/{job_id}: {r}")
    return r.json()


def wait_status(job_id, statuses, server=None):
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        doc = job(job_id, server)
        if doc["status"] in statuses:
            return doc
        check(time.monotonic() < deadline,
              f"job {job_id} still {doc['status']} after {JOB_TIMEOUT} s")
        time.sleep(0.05)


def run_job(config, final="complete"):
    doc, _ = submit(config)
    done = wait_status(doc["id"], {"complete", "failed"})
    check(done["status"] == final,
          f"job {doc['id']} ({compact(config)}) is {done['status']}, expected {final}: "
          f"{done.get('message')}")
    return done


def files(job_id):
    r = run.a.call("GET", f"/jobs/{job_id}/files")
    check(r.status == 200, f"GET /jobs/{job_id}/files: {r}")
    return {f["name"]: f["size"] for f in r.json()["files"]}


def download(job_id, name):
    r = run.a.call("GET", f"/jobs/{job_id}/files/{name}")
    check(r.status == 200, f"GET /jobs/{job_id}/files/{name}: {r}")
    check(int(r.headers.get("content-length", -1)) == len(r.body),
          f"{name}: Content-Length {r.headers.get('content-length')} but {len(r.body)} bytes")
    return r.body


def check_no_sanitizer_report(text, where):
    """@text (a server's log, a program's stderr) holds no report of
    AddressSanitizer, LeakSanitizer or UndefinedBehaviorSanitizer."""
    for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        check(marker not in text, f"{marker} in {where}")


def check_error(r, status, field=None, error=None, detail=None):
    check(r.status == status, f"expected {status}, got {r}")
    doc = r.json()
    check(isinstance(doc.get("error"), str) and isinstance(doc.get("detail"), str),
          f"error body lacks error/detail: {doc}")
    check(doc.get("field") == field, f"expected field {field!r}, got {doc}")
    if error:
        check(doc["error"] == error, f"expected error {error!r}, got {doc}")
    if detail:
        check(detail in doc["detail"], f"detail lacks {detail!r}: {doc}")
    return doc


def cfg(**members):
    """A config unique to this run, so that reruns never meet old jobs."""
    members["run"] = run.tag
    return members


# ---- the cases ------------------------------------------------------------

@case("the server starts on a free port and /health reports every service up")
def t_health():
    run.a.start()
    r = run.a.call("GET", "/health")
    doc = r.json()
    check(r.status == 200 and doc["status"] == "ok", f"/health: {r}")
    names = sorted(s["name"] for s in doc["services"])
    check(names == ["postgres", "rabbitmq", "s3"], f"services: {names}")
    for s in doc["services"]:
        check(s == {"name": s["name"], "state": "up"}, f"service shows more than its state: {s}")


@case("POST /jobs answers 202 at once with the id derived from the config and a Location")
def t_submit():
    run.sleep_config = cfg(executor="sleep", seconds=0.5)
    doc, r = submit(run.sleep_config)
    run.sleep_id = doc["id"]
    check(doc["id"] == derived_id(run.sleep_config),
          f"id {doc['id']} is not the MD5 of {compact(run.sleep_config)}")
    check(doc["status"] in ("queued", "in-progress", "complete"), f"status: {doc}")
    check(r.headers.get("location") == f"/jobs/{doc['id']}", f"Location: {r.headers}")


@case("GET /jobs/{id} follows the job to complete: owned, queue, ISO-8601 times, attempts")
def t_poll():
    doc = wait_status(run.sleep_id, {"complete", "failed"})
    check(doc["status"] == "complete", f"job: {doc}")
    check(doc["owned"] is True and doc["queue"] == run.queue, f"job: {doc}")
    for key in ("created", "grabbed", "finished", "last_accessed"):
        check(isinstance(doc[key], str) and ISO_UTC.match(doc[key]), f"{key}: {doc[key]!r}")
    check(doc["created"] <= doc["grabbed"] <= doc["finished"], f"times out of order: {doc}")
    check(doc["attempts"] == 1 and doc["message"] is None and doc["queue_position"] is None,
          f"job: {doc}")
    run.sleep_doc = doc
    # Job control: the defaults (config.max_attempts 3, priority 50, no
    # limit), nothing pending.
    check(doc["max_attempts"] == 3 and doc["priority"] == 50 and doc["timeout_seconds"] is None
          and doc["next_run"] is None and doc["last_error"] is None
          and doc["cancel_requested"] is False, f"job control fields: {doc}")


@case("the sleep job's files list sleep.json and the download matches the listed size")
def t_sleep_files():
    listing = files(run.sleep_id)
    check(list(listing) == ["sleep.json"], f"files: {listing}")
    body = download(run.sleep_id, "sleep.json")
    check(len(body) == listing["sleep.json"], f"{len(body)} bytes, listed {listing}")
    result = json.loads(body)
    check(result == {"requested_seconds": 0.5, "slept_seconds": 0.5}, f"sleep.json: {result}")
    head = run.a.call("HEAD", f"/jobs/{run.sleep_id}/files/sleep.json")
    check(head.status == 200 and head.body == b"" and
          int(head.headers["content-length"]) == listing["sleep.json"], f"HEAD: {head.headers}")


@case("posting the same config again returns the same job without running it again")
def t_same_again():
    doc, r = submit(run.sleep_config, expect=200)
    check(doc["id"] == run.sleep_id and doc["status"] == "complete" and doc["attempts"] == 1 and
          doc["finished"] == run.sleep_doc["finished"], f"second POST: {doc}")
    again = job(run.sleep_id)
    check(again["attempts"] == 1 and again["finished"] == run.sleep_doc["finished"],
          f"the job ran again: {again}")


@case("an explicit id must be the config's (any case): another client's id cannot be squatted")
def t_explicit_id():
    victim = cfg(executor="checksum", text="the victim's")
    squatter = cfg(executor="checksum", text="the squatter's")
    r = run.a.call("POST", "/jobs", {"queue": run.queue, "config": squatter,
                                     "id": derived_id(victim)})
    check_error(r, 400, "id", "invalid argument", derived_id(squatter))
    check(job_status_code(derived_id(victim)) == 404, "the squatter's job was stored")
    r = run.a.call("POST", "/jobs", {"queue": run.queue, "config": squatter,
                                     "id": secrets.token_hex(16)})
    check_error(r, 400, "id")
    wanted = derived_id(cfg(executor="checksum", text="explicit"))
    doc, _ = submit(cfg(executor="checksum", text="explicit"), job_id=wanted.upper())
    check(doc["id"] == wanted, f"id {doc['id']}, wanted {wanted}")
    wait_status(wanted, {"complete"})


@case("checksum writes checksum.json with the SHA-256 and the byte, line and word counts")
def t_checksum():
    text = "h\u00e9llo w\u00f6rld\nsecond  line\n\tthird"
    config = cfg(executor="checksum", text=text)
    doc = run_job(config)
    check(doc["id"] == derived_id(config), "the id of a non-ASCII config is not Jackson's")
    raw = text.encode()
    result = json.loads(download(doc["id"], "checksum.json"))
    expected = {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw),
                "lines": raw.count(b"\n"), "words": len(raw.split())}
    check(result == expected, f"checksum.json {result}, expected {expected}")
    run.checksum_id = doc["id"]


@case("command runs an allowed program with its arguments; stdout.txt and stderr.txt are kept, "
      "and its output is the job's log.txt")
def t_command_echo():
    doc = run_job(cfg(executor="command", program="echo", args=["hello", "from echo", "$HOME"]))
    listing = files(doc["id"])
    # log.txt: the platform keeps the job's log, where the executor writes
    # the program's output as it comes (docs/http-api.adoc, "command").
    check(set(listing) == {"stdout.txt", "stderr.txt", "log.txt"}, f"files: {listing}")
    check(download(doc["id"], "stdout.txt") == b"hello from echo $HOME\n", "echo's stdout")
    check(download(doc["id"], "stderr.txt") == b"", "echo's stderr is not empty")
    check(download(doc["id"], "log.txt") == b"hello from echo $HOME\n", "echo's log")


@case("command: clean environment, the job's scratch directory as cwd, stdin from /dev/null")
def t_command_sandbox():
    doc = run_job(cfg(executor="command", program="env"))
    env = dict(line.split("=", 1) for line in download(doc["id"], "stdout.txt").decode().split())
    check(env == {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C", "HOME": "/job",
                  "TMPDIR": "/tmp", "PWD": "/job"}, f"environment: {env}")
    config = cfg(executor="command", program="wc", args=["-c", "input-config"])
    doc = run_job(config)
    out = download(doc["id"], "stdout.txt").decode().split()
    check(out == [str(len(compact(config).encode())), "input-config"], f"wc: {out}")
    doc = run_job(cfg(executor="command", program="cat"))
    check(download(doc["id"], "stdout.txt") == b"", "cat read something from stdin")


@case("a large result streams byte-identical with its Content-Length")
def t_large_download():
    doc = run_job(cfg(executor="command", program="seq", args=["1", "300000"]))
    expected = "".join(f"{i}\n" for i in range(1, 300001)).encode()
    check(files(doc["id"])["stdout.txt"] == len(expected), "listed size")
    body = download(doc["id"], "stdout.txt")
    check(body == expected, f"{len(body)} bytes differ from seq's {len(expected)}")


@case("a failing command fails the job with its exit status and keeps stderr.txt")
def t_command_fails():
    doc = run_job(cfg(executor="command", program="cat", args=["no-such-file"]), final="failed")
    check("exited with status 1" in doc["message"], f"message: {doc['message']}")
    check(b"no-such-file: No such file" in download(doc["id"], "stderr.txt"), "stderr.txt")
    run.failed = {doc["id"]}


@case("a command over the timeout is killed and its job fails")
def t_command_timeout():
    doc = run_job(cfg(executor="command", program="pause", args=["60"]), final="failed")
    check("timed out after 2 s" in doc["message"], f"message: {doc['message']}")
    run.failed.add(doc["id"])


@case("command: an argument starting with '-' that the program's entry does not allow is "
      "refused (wc --files0-from would print the server's environment)")
def t_command_option_refused():
    server_pid = run.a.proc.pid
    for args in ([f"--files0-from=/proc/{server_pid}/environ"], ["-l", "input-config"],
                 ["--", "input-config"], ["-cl", "input-config"]):
        config = cfg(executor="command", program="wc", args=args)
        r = run.a.call("POST", "/jobs", {"queue": run.queue, "config": config})
        check_error(r, 400, "config.args", "invalid argument", "not one of the options")
        check(job_status_code(derived_id(config)) == 404, f"{compact(config)} was stored")
    # The option the entry lists passes, alone and with its value.
    doc = run_job(cfg(executor="command", program="wc", args=["-c", "input-config"], case=13))
    check(download(doc["id"], "stdout.txt").endswith(b" input-config\n"), "wc -c")
    doc = run_job(cfg(executor="command", program="seq", args=["--separator=,", "3"]))
    check(download(doc["id"], "stdout.txt") == b"1,2,3\n", "seq --separator=,")


def secrets_of_server():
    return [os.environ[v].encode() for v in ("ACP_TEST_S3_SECRET_KEY", "ACP_TEST_PG_PASSWORD",
                                             "ACP_TEST_AMQP_PASSWORD")]


@case("command: the sandbox shows the program neither the server's /proc, environment or "
      "config file, nor the host's files outside /usr")
def t_command_sandbox_hides_server():
    targets = [f"/proc/{run.a.proc.pid}/environ", "/proc/1/environ", "/proc/self/environ",
               run.a.config_path, "/etc/passwd", run.work]
    for target in targets:
        doc, _ = submit(cfg(executor="command", program="cat", args=[target]))
        done = wait_status(doc["id"], {"complete", "failed"})
        seen = download(doc["id"], "stdout.txt") + download(doc["id"], "stderr.txt")
        for secret in secrets_of_server():
            check(secret not in seen, f"cat {target} showed a secret of the server")
        if target != "/proc/self/environ":
            check(done["status"] == "failed" and
                  (b"No such file" in seen or b"Permission denied" in seen),
                  f"cat {target}: {done['status']}, {seen[:200]!r}")
        if done["status"] == "failed":
            run.failed.add(doc["id"])


@case("command: the program runs as another user, in its own PID namespace, with a private /tmp "
      "and no network")
def t_command_sandbox_identity():
    script = "id -u; echo pid $$; echo tmp $(ls -A /tmp); grep -o '^ *[a-z0-9]*:' /proc/net/dev"
    doc = run_job(cfg(executor="command", program="sh", args=["-c", script]))
    out = download(doc["id"], "stdout.txt").decode().split("\n")
    check(out[0] == "65534", f"uid: {out[0]!r}")
    check(out[1] in ("pid 2", "pid 3"), f"not in a PID namespace of its own: {out[1]!r}")
    check(out[2] == "tmp", f"the host's /tmp is visible: {out[2]!r}")
    check([x.strip() for x in out[3:] if x] == ["lo:"], f"network interfaces: {out[3:]}")


def processes_running(needle):
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


@case("command: a program that leaves its process group with setsid() is still killed at the "
      "timeout")
def t_command_setsid_killed():
    marker = str(900000 + secrets.randbelow(99999))
    doc = run_job(cfg(executor="command", program="sh",
                      args=["-c", f"setsid sleep {marker} & sleep 600"]), final="failed")
    check("timed out" in doc["message"], f"message: {doc['message']}")
    run.failed.add(doc["id"])
    left = processes_running(f"sleep\0{marker}".encode())
    for pid in left:
        os.kill(int(pid), signal.SIGKILL)
    check(not left, f"'sleep {marker}' escaped the timeout: pids {left}")


@case("command: the limits stop a program that writes too large a file or starts too many "
      "processes")
def t_command_limits():
    doc = run_job(cfg(executor="command", program="seq", args=["1", "5000000"]), final="failed")
    check("wrote a file larger than 8388608 bytes" in doc["message"], f"message: {doc['message']}")
    check(files(doc["id"])["stdout.txt"] <= 8 * MIB, "stdout.txt is larger than the limit")
    run.failed.add(doc["id"])
    doc, _ = submit(cfg(executor="command", program="sh",
                        args=["-c", "for i in $(seq 40); do sleep 1 & done; wait"]))
    doc = wait_status(doc["id"], {"complete", "failed"})
    if doc["status"] == "failed":
        run.failed.add(doc["id"])
    check(b"fork" in download(doc["id"], "stderr.txt").lower(),
          f"no fork failure in stderr: {download(doc['id'], 'stderr.txt')[:300]!r}")


@case("a disallowed program, an unknown executor or bad executor settings answer 400")
def t_executor_validation():
    bad = [
        (cfg(executor="command", program="rm", args=["-rf", "/"]), "config.program"),
        (cfg(executor="command", program="/bin/echo"), "config.program"),
        (cfg(executor="command", program="echo", args=["ok", 1]), "config.args"),
        (cfg(executor="command", program="echo", args="x"), "config.args"),
        (cfg(executor="command", program="echo", args=["x"] * 65), "config.args"),
        (cfg(executor="shell"), "config.executor"),
        (cfg(seconds=1), "config.executor"),
        (cfg(executor="sleep"), "config.seconds"),
        (cfg(executor="sleep", seconds=-1), "config.seconds"),
        (cfg(executor="checksum", text=5), "config.text"),
    ]
    for config, field in bad:
        r = run.a.call("POST", "/jobs", {"queue": run.queue, "config": config})
        check_error(r, 400, field, "invalid argument")
        check(job_status_code(derived_id(config)) == 404, f"{compact(config)} was stored")


def job_status_code(job_id):
    return run.a.call("GET", f"/jobs/{job_id}").status


@case("GET /jobs pages through the run's jobs with the cursor, without repeats or gaps")
def t_paging():
    seen, pages, cursor = [], 0, None
    while True:
        path = f"/jobs?queue={run.queue}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = run.a.call("GET", path)
        check(r.status == 200, f"{path}: {r}")
        doc = r.json()
        check(len(doc["jobs"]) <= 2, f"page of {len(doc['jobs'])}")
        for j in doc["jobs"]:
            check(j["queue"] == run.queue and j["owned"], f"listed: {j}")
            check(ISO_UTC.match(j["created"]), f"created: {j['created']}")
        seen += [j["id"] for j in doc["jobs"]]
        pages += 1
        cursor = doc["next_cursor"]
        if not cursor:
            break
        check(pages < 100, "the cursor never ends")
    check(len(seen) == len(set(seen)), f"repeated jobs: {seen}")
    check(set(seen) == run.submitted, f"listed {sorted(set(seen))}, submitted "
                                      f"{sorted(run.submitted)}")
    check(pages >= len(seen) // 2, f"{pages} pages for {len(seen)} jobs")


@case("GET /jobs filters by status and queue")
def t_filters():
    r = run.a.call("GET", f"/jobs?queue={run.queue}&status=failed&limit=1000")
    check(r.status == 200, f"{r}")
    failed = {j["id"] for j in r.json()["jobs"]}
    check(failed == run.failed, f"failed jobs {failed}, expected {run.failed}")
    r = run.a.call("GET", f"/jobs?queue={run.queue}&status=complete,failed&limit=1000")
    finished = {j["id"] for j in r.json()["jobs"]}
    check(finished == run.submitted, f"complete or failed: {finished}")
    r = run.a.call("GET", f"/jobs?queue={run.queue}&status=queued,expired")
    check(r.status == 200 and r.json() == {"jobs": [], "next_cursor": None}, f"{r}")
    r = run.a.call("GET", "/jobs?queue=no-such-queue-" + run.tag)
    check(r.status == 200 and r.json()["jobs"] == [], f"{r}")


@case("GET /jobs answers 400 naming a bad status, limit, cursor or unknown parameter")
def t_list_errors():
    check_error(run.a.call("GET", "/jobs?status=done"), 400, "status")
    check_error(run.a.call("GET", "/jobs?status=complete,"), 400, "status")
    check_error(run.a.call("GET", "/jobs?limit=0"), 400, "limit")
    check_error(run.a.call("GET", "/jobs?limit=1001"), 400, "limit")
    check_error(run.a.call("GET", "/jobs?limit=ten"), 400, "limit")
    check_error(run.a.call("GET", "/jobs?cursor=not-a-cursor"), 400, "cursor")
    check_error(run.a.call("GET", "/jobs?sort=id"), 400, "sort")


@case("DELETE and expire of a running job answer 409")
def t_busy():
    # A short sleep may be over before the requests arrive; then a longer one
    # is tried, so the case depends on no timing.
    for seconds in (2, 5, 15, 45):
        doc, _ = submit(cfg(executor="sleep", seconds=seconds, purpose="busy"))
        state = wait_status(doc["id"], {"in-progress", "complete"})
        if state["status"] != "in-progress":
            continue
        deleted = run.a.call("DELETE", f"/jobs/{doc['id']}")
        expired = run.a.call("POST", f"/jobs/{doc['id']}/expire")
        if deleted.status == 409 and expired.status == 409:
            check_error(deleted, 409, None, "job is running")
            check_error(expired, 409, None, "job is running")
            check(job(doc["id"])["status"] in ("in-progress", "complete"), "the job was touched")
            return
        check(deleted.status in (204, 409) and expired.status in (200, 404, 409),
              f"DELETE {deleted}, expire {expired}")
    raise Failure("no sleep job was still running when deleted")


@case("POST /jobs/{id}/expire expires the job and removes its files")
def t_expire():
    r = run.a.call("POST", f"/jobs/{run.checksum_id}/expire")
    check(r.status == 200 and r.json() == {"id": run.checksum_id, "status": "expired"}, f"{r}")
    check(job(run.checksum_id)["status"] == "expired", "status after expire")
    check(files(run.checksum_id) == {}, "files after expire")
    check_error(run.a.call("GET", f"/jobs/{run.checksum_id}/files/checksum.json"), 404, "name")


@case("expire_failed_job: a failed job expires, stays owned, runs again on resubmission "
      "and can be deleted")
def t_expire_failed_job():
    config = cfg(executor="command", program="cat", args=["no-such-file"], purpose="expire")
    failed = run_job(config, final="failed")
    r = run.a.call("POST", f"/jobs/{failed['id']}/expire")
    check(r.status == 200 and r.json() == {"id": failed["id"], "status": "expired"}, f"{r}")
    for _ in range(2):  # the first GET used to drop the row and report it failed, unowned
        doc = job(failed["id"])
        check(doc["status"] == "expired" and doc["owned"] is True, f"after expire: {doc}")
    check(files(failed["id"]) == {}, "files after expire")
    r = run.a.call("GET", f"/jobs?queue={run.queue}&status=expired&limit=1000")
    check(failed["id"] in {j["id"] for j in r.json()["jobs"]}, f"expired jobs: {r}")
    doc, _ = submit(config, expect=202)
    again = wait_status(doc["id"], {"failed"})
    # The attempt count starts again: a failing job takes its max_attempts
    # (config.max_attempts, 3) on each submission, not more.
    check(again["owned"] is True and failed["attempts"] == 3 and
          again["attempts"] == again["max_attempts"] == 3, f"after resubmitting: {again}")
    check("stderr.txt" in files(failed["id"]), "the second run kept no stderr.txt")
    r = run.a.call("POST", f"/jobs/{failed['id']}/expire")
    check(r.status == 200, f"second expire: {r}")
    r = run.a.call("DELETE", f"/jobs/{failed['id']}")
    check(r.status == 204, f"DELETE: {r}")
    run.submitted.discard(failed["id"])
    check_error(run.a.call("GET", f"/jobs/{failed['id']}"), 404, None, "job not found")


@case("DELETE /jobs/{id} answers 204 and the job is gone (404)")
def t_delete():
    r = run.a.call("DELETE", f"/jobs/{run.checksum_id}")
    check(r.status == 204 and r.body == b"", f"DELETE: {r}")
    run.submitted.discard(run.checksum_id)
    check_error(run.a.call("GET", f"/jobs/{run.checksum_id}"), 404, None, "job not found")
    check_error(run.a.call("DELETE", f"/jobs/{run.checksum_id}"), 404)
    check_error(run.a.call("GET", f"/jobs/{run.checksum_id}/files"), 404)


@case("POST /jobs answers 400 for malformed JSON, a non-object, missing or unknown queue, "
      "bad id, a config that is not an object or too deep, an unknown member")
def t_bad_requests():
    good = cfg(executor="sleep", seconds=0)
    a = run.a
    check_error(a.call("POST", "/jobs", '{"queue": "x", "config": {'), 400, None, detail="byte")
    check_error(a.call("POST", "/jobs", "{'queue': 1}"), 400, None)
    check_error(a.call("POST", "/jobs", '{"queue":"q"} trailing'), 400, None)
    check_error(a.call("POST", "/jobs", b'{"queue":"\xff"}'), 400, None)
    check_error(a.call("POST", "/jobs", ""), 400, None)
    check_error(a.call("POST", "/jobs", [run.queue, good]), 400, None)
    check_error(a.call("POST", "/jobs", {"config": good}), 400, "queue")
    check_error(a.call("POST", "/jobs", {"queue": 7, "config": good}), 400, "queue")
    check_error(a.call("POST", "/jobs", {"queue": "nope-" + run.tag, "config": good}), 400, "queue",
                "unknown queue")
    check_error(a.call("POST", "/jobs", {"queue": run.queue, "config": good, "id": "abc"}), 400,
                "id")
    check_error(a.call("POST", "/jobs", {"queue": run.queue, "config": good, "id": "g" * 32}),
                400, "id")
    check_error(a.call("POST", "/jobs", {"queue": run.queue, "config": good, "id": 5}), 400, "id")
    check_error(a.call("POST", "/jobs", {"queue": run.queue}), 400, "config")
    for config in ([1, 2], "text", 3, None):
        check_error(a.call("POST", "/jobs", {"queue": run.queue, "config": config}), 400, "config")
    deep = {"queue": run.queue, "config": dict(good)}
    nested = deep["config"]
    for _ in range(70):
        nested["x"] = {}
        nested = nested["x"]
    check_error(a.call("POST", "/jobs", deep), 400, "config", detail="nested deeper")
    check_error(a.call("POST", "/jobs", {"queue": run.queue, "config": good, "colour": "red"}),
                400, "colour")


@case("POST /jobs answers 400, not 503, for a config with invalid UTF-8 or a value no worker "
      "could run, and 202 for the deepest config the library accepts")
def t_config_text_checked_at_submit():
    base = compact(cfg(executor="sleep", seconds=0))[:-1].encode()  # without its closing brace
    cases = (
        (b'"s":"\xc0\xaf"', "overlong UTF-8 sequence"),
        (b'"s":"\xed\xa0\x80"', "UTF-8 encoded surrogate"),
        (b'"s":"\xf4\x90\x80\x80"', "beyond U+10FFFF"),
        (b'"s":"\\ud800"', "lone surrogate"),
        (b'"n":1e400', "number out of range"),
        (b'"n":18446744073709551616', "integer beyond 64 bits"),
    )
    for member, detail in cases:
        body = b'{"queue":"' + run.queue.encode() + b'","config":' + base + b"," + member + b"}}"
        check_error(run.a.call("POST", "/jobs", body), 400, "config", "invalid argument", detail)
    # The config object and 63 levels inside it: 64, the library's limit.
    deep = cfg(executor="sleep", seconds=0)
    nested = deep
    for _ in range(63):
        nested["x"] = {}
        nested = nested["x"]
    done = run_job(deep)
    check(done["id"] == derived_id(deep), f"deep config: {done}")


@case("404 for an unknown job, an unknown file and an unknown path; 400 for a bad id in a path")
def t_not_found():
    unknown = secrets.token_hex(16)
    check_error(run.a.call("GET", f"/jobs/{unknown}"), 404, None, "job not found")
    check_error(run.a.call("GET", f"/jobs/{unknown}/files"), 404)
    check_error(run.a.call("GET", f"/jobs/{unknown}/files/x.txt"), 404)
    check_error(run.a.call("POST", f"/jobs/{unknown}/expire"), 404)
    check_error(run.a.call("GET", f"/jobs/{run.sleep_id}/files/nope.txt"), 404, "name",
                "file not found")
    check_error(run.a.call("GET", f"/jobs/{run.sleep_id}/files/..%2F..%2Fetc"), 404)
    # "/" is the dashboard's page (tests/browser), "/ui/" holds only its files.
    for path in ("/ui/nope", "/ui/", "/nope", "/jobs/", f"/jobs/{run.sleep_id}/other",
                 "/health/x", f"/jobs/{run.sleep_id}/files/a/b", "//jobs"):
        check_error(run.a.call("GET", path), 404, None, "not found")
    check_error(run.a.call("GET", "/jobs/not-an-id"), 400, "id")
    check_error(run.a.call("DELETE", "/jobs/" + "0" * 31), 400, "id")


def raw_exchange(port, data, source="127.0.0.1", timeout=30):
    """Send @data on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0)) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def raw_status(answer):
    first = answer.split(b"\r\n", 1)[0].split()
    return int(first[1]) if len(first) > 1 else None


@case("an HTTP/1.1 request without Host answers 400; HTTP/1.0 needs none")
def t_host_required():
    answer = raw_exchange(run.a.port, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
    check(raw_status(answer) == 400 and b"Host" in answer, f"without Host: {answer[:300]!r}")
    answer = raw_exchange(run.a.port, b"GET /health HTTP/1.0\r\n\r\n")
    check(raw_status(answer) == 200, f"HTTP/1.0: {answer[:300]!r}")


@case("a client sending its request a byte at a time is cut off at the request deadline")
def t_slow_client_cut():
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", run.a.port), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
        closed = False
        # A hang guard well past the test server's request_timeout (5 s).
        while time.monotonic() - started < 90 and not closed:
            try:
                sock.sendall(b"X")
                readable = select.select([sock], [], [], 0.5)[0]
                closed = bool(readable) and sock.recv(4096) == b""
            except (BrokenPipeError, ConnectionResetError):
                closed = True
    check(closed, "the server kept a trickling connection open for 90 s")


@case("one client address cannot take every connection: the others are still served")
def t_per_client_limit():
    limit = run.base_config["listen"]["max_connections_per_client"]
    held = [socket.create_connection(("127.0.0.1", run.a.port), timeout=30) for _ in range(limit)]
    try:
        time.sleep(0.5)  # let the server accept them all
        # A path no route takes: its 404 needs no backing service (/health
        # may answer 503 when a probe is slow on a loaded machine).
        request = b"GET /no-such-path HTTP/1.0\r\n\r\n"
        answer = b""
        try:
            answer = raw_exchange(run.a.port, request)
        except OSError:
            pass
        check(raw_status(answer) is None, f"connection {limit + 1} of one client was served")
        answer = raw_exchange(run.a.port, request, source="127.0.0.2")
        check(raw_status(answer) == 404, f"another client was refused: {answer[:200]!r}")
    finally:
        for sock in held:
            sock.close()


@case("/health answers from a cache for health_cache_seconds, without addresses")
def t_health_cached():
    time.sleep(run.base_config["health_cache_seconds"] + 0.5)
    first = run.a.call("GET", "/health").json()
    second = run.a.call("GET", "/health").json()
    check(first["cached"] is False and second["cached"] is True, f"{first} then {second}")
    check(0 <= second["age_seconds"] <= run.base_config["health_cache_seconds"], f"{second}")
    time.sleep(run.base_config["health_cache_seconds"] + 0.5)
    check(run.a.call("GET", "/health").json()["cached"] is False, "the cache did not expire")


@case("a percent-decoded newline in a path is escaped in the log, not written raw")
def t_log_escaped():
    run.a.call("GET", "/jobs/x%0aFORGED%20log%20line%0d")
    run.a.call("GET", "/health")  # a later line, so that the first one is flushed
    with open(run.a.log_path, errors="replace") as f:
        log = f.read()
    check(not any(line.startswith("FORGED") for line in log.splitlines()), "a forged log line")
    check("/jobs/x\\x0aFORGED log line\\x0d" in log, "the path is not in the log, escaped")


@case("NUL in a member name or a name is refused: one parser decides what the config is")
def t_nul_refused():
    good = compact(cfg(executor="sleep", seconds=0))
    bad_config = compact(cfg(executor="command", program="pause", args=["600"]))
    body = ('{"queue": "%s", "config\\u0000": %s, "config": %s}' % (run.queue, bad_config, good))
    check_error(run.a.call("POST", "/jobs", body), 400, None, "invalid argument", "NUL")
    check(job_status_code(derived_id(json.loads(good))) == 404, "the job was stored")
    inner = '{"queue": "%s", "config": {"executor": "sleep", "seconds": 0, "x\\u0000y": 1}}'
    check_error(run.a.call("POST", "/jobs", inner % run.queue), 400, None, "invalid argument",
                "NUL")
    for config, field in (('{"executor": "command\\u0000", "program": "echo"}',
                           "config.executor"),):
        r = run.a.call("POST", "/jobs", '{"queue": "%s", "config": %s}' % (run.queue, config))
        check_error(r, 400, field, "invalid argument")
    r = run.a.call("POST", "/jobs", '{"queue": "%s\\u0000x", "config": %s}' % (run.queue, good))
    check_error(r, 400, "queue")
    r = run.a.call("GET", f"/jobs/{run.sleep_id}/files/sleep.json%00.txt")
    check(r.status in (400, 404) and b"slept_seconds" not in r.body, f"%00 in a name: {r}")


@case("405 with an Allow header for a wrong method")
def t_method():
    for method, path, allow in (("PUT", "/jobs", "GET, HEAD, POST"),
                                ("DELETE", "/jobs", "GET, HEAD, POST"),
                                ("POST", "/health", "GET, HEAD"),
                                ("PATCH", f"/jobs/{run.sleep_id}", "GET, HEAD, DELETE"),
                                ("GET", f"/jobs/{run.sleep_id}/expire", "POST"),
                                ("DELETE", f"/jobs/{run.sleep_id}/files", "GET, HEAD")):
        r = run.a.call(method, path)
        check_error(r, 405, None, "method not allowed")
        check(r.headers.get("allow") == allow, f"{method} {path}: Allow {r.headers.get('allow')}")


@case("413 for a body over the limit, answered from Content-Length before the body is sent")
def t_too_large_early():
    conn = http.client.HTTPConnection("127.0.0.1", run.a.port, timeout=60)
    try:
        conn.putrequest("POST", "/jobs")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(2 * MIB))
        conn.endheaders()  # and not one byte of the body
        r = conn.getresponse()
        check_error(Response(r.status, {}, r.read()), 413, "body", "input too large")
    finally:
        conn.close()


@case("413 for a chunked body over the limit; the server keeps serving")
def t_too_large_chunked():
    def chunks():
        piece = b" " * 65536
        for _ in range(2 * MIB // len(piece)):
            yield piece
    conn = http.client.HTTPConnection("127.0.0.1", run.a.port, timeout=60)
    try:
        conn.request("POST", "/jobs", body=chunks(), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        r = conn.getresponse()
        check_error(Response(r.status, {}, r.read()), 413, "body")
    finally:
        conn.close()
    # Just under the limit is read whole (and is then merely malformed).
    r = run.a.call("POST", "/jobs", b"{" + b" " * (MIB - 2) + b"x")
    check_error(r, 400, None, "invalid argument")
    check(run.a.call("GET", "/health").status == 200, "the server stopped answering")


@case("a second service on the bucket: in the lcp layout it sees the job as unowned (409 for "
      "delete, expire and resubmission); in the native one it may not start on A's root (78)")
def t_unowned():
    db_b = os.environ.get("ACP_TEST_PG_DB_B")
    check(db_b, "ACP_TEST_PG_DB_B is not set (scripts/stack provides a second database)")
    b = Server(run.binary, run.work, "server-b", dict(
        run.base_config, database={"dbname": db_b},
        queues=[{"id": run.queue_b, "workers": 1}], workspace_root=f"{run.work}/ws-b"))
    if run.layout == "native":
        b.launch()
        status = b.proc.wait(timeout=START_TIMEOUT)
        out = b.proc.stdout.read().decode()
        b.proc.stdout.close()
        log = b.log_tail()
        check(status == 78, f"exit status {status}, expected 78:\n{log}")
        check(out == "", f"it claimed to listen: {out}")
        check("the S3 root belongs to database" in log and f"/{db_b}" in log, f"message: {log}")
        return
    run.b = b
    b.start()
    doc = job(run.sleep_id, b)
    check(doc["owned"] is False and doc["status"] == "complete", f"on B: {doc}")
    check_error(b.call("DELETE", f"/jobs/{run.sleep_id}"), 409, None,
                "job is owned by another service")
    check_error(b.call("POST", f"/jobs/{run.sleep_id}/expire"), 409)
    r = b.call("POST", "/jobs", {"queue": run.queue_b, "config": run.sleep_config})
    check_error(r, 409)
    check(job(run.sleep_id)["owned"] is True, "A lost the job")
    status = b.stop()
    check(status == 0, f"B exited with {status}:\n{b.log_tail()}")


@case("a server whose database is unreachable does not start: exit 69 naming postgres")
def t_db_down():
    port = free_port()
    bad = Server(run.binary, run.work, "server-db-down", dict(
        run.base_config, database={"port": port}, queues=[{"id": run.queue_b}]))
    bad.launch()
    status = bad.proc.wait(timeout=START_TIMEOUT)
    out = bad.proc.stdout.read().decode()
    bad.proc.stdout.close()
    log = bad.log_tail()
    check(status == 69, f"exit status {status}, expected 69:\n{log}")
    check(out == "", f"it claimed to listen: {out}")
    check(f"cannot start: database error: postgres 127.0.0.1:{port}" in log, f"message: {log}")


@case("a bad config file is refused at start with the key named: exit 78")
def t_bad_config():
    bad = Server(run.binary, run.work, "server-bad-config",
                 {"listen": {"port": 0}, "databse": {"port": 1}})
    bad.launch()
    status = bad.proc.wait(timeout=START_TIMEOUT)
    bad.proc.stdout.close()
    log = bad.log_tail()
    check(status == 78 and "databse: unknown setting" in log, f"exit {status}: {log}")


# ---- job control ------------------------------------------------------------

def parse_iso(text):
    check(isinstance(text, str) and ISO_UTC.match(text), f"not an ISO-8601 UTC time: {text!r}")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def submit_body(body, expect=202, server=None):
    r = (server or run.a).call("POST", "/jobs", body)
    check(r.status == expect, f"POST /jobs {compact(body)}: expected {expect}, got {r}")
    doc = r.json()
    if r.status in (200, 202) and server in (None, run.a):
        run.submitted.add(doc["id"])
    return doc


@case("POST /jobs answers 400 naming a bad priority, max_attempts, timeout_seconds, not_before "
      "or delay_seconds, and stores nothing")
def t_job_control_validation():
    now = datetime.now(timezone.utc)
    far = (now + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cases = [
        ({"priority": -1}, "priority", "-1 is outside 0..100"),
        ({"priority": 101}, "priority", "outside 0..100"),
        ({"priority": "high"}, "priority", "expected an integer"),
        ({"priority": 7.5}, "priority", "expected an integer"),
        ({"max_attempts": 0}, "max_attempts", "outside 1..1000"),
        ({"max_attempts": 1001}, "max_attempts", "outside 1..1000"),
        ({"timeout_seconds": 0}, "timeout_seconds", "outside 1..2592000"),
        ({"timeout_seconds": "2"}, "timeout_seconds", "expected an integer"),
        ({"delay_seconds": -1}, "delay_seconds", "outside 0..31622400"),
        ({"delay_seconds": 31622401}, "delay_seconds", "outside 0..31622400"),
        ({"delay_seconds": "soon"}, "delay_seconds", "expected a number"),
        ({"not_before": "tomorrow"}, "not_before", "RFC 3339"),
        ({"not_before": "2026-12-03T18:00:00"}, "not_before", "with a time zone"),
        ({"not_before": 1796320800}, "not_before", "RFC 3339"),
        ({"not_before": far}, "not_before", "more than 366 days ahead"),
        ({"not_before": old}, "not_before", "more than 24 hours ago"),
        ({"not_before": far, "delay_seconds": 5}, "delay_seconds", "not both"),
    ]
    for members, field, detail in cases:
        config = cfg(executor="sleep", seconds=0, purpose="validation", field=field)
        r = run.a.call("POST", "/jobs", dict(members, queue=run.queue, config=config))
        check_error(r, 400, field, "invalid argument", detail)
        check(job_status_code(derived_id(config)) == 404, f"{compact(members)} stored a job")


@case("a delayed job shows queued with its next_run, priority, max_attempts and timeout; "
      "POST /jobs/{id}/cancel cancels it at once (200, cancelled), again 409")
def t_cancel_delayed():
    before = datetime.now(timezone.utc)
    config = cfg(executor="sleep", seconds=0, purpose="delayed")
    doc = submit_body({"queue": run.queue, "config": config, "priority": 77, "max_attempts": 2,
                       "timeout_seconds": 30, "delay_seconds": 3600})
    check(doc["id"] == derived_id(config), f"reply: {doc}")
    for state in (doc, job(doc["id"])):
        check(state["status"] == "queued" and state["priority"] == 77 and
              state["max_attempts"] == 2 and state["timeout_seconds"] == 30 and
              state["attempts"] == 0 and state["cancel_requested"] is False, f"job: {state}")
        due = parse_iso(state["next_run"])
        check(before + timedelta(seconds=3590) <= due <= before + timedelta(seconds=3900),
              f"next_run {state['next_run']} is not an hour after {before}")
    run.delayed_id = doc["id"]

    # An absolute time, with an offset, round-trips to the millisecond.
    at = (before + timedelta(hours=2)).replace(microsecond=250000)
    text = at.astimezone(timezone(timedelta(hours=-5))).isoformat()
    config = cfg(executor="sleep", seconds=0, purpose="not_before")
    doc = submit_body({"queue": run.queue, "config": config, "not_before": text, "priority": 0})
    state = job(doc["id"])
    check(state["status"] == "queued" and state["priority"] == 0, f"job: {state}")
    check(parse_iso(state["next_run"]) == at, f"not_before {text}: next_run {state['next_run']}")
    run.not_before_id = doc["id"]

    r = run.a.call("POST", f"/jobs/{run.delayed_id}/cancel")
    check(r.status == 200, f"cancel: {r}")
    doc = r.json()
    check(doc["id"] == run.delayed_id and doc["status"] == "cancelled" and
          doc["cancel_requested"] is False and doc["next_run"] is None and
          doc["message"] == "cancelled" and doc["last_error"] == "cancelled", f"cancel: {doc}")
    check(job(run.delayed_id)["status"] == "cancelled", "GET after cancel")
    again = check_error(run.a.call("POST", f"/jobs/{run.delayed_id}/cancel"), 409)
    check(again.get("status") == "cancelled", f"409 body: {again}")
    check(job(run.not_before_id)["status"] == "queued", "the other delayed job was touched")

    r = run.a.call("GET", f"/jobs?queue={run.queue}&status=cancelled")
    check(r.status == 200, f"{r}")
    listed = r.json()["jobs"]
    check([j["id"] for j in listed] == [run.delayed_id], f"status=cancelled: {listed}")
    check(listed[0]["priority"] == 77 and listed[0]["cancel_requested"] is False and
          listed[0]["max_attempts"] == 2, f"list entry: {listed[0]}")
    r = run.a.call("GET", f"/jobs?queue={run.queue}&status=queued")
    check([j["id"] for j in r.json()["jobs"]] == [run.not_before_id], f"status=queued: {r}")


@case("POST /jobs/{id}/cancel: 409 naming the status of a finished job, 404 for an unknown "
      "one, 400 for a bad id, 405 for GET; a cancelled job resubmitted runs again")
def t_cancel_errors():
    done = check_error(run.a.call("POST", f"/jobs/{run.sleep_id}/cancel"), 409, None, None,
                       "complete")
    check(done.get("status") == "complete", f"409 body: {done}")
    check(job(run.sleep_id)["status"] == "complete", "the finished job was touched")
    check_error(run.a.call("POST", f"/jobs/{secrets.token_hex(16)}/cancel"), 404, None,
                "job not found")
    check_error(run.a.call("POST", "/jobs/not-an-id/cancel"), 400, "id")
    r = run.a.call("GET", f"/jobs/{run.delayed_id}/cancel")
    check(r.status == 405 and r.headers.get("allow") == "POST", f"GET cancel: {r}")

    # Cancel the other delayed job, then submit its config again without a
    # delay: it runs.
    r = run.a.call("POST", f"/jobs/{run.not_before_id}/cancel")
    check(r.status == 200 and r.json()["status"] == "cancelled", f"cancel: {r}")
    state = job(run.not_before_id)
    check(state["status"] == "cancelled", f"job: {state}")
    config = cfg(executor="sleep", seconds=0, purpose="delayed")
    doc = submit_body({"queue": run.queue, "config": config})
    check(doc["id"] == run.delayed_id, f"resubmitted: {doc}")
    done = wait_status(run.delayed_id, {"complete", "failed"})
    check(done["status"] == "complete" and done["message"] is None, f"resubmitted: {done}")


def start_job_control_server():
    """A server whose command executor has a limit of its own far beyond the
    jobs' (so that what stops them is the job's timeout or the cancel), and
    one worker (so that a job can run only once the one before has freed
    it)."""
    run.queue_c = f"http-{run.tag}-c"
    config = json.loads(json.dumps(run.base_config))
    config["executors"]["command"]["timeout_seconds"] = 900
    config["executors"]["sleep"]["max_seconds"] = 600
    run.c = Server(run.binary, run.work, "server-c", dict(
        config, queues=[{"id": run.queue_c, "workers": 1}], workspace_root=f"{run.work}/ws-c"))
    run.c.start()


def wait_process(needle, present, what):
    """Until a process whose command line holds @needle is there (present) or
    gone; a hang guard, not a timing assertion."""
    deadline = time.monotonic() + 60
    while bool(processes_running(needle)) != present:
        check(time.monotonic() < deadline,
              f"{what}: after 60 s still {'no' if present else 'a'} process {needle!r}: "
              f"{processes_running(needle)}")
        time.sleep(0.05)


def wait_end(job_id, server, what):
    """The job's final state; 60 s is a hang guard."""
    deadline = time.monotonic() + 60
    while True:
        doc = job(job_id, server)
        if doc["status"] in ("complete", "failed", "cancelled"):
            return doc
        check(time.monotonic() < deadline, f"{what}: still {doc['status']} after 60 s: {doc}")
        time.sleep(0.1)


@case("a command job running sleep 600 with timeout_seconds 2 ends failed (timed out) within "
      "seconds, and its program is gone")
def t_command_job_timeout():
    start_job_control_server()
    marker = f"600.{900000 + secrets.randbelow(99999)}"
    needle = f"sleep\0{marker}\0".encode()
    config = cfg(executor="command", program="pause", args=[marker])
    doc = submit_body({"queue": run.queue_c, "config": config, "timeout_seconds": 2,
                       "max_attempts": 1}, server=run.c)
    check(doc["timeout_seconds"] == 2 and doc["max_attempts"] == 1, f"reply: {doc}")
    wait_process(needle, True, "the program never started")
    done = wait_end(doc["id"], run.c, "timeout")
    check(done["status"] == "failed" and "timed out" in (done["message"] or "") and
          done["attempts"] == 1 and done["last_error"] == done["message"], f"job: {done}")
    wait_process(needle, False, "the timed-out program was left running")


@case("POST /jobs/{id}/cancel of a running command job (sleep 600): 200 with cancel_requested, "
      "then cancelled, its program gone, the worker free again; the same for a sleep job")
def t_cancel_running():
    check(getattr(run, "c", None) and run.c.proc.poll() is None, "server-c is not running")
    marker = f"600.{900000 + secrets.randbelow(99999)}"
    needle = f"sleep\0{marker}\0".encode()
    config = cfg(executor="command", program="pause", args=[marker])
    doc = submit_body({"queue": run.queue_c, "config": config}, server=run.c)
    wait_process(needle, True, "the program never started")
    r = run.c.call("POST", f"/jobs/{doc['id']}/cancel")
    check(r.status == 200, f"cancel: {r}")
    state = r.json()
    check(state["status"] == "cancelled" or
          (state["status"] == "in-progress" and state["cancel_requested"] is True),
          f"right after the cancel: {state}")
    done = wait_end(doc["id"], run.c, "cancel of the command")
    check(done["status"] == "cancelled" and done["cancel_requested"] is False, f"job: {done}")
    wait_process(needle, False, "the cancelled program was left running")
    again = check_error(run.c.call("POST", f"/jobs/{doc['id']}/cancel"), 409)
    check(again.get("status") == "cancelled", f"409 body: {again}")

    # The sleep executor: cancelled too, and it returns (the queue's only
    # worker runs the next job).
    config = cfg(executor="sleep", seconds=600, purpose="cancel")
    doc = submit_body({"queue": run.queue_c, "config": config}, server=run.c)
    deadline = time.monotonic() + JOB_TIMEOUT
    while job(doc["id"], run.c)["status"] != "in-progress":
        check(time.monotonic() < deadline, "the sleep job never started")
        time.sleep(0.05)
    r = run.c.call("POST", f"/jobs/{doc['id']}/cancel")
    check(r.status == 200, f"cancel: {r}")
    done = wait_end(doc["id"], run.c, "cancel of the sleep")
    check(done["status"] == "cancelled", f"job: {done}")
    config = cfg(executor="checksum", text="after", purpose="cancel")
    doc = submit_body({"queue": run.queue_c, "config": config}, server=run.c)
    done = wait_end(doc["id"], run.c, "the job after the cancelled ones")
    check(done["status"] == "complete", f"job: {done}")

    status = run.c.stop()
    check(status == 0, f"server-c exited with {status}:\n{run.c.log_tail()}")


STATUSES = ("queued", "in-progress", "complete", "failed", "expired", "cancelled")


def listed_counts(queue):
    """The statuses of a queue's jobs as GET /jobs pages them."""
    counts, cursor = dict.fromkeys(STATUSES, 0), ""
    while True:
        r = run.a.call("GET", f"/jobs?queue={queue}&limit=1000{cursor}")
        check(r.status == 200, f"GET /jobs?queue={queue}: {r}")
        page = r.json()
        for j in page["jobs"]:
            counts[j["status"]] += 1
        if not page["next_cursor"]:
            return counts
        cursor = f"&cursor={page['next_cursor']}"


@case("GET /queues counts the jobs of each queue by status as the listing does, the served "
      "queue first, another service's queue not served; totals add up; answers are reused "
      "for 2 s")
def t_queues():
    other = f"http-{run.tag}-c"
    # The run's jobs have ended by now; a count older than the cache may
    # still show one moving: a few tries.
    for attempt in range(5):
        want = {run.queue: listed_counts(run.queue), other: listed_counts(other)}
        time.sleep(2.1)  # past the cache of an earlier answer
        r = run.a.call("GET", "/queues")
        check(r.status == 200, f"GET /queues: {r}")
        doc = r.json()
        got = {q["queue"]: q for q in doc["queues"]}
        if all(q in got and got[q]["counts"] == want[q] for q in want):
            break
        check(attempt < 4, f"/queues {doc} does not match the listings {want}")
    check(doc["queues"][0]["queue"] == run.queue and got[run.queue]["served"] is True,
          f"the served queue is not first: {doc['queues'][:2]}")
    check(got[other]["served"] is False, f"{other} is not this server's: {got[other]}")
    check(want[run.queue]["complete"] > 0 and want[run.queue]["failed"] > 0,
          f"the run has complete and failed jobs: {want[run.queue]}")
    # Every failure of the run ended within the hour.
    check(got[run.queue]["failed_last_hour"] == want[run.queue]["failed"],
          f"failed_last_hour {got[run.queue]['failed_last_hour']}, "
          f"failed {want[run.queue]['failed']}")
    for status in STATUSES:
        total = sum(q["counts"][status] for q in doc["queues"])
        check(doc["totals"][status] == total, f"totals[{status}] {doc['totals']} != {total}")
    check(doc["failed_last_hour"] == sum(q["failed_last_hour"] for q in doc["queues"]),
          f"failed_last_hour {doc['failed_last_hour']}")
    again = run.a.call("GET", "/queues").json()
    check(again["age_seconds"] > 0 and again["queues"] == doc["queues"],
          f"a second answer within 2 s is not the cached one: {again}")
    check_error(run.a.call("POST", "/queues", {}), 405)


@case("clean-up: every job of the run is deleted through the API")
def t_cleanup():
    # server-c's queue too: its jobs are in the same database and S3 root.
    for queue in (run.queue, f"http-{run.tag}-c"):
        r = run.a.call("GET", f"/jobs?queue={queue}&limit=1000")
        check(r.status == 200, f"{r}")
        for j in r.json()["jobs"]:
            wait_status(j["id"], {"complete", "failed", "expired", "cancelled"})
            d = run.a.call("DELETE", f"/jobs/{j['id']}")
            check(d.status == 204, f"DELETE {j['id']}: {d}")
        r = run.a.call("GET", f"/jobs?queue={queue}")
        check(r.json()["jobs"] == [], f"left: {r}")
    run.cleaned = True


@case("SIGTERM stops the server cleanly: exit 0")
def t_stop():
    status = run.a.stop()
    check(status == 0, f"exit status {status}:\n{run.a.log_tail()}")
    log = open(run.a.log_path, errors="replace").read()
    check("SIGTERM: stopping" in log and "stopped" in log, "no stop messages in the log")
    check_no_sanitizer_report(log, "the server log")


# ---- driver ---------------------------------------------------------------

def stack_settings_present():
    missing = next((v for v in STACK_VARS if not os.environ.get(v)), None)
    if not missing:
        return True
    if os.environ.get("ACP_TEST_REQUIRE_SERVICES") == "1":
        print(f"1..1\nnot ok 1 - stack settings: {missing} is not set "
              f"(eval \"$(scripts/stack up)\")")
        sys.exit(1)
    print(f"1..0 # SKIP {missing} is not set; run eval \"$(scripts/stack up)\" first")
    sys.exit(0)


def main():
    stack_settings_present()
    run.binary, queue_delete = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    run.tag = secrets.token_hex(4)
    run.layout = os.environ.get("ACP_TEST_LAYOUT", "native")
    run.queue, run.queue_b = f"http-{run.tag}", f"http-{run.tag}-b"
    run.work = tempfile.mkdtemp(prefix=f"acp-http-{run.tag}-")
    run.submitted, run.failed, run.cleaned = set(), set(), False
    programs = {k: os.path.realpath(shutil.which(v)) for k, v in
                {"echo": "echo", "env": "env", "cat": "cat", "pause": "sleep"}.items()}
    programs["wc"] = {"path": os.path.realpath(shutil.which("wc")), "options": ["-c"]}
    programs["seq"] = {"path": os.path.realpath(shutil.which("seq")), "options": ["--separator="]}
    programs["sh"] = {"path": os.path.realpath(shutil.which("sh")), "options": ["-c"]}
    run.base_config = {
        "listen": {"address": "127.0.0.1", "port": 0, "request_timeout": 5,
                   "max_connections_per_client": 8},
        "health_cache_seconds": 2,
        "s3": {"root_path": f"http-test-{run.tag}"},
        "layout": run.layout,
        "shutdown_timeout": 5,
        "log_level": "info",
        "executors": {
            "sleep": {"max_seconds": 60},
            "command": {"programs": programs, "timeout_seconds": 2, "max_args": 64,
                        "max_file_bytes": 8 * MIB, "max_processes": 16},
        },
    }
    run.a = Server(run.binary, run.work, "server-a", dict(
        run.base_config, queues=[{"id": run.queue, "workers": 3}],
        workspace_root=f"{run.work}/ws-a"))
    run.b = None
    print(f"# run {run.tag}: queue {run.queue}, S3 root http-test-{run.tag}, files in {run.work}")

    failed = run_cases(cases)
    return finish(run, failed, [run.a, run.b, getattr(run, "c", None)], [run.a], queue_delete, [f"{run.queue}_jobs", f"{run.queue_b}_jobs", f"http-{run.tag}-c_jobs"])


if __name__ == "__main__":
    sys.exit(main())
