#!/usr/bin/env python3
"""acp, the command-line client, against real example servers on the local stack.

    test_cli.py ACP_BINARY SERVER_BINARY AMQP_QUEUE_DELETE_BINARY COMPLETION_FILE

Two server processes on one database and S3 root (as test_http_live.py):
A runs the jobs, B has a queue of its own and is the one `acp logs -f`
talks to, on a fixed port so that it can be restarted under a follower.
Every command runs as a user would run it (a subprocess), its --json output
is parsed, and each exit status the client documents is provoked. A third
server with tokens checks exit status 6 (it needs the server's access
control, issue 17's h-auth part). Everything the run creates is deleted at
the end. Prints TAP.
"""
import email.parser
import email.policy
import hashlib
import http.server
import json
import os
import pty
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "http"))
from test_http import (  # noqa: E402
    Failure, Server, case_registry, check, check_no_sanitizer_report, compact, derived_id,
    finish, free_port, run_cases, stack_settings_present)

JOB_TIMEOUT = 180  # hang guard, not a timing assertion
MIB = 1024 * 1024
BIG = 50 * MIB
# exit statuses (docs/cli.adoc)
OK, ERROR, USAGE, NOT_FOUND, FAILED, UNREACHABLE, AUTH, TIMEOUT, CONFLICT = range(9)


class Run:
    pass


run = Run()
cases, case = case_registry()


class Result:
    def __init__(self, args, proc):
        self.args, self.rc = args, proc.returncode
        self.out, self.err = proc.stdout, proc.stderr

    @property
    def text(self):
        return self.out.decode(errors="replace")

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError:
            raise Failure(f"acp {' '.join(self.args)}: not JSON: {self.out[:300]!r}")

    def __repr__(self):
        return (f"acp {' '.join(self.args)} -> exit {self.rc}\n  stdout: {self.out[:600]!r}\n"
                f"  stderr: {self.err[:600]!r}")


def acp(*args, server=None, env=None, expect=OK, stdin=None, cwd=None):
    """Runs acp with ACP_SERVER set to A (or @server) and checks its exit status."""
    e = dict(os.environ)
    e.pop("ACP_TOKEN", None)
    e["ACP_SERVER"] = f"http://127.0.0.1:{(server or run.a).port}"
    e.update(env or {})
    proc = subprocess.run([run.acp, *args], env=e, capture_output=True, timeout=JOB_TIMEOUT,
                          input=stdin, cwd=cwd)
    r = Result(args, proc)
    if expect is not None:
        check(r.rc == expect, f"expected exit {expect}: {r}")
    check_no_sanitizer_report(r.err.decode(errors="replace"), f"acp's stderr: {r}")
    return r


def cfg(**members):
    members["run"] = run.tag
    return members


def submit_json(config, *extra, expect=OK):
    r = acp("--json", "submit", run.queue, "--config", compact(config), *extra, expect=expect)
    doc = r.json()
    run.submitted.add(doc["id"])
    return doc


def job(job_id, server=None):
    r = (server or run.a).call("GET", f"/jobs/{job_id}")
    check(r.status == 200, f"GET /jobs/{job_id}: {r}")
    return r.json()


def wait_until(job_id, predicate, what):
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        doc = job(job_id)
        if predicate(doc):
            return doc
        check(time.monotonic() < deadline, f"job {job_id}: {what}; it is {doc['status']}")
        time.sleep(0.05)


def wait_end(job_id):
    return wait_until(job_id, lambda d: d["status"] in ("complete", "failed", "cancelled"),
                      "never ended")


def download(job_id, name, server=None):
    r = (server or run.a).call("GET", f"/jobs/{job_id}/files/{name}")
    check(r.status == 200, f"GET /jobs/{job_id}/files/{name}: {r}")
    return r.body


def lines_config(count, pause):
    """A command job printing @count numbered lines @pause seconds apart."""
    script = (f"i=1; while [ $i -le {count} ]; do echo \"line $i\"; sleep {pause}; "
              "i=$((i+1)); done")
    return cfg(executor="command", program="sh", args=["-c", script])


def run_in_pty(args):
    """acp with stdout and stderr on a terminal; returns (exit, what it showed)."""
    e = dict(os.environ, ACP_SERVER=f"http://127.0.0.1:{run.a.port}")
    master, slave = pty.openpty()
    proc = subprocess.Popen([run.acp, *args], env=e, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return proc.wait(timeout=JOB_TIMEOUT), shown.decode(errors="replace")


def temp_leftovers(directory):
    return [n for n in os.listdir(directory) if ".acp-" in n]


# ---- the cases ------------------------------------------------------------

@case("servers A and B start on one database and S3 root")
def t_start():
    run.a.start()
    run.b.start()


@case("--help and --version exit 0; --help documents the exit statuses")
def t_help():
    r = acp("--help")
    for word in ("submit", "status", "list", "wait", "cancel", "logs", "files", "get",
                 "expire", "delete", "health", "metrics", "--token-file", "--cacert",
                 "Exit status", "7 wait timed out"):
        check(word in r.text, f"--help lacks {word!r}: {r.text}")
    r = acp("--version")
    check(r.text.startswith("acp ") and r.text.split()[1][0].isdigit(), f"--version: {r}")


@case("usage errors exit 2 with one line naming the problem")
def t_usage():
    for args, needle in [((), "no command"), (("frobnicate",), "unknown command 'frobnicate'"),
                         (("list", "--bogus"), "--bogus"), (("status",), "usage: acp status"),
                         (("submit", run.queue), "--config is required"),
                         (("submit", run.queue, "--config", "{bad"), "not valid JSON"),
                         (("submit", run.queue, "--config", "[1]"), "JSON object"),
                         (("submit", run.queue, "--config", "{}", "--priority", "high"),
                          "--priority: expected an integer"),
                         (("submit", run.queue, "--config", "{}", "--input", "noequals"),
                          "NAME=PATH"),
                         (("list", "--limit", "0"), "--limit"),
                         (("wait", "--timeout", "-1", "x"), "--timeout")]:
        r = acp(*args, expect=USAGE)
        check(needle in r.err.decode(), f"stderr lacks {needle!r}: {r}")
        check(r.out == b"", f"usage error wrote to stdout: {r}")


@case("health: a table of the services (human) and the server's JSON (--json)")
def t_health():
    r = acp("health")
    for name in ("postgres", "s3", "rabbitmq"):
        check(name in r.text, f"health lacks {name}: {r}")
    check("SERVICE" in r.text and "STATE" in r.text, f"no table header: {r}")
    doc = acp("health", "--json").json()
    check(doc["status"] == "ok" and {s["name"] for s in doc["services"]} ==
          {"postgres", "s3", "rabbitmq"}, f"health --json: {doc}")


@case("submit --json answers the job (id derived from the config); submit --wait shows it "
      "complete; the same config again says it exists")
def t_submit():
    config = cfg(executor="checksum", text="hello acp")
    doc = submit_json(config, "--priority", "70", "--max-attempts", "2", "--timeout", "30")
    check(doc["id"] == derived_id(config), f"id {doc['id']} vs {derived_id(config)}")
    check(doc["priority"] == 70 and doc["max_attempts"] == 2 and doc["timeout_seconds"] == 30,
          f"job control not applied: {doc}")
    run.checksum_id = doc["id"]
    wait_end(doc["id"])
    config2 = cfg(executor="checksum", text="waited for")
    r = acp("submit", run.queue, "--config", compact(config2), "--wait")
    run.submitted.add(derived_id(config2))
    check(f"{derived_id(config2)} submitted" in r.text and
          f"{derived_id(config2)} complete" in r.text, f"submit --wait: {r}")
    r = acp("submit", run.queue, "--config", compact(config))
    check(f"{doc['id']} exists (complete)" in r.text, f"submitting again: {r}")


@case("submit --config @FILE and @- read the config from a file and from stdin; --delay "
      "queues the job for later")
def t_submit_file():
    config = cfg(executor="checksum", text="from a file")
    path = os.path.join(run.work, "config.json")
    with open(path, "w") as f:
        f.write(json.dumps(config, indent=2) + "\n")
    r = acp("--json", "submit", run.queue, "--config", "@" + path)
    check(r.json()["id"] == derived_id(config), f"@file: {r}")
    run.submitted.add(derived_id(config))
    config = cfg(executor="checksum", text="from stdin")
    r = acp("--json", "submit", run.queue, "--config", "@-", "--delay", "3600",
            stdin=compact(config).encode())
    doc = r.json()
    run.submitted.add(doc["id"])
    check(doc["id"] == derived_id(config) and doc["status"] == "queued", f"@-: {doc}")
    run.delayed_id = doc["id"]


@case("status: human lines with absolute and relative times; --json is the server's job")
def t_status():
    r = acp("status", run.checksum_id)
    for needle in ("status      complete", "attempts    1 of 2", "priority    70",
                   "queue       " + run.queue):
        check(needle in r.text, f"status lacks {needle!r}: {r}")
    check(re.search(r"created     \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
                    r"\((\d+ s ago|just now)\)", r.text), f"status: created: {r}")
    doc = acp("status", run.checksum_id, "--json").json()
    check(doc["id"] == run.checksum_id and doc["status"] == "complete", f"--json: {doc}")
    r = acp("status", run.delayed_id)
    check("next run" in r.text and "(in " in r.text, f"a delayed job's next run: {r}")


@case("files: an aligned table and --json; get: the file, to a path and to stdout")
def t_files_get():
    r = acp("files", run.checksum_id)
    lines = r.text.splitlines()
    check(lines[0].split() == ["NAME", "SIZE", "BYTES"] and "checksum.json" in lines[1],
          f"files: {r}")
    check(lines[0].index("SIZE") == lines[1].index(lines[1].split()[1]), f"not aligned: {r}")
    doc = acp("files", run.checksum_id, "--json").json()
    names = {f["name"]: f["size"] for f in doc["files"]}
    expected = download(run.checksum_id, "checksum.json")
    check(names.get("checksum.json") == len(expected), f"files --json: {doc}")
    d = tempfile.mkdtemp(dir=run.work)
    acp("get", run.checksum_id, "checksum.json", cwd=d)
    with open(os.path.join(d, "checksum.json"), "rb") as f:
        check(f.read() == expected, "get wrote other bytes")
    r = acp("get", run.checksum_id, "checksum.json", "-o", "-")
    check(r.out == expected and r.err == b"", f"-o -: {r}")
    target = os.path.join(d, "renamed.json")
    acp("get", run.checksum_id, "checksum.json", "-o", target)
    with open(target, "rb") as f:
        check(f.read() == expected, "-o PATH wrote other bytes")
    check(temp_leftovers(d) == [], f"temporary files left: {os.listdir(d)}")
    check(json.loads(expected)["sha256"] == hashlib.sha256(b"hello acp").hexdigest(),
          "checksum.json")


@case("get of an unknown file exits 3 and leaves no file; into a missing directory exits 1")
def t_get_errors():
    d = tempfile.mkdtemp(dir=run.work)
    r = acp("get", run.checksum_id, "nope.txt", cwd=d, expect=NOT_FOUND)
    check("file not found" in r.err.decode() and "HTTP 404" in r.err.decode(), f"{r}")
    check(os.listdir(d) == [], f"left in the directory: {os.listdir(d)}")
    r = acp("get", run.checksum_id, "checksum.json", "-o", os.path.join(d, "no", "x.json"),
            expect=ERROR)
    check("cannot create" in r.err.decode(), f"{r}")


@case("a 50 MiB result file downloads with get, streamed to disk; its SHA-256 matches; no "
      "progress output when stderr is not a terminal")
def t_big_download():
    # seq's output cut at 50 MiB: deterministic, and not all one byte.
    config = cfg(executor="command", program="sh",
                 args=["-c", f"seq 1 10000000 | head -c {BIG}"])
    doc = submit_json(config)
    check(wait_end(doc["id"])["status"] == "complete", f"the 50 MiB job: {job(doc['id'])}")
    d = tempfile.mkdtemp(dir=run.work)
    r = acp("get", doc["id"], "stdout.txt", "-o", os.path.join(d, "big.txt"))
    check(r.err == b"" and r.out == b"", f"output without a terminal: {r}")
    expected = hashlib.sha256()
    produced = 0
    for i in range(1, 10000001):
        line = f"{i}\n".encode()
        take = min(len(line), BIG - produced)
        expected.update(line[:take])
        produced += take
        if produced == BIG:
            break
    got = hashlib.sha256()
    size = 0
    with open(os.path.join(d, "big.txt"), "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            got.update(chunk)
            size += len(chunk)
    check(size == BIG, f"{size} bytes, expected {BIG}")
    check(got.hexdigest() == expected.hexdigest(), "the SHA-256 differs")
    check(temp_leftovers(d) == [], f"temporary files left: {os.listdir(d)}")
    os.unlink(os.path.join(d, "big.txt"))
    run.big_id = doc["id"]


@case("on a terminal, get draws a progress bar on stderr")
def t_download_bar():
    d = tempfile.mkdtemp(dir=run.work)
    rc, shown = run_in_pty(["get", run.big_id, "stdout.txt", "-o", os.path.join(d, "b")])
    check(rc == OK, f"exit {rc}: {shown[-300:]!r}")
    check("[" in shown and "100%" in shown and "50.0 MiB" in shown, f"no bar: {shown[-300:]!r}")
    check(os.path.getsize(os.path.join(d, "b")) == BIG, "size")
    os.unlink(os.path.join(d, "b"))


@case("get interrupted (SIGINT) in the middle of a download leaves no file, not even a "
      "partial one under a temporary name")
def t_get_interrupted():
    d = tempfile.mkdtemp(dir=run.work)
    target = os.path.join(d, "big.txt")
    e = dict(os.environ, ACP_SERVER=f"http://127.0.0.1:{run.a.port}")
    proc = subprocess.Popen([run.acp, "get", run.big_id, "stdout.txt", "-o", target], env=e,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + JOB_TIMEOUT
    got = 0
    # The signal goes once the temporary file holds some of the download.
    while proc.poll() is None and got == 0:
        check(time.monotonic() < deadline, "no temporary file appeared")
        for name in temp_leftovers(d):
            try:
                got = os.path.getsize(os.path.join(d, name))
            except OSError:
                pass
        time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=JOB_TIMEOUT)[1]
    if proc.returncode == 0:  # it finished first: then the whole file is there
        check(os.path.getsize(target) == BIG, "a finished download of another size")
        print(f"# the download finished before SIGINT ({got} bytes seen)")
    else:
        check(proc.returncode == -signal.SIGINT, f"exit {proc.returncode}: {err!r}")
        check(os.listdir(d) == [], f"left after SIGINT at {got} bytes: {os.listdir(d)}")
        check(b"interrupted" in err, f"stderr: {err!r}")


@case("list: an aligned table, --json the merged array; --status, --queue and --limit; "
      "--limit beyond a page follows next_cursor")
def t_list():
    # 130 delayed jobs: more than one page of the client's (100), none runs.
    ids = []
    for i in range(130):
        config = cfg(executor="checksum", text=f"page {i}")
        r = run.a.call("POST", "/jobs", {"queue": run.queue, "config": config,
                                         "delay_seconds": 3600})
        check(r.status == 202, f"POST: {r}")
        ids.append(r.json()["id"])
        run.submitted.add(ids[-1])
    run.page_ids = ids
    jobs = acp("list", "--json", "--queue", run.queue, "--status", "queued",
               "--limit", "1000").json()
    listed = [j["id"] for j in jobs]
    check(set(ids) <= set(listed) and len(listed) == len(set(listed)),
          f"{len(listed)} listed, {len(set(ids) - set(listed))} missing")
    check(all(j["status"] == "queued" and j["queue"] == run.queue for j in jobs), "filters")
    jobs = acp("list", "--json", "--queue", run.queue, "--limit", "120").json()
    check(len(jobs) == 120, f"--limit 120: {len(jobs)}")
    jobs = acp("list", "--json", "--queue", run.queue, "--status", "complete,failed").json()
    check(jobs and all(j["status"] in ("complete", "failed") for j in jobs), f"{jobs}")
    r = acp("list", "--queue", run.queue, "--limit", "3")
    lines = r.text.splitlines()
    check(len(lines) == 4 and lines[0].split()[:3] == ["ID", "STATUS", "QUEUE"], f"{r}")
    check(all(len(line) > lines[0].index("QUEUE") and
              line[lines[0].index("QUEUE"):].startswith(run.queue) for line in lines[1:]),
          f"columns not aligned: {r}")
    r = acp("list", "--status", "bogus", expect=USAGE)
    check("status" in r.err.decode(), f"bad status: {r}")
    r = acp("list", "--queue", f"none-{run.tag}")
    check(r.text.strip() == "no jobs", f"empty list: {r}")


@case("cancel: a queued job is cancelled (exit 0), again it conflicts (exit 8); wait on it "
      "exits 4")
def t_cancel():
    r = acp("cancel", run.page_ids[0])
    check(f"{run.page_ids[0]}: cancelled" in r.text, f"{r}")
    doc = acp("cancel", run.page_ids[1], "--json").json()
    check(doc["status"] == "cancelled", f"--json: {doc}")
    r = acp("cancel", run.page_ids[0], expect=CONFLICT)
    check("HTTP 409" in r.err.decode() and "cancelled" in r.err.decode(), f"{r}")
    r = acp("wait", run.page_ids[0], expect=FAILED)
    check(f"{run.page_ids[0]} cancelled" in r.text, f"{r}")


@case("wait --timeout on a running job exits 7; status shows its progress (a bar on a "
      "terminal, none otherwise); expire while it runs conflicts (exit 8); cancelling it shows "
      "the request")
def t_wait_timeout():
    doc = submit_json(cfg(executor="sleep", seconds=60))
    wait_until(doc["id"], lambda d: d["status"] == "in-progress" and d.get("progress"),
               "never reported progress")
    r = acp("wait", doc["id"], "--timeout", "1", expect=TIMEOUT)
    check("still running after 1 s" in r.err.decode(), f"{r}")
    r = acp("status", doc["id"])
    check("progress" in r.text and " of 60" in r.text and "[" not in r.text, f"{r}")
    rc, shown = run_in_pty(["status", doc["id"]])
    check(rc == OK and ("[#" in shown or "[-" in shown), f"no bar on a terminal: {shown!r}")
    r = acp("expire", doc["id"], expect=CONFLICT)
    check("job is running" in r.err.decode(), f"{r}")
    r = acp("delete", doc["id"], expect=CONFLICT)
    r = acp("cancel", doc["id"])
    check("cancel requested" in r.text, f"{r}")
    r = acp("wait", doc["id"], "--json", expect=FAILED)
    check(r.json()[0]["status"] == "cancelled", f"{r}")


@case("submit --wait of a job that fails exits 4 with its message; wait on several jobs "
      "--json gives one array")
def t_job_failed():
    config = cfg(executor="command", program="sh", args=["-c", "echo oops >&2; exit 3"])
    r = acp("submit", run.queue, "--config", compact(config), "--max-attempts", "1", "--wait",
            expect=FAILED)
    run.submitted.add(derived_id(config))
    check("failed: 'sh' exited with status 3" in r.text, f"{r}")
    r = acp("--json", "submit", run.queue, "--config", compact(config), "--max-attempts", "1",
            "--wait", expect=FAILED)
    check(r.json()["status"] == "failed", f"submit --wait --json: {r}")
    r = acp("wait", run.checksum_id, derived_id(config), "--json", expect=FAILED)
    docs = r.json()
    check([d["id"] for d in docs] == [run.checksum_id, derived_id(config)] and
          [d["status"] for d in docs] == ["complete", "failed"], f"{docs}")
    r = acp("wait", run.checksum_id, "--json")
    check(r.json()[0]["status"] == "complete", f"{r}")


@case("not found exits 3 (status, files, logs, cancel, delete); a malformed id exits 2 naming "
      "the field")
def t_not_found():
    missing = secrets.token_hex(16)
    for args in (("status", missing), ("files", missing), ("logs", missing),
                 ("cancel", missing), ("delete", missing), ("expire", missing),
                 ("wait", missing)):
        r = acp(*args, expect=NOT_FOUND)
        check("not found" in r.err.decode() and "HTTP 404" in r.err.decode(), f"{r}")
    r = acp("status", "xyz", expect=USAGE)
    check("field id" in r.err.decode() and "HTTP 400" in r.err.decode(), f"{r}")
    r = acp("submit", f"nosuchqueue-{run.tag}", "--config", '{"executor":"sleep","seconds":0}',
            expect=USAGE)
    check("field queue" in r.err.decode(), f"{r}")


@case("a closed port exits 5 (--server and ACP_SERVER); TLS: --cacert verifies a private CA "
      "(the stack's S3 TLS endpoint), without it the TLS failure exits 5")
def t_unreachable():
    port = free_port()
    r = acp("--server", f"http://127.0.0.1:{port}", "health", expect=UNREACHABLE)
    check(f"127.0.0.1:{port}" in r.err.decode(), f"{r}")
    r = acp("status", run.checksum_id, env={"ACP_SERVER": f"http://127.0.0.1:{port}"},
            expect=UNREACHABLE)
    r = acp("logs", run.checksum_id, "-f", server=run.a,
            env={"ACP_SERVER": f"http://127.0.0.1:{port}"}, expect=UNREACHABLE)
    check(f"127.0.0.1:{port}" in r.err.decode(), f"{r}")
    r = acp("--server", "ftp://127.0.0.1", "health", expect=USAGE)
    tls_port, ca = os.environ.get("ACP_TEST_S3_TLS_PORT"), os.environ.get("ACP_TEST_S3_CA_FILE")
    check(tls_port and ca, "the stack gives no ACP_TEST_S3_TLS_PORT / ACP_TEST_S3_CA_FILE")
    url = f"https://127.0.0.1:{tls_port}"
    r = acp("--server", url, "health", expect=UNREACHABLE)
    check("certificate" in r.err.decode().lower() or "ssl" in r.err.decode().lower(), f"{r}")
    # S3 is no acp server: any HTTP answer shows that TLS was verified.
    r = acp("--server", url, "--cacert", ca, "health", expect=None)
    check(r.rc not in (OK, UNREACHABLE) and "HTTP" in r.err.decode(), f"with --cacert: {r}")


@case("expire a complete job (its files go), delete it (exit 0, --json document), then it is "
      "not found")
def t_expire_delete():
    config = cfg(executor="checksum", text="expire me")
    doc = submit_json(config)
    wait_end(doc["id"])
    r = acp("expire", doc["id"])
    check(f"{doc['id']}: expired" in r.text, f"{r}")
    check(acp("files", doc["id"], "--json").json()["files"] == [], "files after expiry")
    r = acp("delete", doc["id"], "--json")
    check(r.json() == {"id": doc["id"], "deleted": True}, f"{r}")
    acp("status", doc["id"], expect=NOT_FOUND)
    r = acp("delete", run.checksum_id)
    check(f"{run.checksum_id}: deleted" in r.text, f"{r}")


@case("logs: an ended job's log as log.txt has it; metrics: the Prometheus text")
def t_logs_metrics():
    doc = submit_json(lines_config(5, 0))
    wait_end(doc["id"])
    r = acp("logs", doc["id"])
    check(r.out == download(doc["id"], "log.txt") and r.out.startswith(b"line 1\n"), f"{r}")
    r = acp("logs", doc["id"], "-f")
    check(r.out == download(doc["id"], "log.txt"), f"-f of an ended job: {r}")
    r = acp("metrics")
    check("# TYPE acp_http_requests_total counter" in r.text, f"{r.text[:300]}")
    r = acp("metrics", "--json")
    check("acp_http_requests_total" in r.text, "metrics --json")


@case("logs -f through B follows a job running on A line by line until it ends; the text "
      "equals log.txt")
def t_follow_other_server():
    doc = submit_json(lines_config(20, 0.1))
    r = acp("logs", doc["id"], "-f", server=run.b)
    check(job(doc["id"])["status"] == "complete", "logs -f returned before the job ended")
    kept = download(doc["id"], "log.txt")
    check(r.out == kept, f"followed {r.out!r}, log.txt {kept!r}")
    check(r.out.splitlines() == [f"line {i}".encode() for i in range(1, 21)], f"{r.out!r}")


@case("logs -f goes on where it was after B restarts under it: nothing lost or repeated")
def t_follow_reconnect():
    config = lines_config(40, 0.25)
    config["nonce"] = secrets.token_hex(4)
    doc = submit_json(config)
    e = dict(os.environ, ACP_SERVER=f"http://127.0.0.1:{run.b.port}")
    # Unbuffered: communicate() reads the descriptor, not readline()'s buffer.
    proc = subprocess.Popen([run.acp, "logs", doc["id"], "-f"], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0)
    try:
        first = proc.stdout.readline()
        check(first == b"line 1\n", f"first line {first!r}")
        time.sleep(1)
        status = run.b.stop()
        check(status == 0, f"B exited {status}")
        time.sleep(1)
        run.b.start()
        out, err = proc.communicate(timeout=JOB_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    check(proc.returncode == 0, f"exit {proc.returncode}: {err!r}")
    kept = download(doc["id"], "log.txt")
    check(first + out == kept, f"followed {(first + out)!r}\nlog.txt {kept!r}\nstderr {err!r}")
    check(job(doc["id"])["status"] == "complete", "ended before the job")


@case("--input NAME=PATH sends multipart/form-data (part job + one part input per file); the "
      "job sees the file under NAME (needs the server's inputs, h-inputs' part of issue 17)")
def t_input():
    path = os.path.join(run.work, "local-name.txt")
    data = b"input text\nsecond line\n"
    with open(path, "wb") as f:
        f.write(data)
    config = cfg(executor="command", program="sh", args=["-c", "cat data.txt"])
    r = acp("--json", "submit", run.queue, "--config", compact(config),
            "--input", f"data.txt={path}", "--wait", expect=None)
    check(r.rc == OK, f"submit with --input: {r}")
    doc = r.json()
    run.submitted.add(doc["id"])
    files = {f["name"]: f["size"] for f in acp("files", doc["id"], "--json").json()["files"]}
    check(files.get("data.txt") == len(data), f"files: {files}")
    check(download(doc["id"], "stdout.txt") == data, "the job read other bytes")
    r = acp("submit", run.queue, "--config", compact(config), "--input",
            f"x={run.work}/missing", expect=ERROR)
    check("missing" in r.err.decode(), f"{r}")


class Capture(http.server.BaseHTTPRequestHandler):
    """Keeps the request it gets and answers like POST /jobs would."""
    seen = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Capture.seen.append((self.path, dict(self.headers), body))
        answer = json.dumps({"id": "0" * 32, "status": "queued"}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@case("--input's request, as a server sees it: multipart/form-data with a part job (the JSON "
      "body) and a part input per file, filename NAME, the file's bytes; without --input plain "
      "JSON")
def t_input_wire():
    srv = http.server.HTTPServer(("127.0.0.1", 0), Capture)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        one, two = os.path.join(run.work, "one.bin"), os.path.join(run.work, "two.txt")
        with open(one, "wb") as f:
            f.write(bytes(range(256)) * 4)
        with open(two, "wb") as f:
            f.write(b"second\n")
        config = {"executor": "command", "program": "wc"}
        server = f"http://127.0.0.1:{srv.server_port}"
        acp("--server", server, "submit", "q", "--config", compact(config), "--priority", "60",
            "--input", f"a.bin={one}", "--input", f"b.txt={two}")
        acp("--server", server, "submit", "q", "--config", compact(config))
    finally:
        srv.shutdown()
        srv.server_close()
    check(len(Capture.seen) == 2, f"requests: {Capture.seen}")
    path, headers, body = Capture.seen[0]
    check(path == "/jobs", f"path {path}")
    ctype = headers.get("Content-Type", "")
    check(ctype.startswith("multipart/form-data; boundary="), f"Content-Type {ctype}")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + body)
    parts = [(p.get_param("name", header="content-disposition"), p.get_filename(),
              p.get_content_type(), p.get_payload(decode=True)) for p in message.iter_parts()]
    check([(p[0], p[1]) for p in parts] == [("job", None), ("input", "a.bin"), ("input", "b.txt")],
          f"parts: {[(p[0], p[1], p[2]) for p in parts]}")
    check(parts[0][2] == "application/json" and json.loads(parts[0][3]) ==
          {"queue": "q", "config": config, "priority": 60}, f"job part: {parts[0]}")
    check(parts[1][3] == bytes(range(256)) * 4 and parts[2][3] == b"second\n", "file bytes")
    path, headers, body = Capture.seen[1]
    check(headers.get("Content-Type") == "application/json" and
          json.loads(body) == {"queue": "q", "config": config}, f"plain: {headers} {body!r}")


@case("a server with tokens: no token exits 6 (401), a read token reads but cannot cancel (6, "
      "403), a write token can; --token-file and ACP_TOKEN (needs h-auth's server part)")
def t_auth():
    write_token, read_token = secrets.token_hex(20), secrets.token_hex(20)
    run.c = Server(run.server, run.work, "server-c", dict(
        run.base, queues=[{"id": run.queue_c, "workers": 1}], workspace_root=f"{run.work}/ws-c",
        auth={"tokens": [
            {"name": "ops", "role": "write", "token": write_token},
            {"name": "viewer", "role": "read",
             "sha256": hashlib.sha256(read_token.encode()).hexdigest()}]}))
    run.c.start()  # /health stays open with tokens
    r = acp("list", server=run.c, expect=AUTH)
    check("HTTP 401" in r.err.decode() and "--token-file" in r.err.decode(), f"{r}")
    r = acp("list", server=run.c, env={"ACP_TOKEN": "wrong" + write_token}, expect=AUTH)
    read_file = os.path.join(run.work, "read.token")
    with open(read_file, "w") as f:
        f.write(read_token + "\n")
    os.chmod(read_file, 0o600)
    acp("--token-file", read_file, "list", "--queue", run.queue_c, server=run.c)
    config = cfg(executor="sleep", seconds=30)
    r = acp("--token-file", read_file, "submit", run.queue_c, "--config", compact(config),
            server=run.c, expect=AUTH)
    check("HTTP 403" in r.err.decode(), f"{r}")
    doc = acp("--json", "submit", run.queue_c, "--config", compact(config), server=run.c,
              env={"ACP_TOKEN": write_token}).json()
    run.submitted.add(doc["id"])
    r = acp("cancel", doc["id"], "--token-file", read_file, server=run.c, expect=AUTH)
    check("write token" in r.err.decode(), f"{r}")
    acp("cancel", doc["id"], server=run.c, env={"ACP_TOKEN": write_token})
    health = acp("health", "--json", server=run.c).json()
    check(all("address" not in s for s in health["services"]), f"open /health: {health}")
    log = open(run.c.log_path, errors="replace").read()
    check(write_token not in log and read_token not in log, "a token in server-c's log")


def make_tls(directory):
    """A private CA and a certificate for 127.0.0.1 that it signed (openssl)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    ca_key, ca = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    key, csr = os.path.join(directory, "server.key"), os.path.join(directory, "server.csr")
    cert, ext = os.path.join(directory, "server.pem"), os.path.join(directory, "ext.cnf")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
            "-days", "2", "-subj", "/CN=acp test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=127.0.0.1")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext)
    os.chmod(key, 0o600)
    return ca, cert, key


@case("an HTTPS server (listen.tls): --cacert with its private CA works, without it the "
      "certificate is refused (exit 5) (needs h-auth's server part)")
def t_https():
    ca, cert, key = make_tls(tempfile.mkdtemp(dir=run.work))
    run.d = Server(run.server, run.work, "server-d", dict(
        run.base, listen=dict(run.base["listen"], tls={"cert_file": cert, "key_file": key}),
        queues=[{"id": run.queue_c, "workers": 1}], workspace_root=f"{run.work}/ws-d"))
    run.d.launch()
    line = run.d.proc.stdout.readline().decode()
    check(line.startswith("listening on https://127.0.0.1:"),
          f"server-d: {line!r}\n{run.d.log_tail()}")
    url = "https://" + line.strip().split("https://", 1)[1]
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        r = acp("--server", url, "--cacert", ca, "health", expect=None)
        if r.rc == OK:
            break
        check(time.monotonic() < deadline, f"health over HTTPS: {r}")
        time.sleep(0.2)
    doc = acp("--server", url, "--cacert", ca, "--json", "list", "--limit", "1").json()
    check(isinstance(doc, list), f"list over HTTPS: {doc}")
    r = acp("--server", url, "health", expect=UNREACHABLE)
    check("certificate" in r.err.decode().lower(), f"without --cacert: {r}")
    r = acp("--server", url.replace("https://", "http://"), "health", expect=None)
    check(r.rc != OK, f"plain HTTP to the HTTPS port: {r}")


@case("a token given oddly is refused before anything is sent: a token file that is missing "
      "or holds a space, ACP_TOKEN with a newline (exit 2)")
def t_token_checks():
    r = acp("--token-file", os.path.join(run.work, "absent"), "health", expect=USAGE)
    check("absent" in r.err.decode(), f"{r}")
    bad = os.path.join(run.work, "bad.token")
    with open(bad, "w") as f:
        f.write("has a space\n")
    os.chmod(bad, 0o600)
    acp("--token-file", bad, "health", expect=USAGE)
    acp("health", env={"ACP_TOKEN": "abc\r\nX-Evil: 1"}, expect=USAGE)


@case("bash completion completes commands, options and --status values")
def t_completion():
    script = f"""
source /usr/share/bash-completion/bash_completion
source {run.completion}
complete_words() {{
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}
    COMPREPLY=(); _acp acp "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
    echo "${{COMPREPLY[*]}}"
}}
complete_words acp li
complete_words acp list --st
complete_words acp list --status fa
complete_words acp list --status complete,ca
complete_words acp --json su
complete_words acp submit q --w
complete_words acp logs abc -
"""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    check(out.returncode == 0 and len(lines) == 7, f"bash: {out}")
    check(lines[0] == "list", f"commands: {lines}")
    check(lines[1] == "--status", f"options: {lines}")
    check(lines[2] == "failed", f"status values: {lines}")
    check(lines[3] == "complete,cancelled", f"a second status: {lines}")
    check(lines[4] == "submit", f"after a global option: {lines}")
    check(lines[5] == "--wait", f"submit options: {lines}")
    check("-f" in lines[6].split() and "--json" in lines[6].split(), f"logs options: {lines}")


@case("clean-up: every job of the run is deleted through acp; the servers stop cleanly")
def t_cleanup():
    for job_id in sorted(run.submitted):
        server = run.a
        r = server.call("POST", f"/jobs/{job_id}/cancel")  # 409 for one that ended
        if r.status == 404:
            continue
        wait_end(job_id)
        acp("delete", job_id, expect=None)
        check(run.a.call("GET", f"/jobs/{job_id}").status == 404, f"{job_id} is left")
    run.cleaned = True
    for server in (run.a, run.b):
        status = server.stop()
        check(status == 0, f"{server.name} exited {status}:\n{server.log_tail()}")


# ---- driver ---------------------------------------------------------------

def main():
    stack_settings_present()
    run.acp, run.server, queue_delete, run.completion = (os.path.abspath(a) for a in sys.argv[1:5])
    run.tag = secrets.token_hex(4)
    run.queue, run.queue_b, run.queue_c = (f"cli-{run.tag}", f"cli-{run.tag}-b",
                                           f"cli-{run.tag}-c")
    run.work = tempfile.mkdtemp(prefix=f"acp-cli-{run.tag}-")
    run.submitted, run.cleaned, run.c, run.d = set(), False, None, None
    programs = {"sh": {"path": os.path.realpath(shutil.which("sh")), "options": ["-c"]}}
    run.base = {
        "listen": {"address": "127.0.0.1", "port": 0, "request_timeout": 5,
                   "max_connections_per_client": 16},
        "s3": {"root_path": f"cli-test-{run.tag}"},
        "layout": os.environ.get("ACP_TEST_LAYOUT", "native"),
        "shutdown_timeout": 5,
        "log_level": "info",
        "executors": {"sleep": {"max_seconds": 600},
                      "command": {"programs": programs, "timeout_seconds": 120}},
    }
    run.a = Server(run.server, run.work, "server-a", dict(
        run.base, queues=[{"id": run.queue, "workers": 3}], workspace_root=f"{run.work}/ws-a"))
    # B on a fixed port: it is restarted under a follower, which comes back to it.
    run.b = Server(run.server, run.work, "server-b", dict(
        run.base, listen=dict(run.base["listen"], port=free_port()),
        queues=[{"id": run.queue_b, "workers": 1}], workspace_root=f"{run.work}/ws-b"))
    print(f"# run {run.tag}: queue {run.queue}, files in {run.work}")

    failed = run_cases(cases)
    return finish(run, failed, [run.a, run.b, run.c, run.d], [run.a, run.b], queue_delete, [f"{run.queue}_jobs", f"{run.queue_b}_jobs", f"{run.queue_c}_jobs"])


if __name__ == "__main__":
    sys.exit(main())
