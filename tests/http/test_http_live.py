#!/usr/bin/env python3
"""Seeing a job run through the example server, against the local stack.

    test_http_live.py SERVER_BINARY AMQP_QUEUE_DELETE_BINARY

Two server processes on the same database and S3 root: A runs the jobs
(queue A), B has a queue of its own and only reads. A job on A is followed
from B with GET /jobs/{id}/log?follow=1, as chunked text and as Server-Sent
Events; the progress of a sleep job shows on B; GET /metrics passes
`promtool check metrics` and its counters move; bad query values answer
400. Everything the run creates is deleted at the end. Prints TAP.

The timing bound on a followed line (LINE_BOUND) is what issue 16 asks;
under ACP_HTTP_SERVER_WRAPPER (valgrind) it is 4 times that, as meson's
--timeout-multiplier is for the other tests. Every other wait is a hang
guard.
"""
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_http import (  # noqa: E402
    Failure, Server, case_registry, check, check_no_sanitizer_report, compact, derived_id,
    finish, run_cases, stack_settings_present)

WRAPPED = bool(os.environ.get("ACP_HTTP_SERVER_WRAPPER", "").strip())
LINE_BOUND = 0.5 * (4 if WRAPPED else 1)
JOB_TIMEOUT = 180  # hang guard
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# A sample: name, labels (values may hold braces: route="/jobs/{id}"), value.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})? (\S+)$')


class Run:
    pass


run = Run()
cases, case = case_registry()


def cfg(**members):
    members["run"] = run.tag
    return members


def submit(config, server=None):
    server = server or run.a
    r = server.call("POST", "/jobs", {"queue": run.queue, "config": config})
    check(r.status in (200, 202), f"POST /jobs {compact(config)}: {r}")
    doc = r.json()
    run.submitted.add(doc["id"])
    return doc["id"]


def job(job_id, server=None):
    r = (server or run.a).call("GET", f"/jobs/{job_id}")
    check(r.status == 200, f"GET /jobs/{job_id}: {r}")
    return r.json()


def wait_end(job_id, server=None):
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        doc = job(job_id, server)
        if doc["status"] in ("complete", "failed", "cancelled"):
            return doc
        check(time.monotonic() < deadline, f"job {job_id} still {doc['status']}")
        time.sleep(0.05)


def wait_running(job_id, server=None):
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        doc = job(job_id, server)
        if doc["status"] != "queued":
            return doc
        check(time.monotonic() < deadline, f"job {job_id} still queued")
        time.sleep(0.05)


def download(job_id, name, server=None):
    r = (server or run.a).call("GET", f"/jobs/{job_id}/files/{name}")
    check(r.status == 200, f"GET /jobs/{job_id}/files/{name}: {r}")
    return r.body


def open_stream(server, path, headers=None):
    """A request whose answer is read as it comes."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=JOB_TIMEOUT)
    conn.request("GET", path, headers=headers or {})
    return conn, conn.getresponse()


def check_streaming(resp):
    """200, or the failure with the answer's body (read only then: a check's
    message is built before the check)."""
    if resp.status != 200:
        raise Failure(f"follow: {resp.status} {resp.read()[:300]!r}")


def timed_lines(resp):
    """(arrival time, line) for each whole line of a chunked text answer, and
    the bytes; until the answer ends."""
    lines, data, pending = [], b"", b""
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            return lines, data, pending
        now = time.time()
        data += chunk
        pending += chunk
        *whole, pending = pending.split(b"\n")
        lines += [(now, line.decode()) for line in whole]


def timed_events(resp):
    """The Server-Sent Events of an answer as dicts (event, id, data lines,
    arrival time), until it ends."""
    events, pending = [], b""
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            check(pending == b"", f"the stream ended inside an event: {pending[:200]!r}")
            return events
        now = time.time()
        pending += chunk
        while b"\n\n" in pending:
            block, pending = pending.split(b"\n\n", 1)
            event = {"event": "message", "id": None, "data": [], "at": now, "comment": False}
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    event["comment"] = True
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    event["data"].append(value)
                elif field in ("id", "event"):
                    event[field] = value
                else:
                    raise Failure(f"unexpected field in event: {block!r}")
            if not event["comment"]:
                events.append(event)


def script_config(lines, every_err):
    """A command job printing @lines lines to stdout 100 ms apart, each with
    the time it was written, and every @every_err-th one also to stderr."""
    script = (f"i=1; while [ $i -le {lines} ]; do echo \"line $i $(date +%s.%N)\"; "
              f"if [ $((i % {every_err})) -eq 0 ]; then echo \"err $i $(date +%s.%N)\" >&2; fi; "
              "sleep 0.1; i=$((i+1)); done")
    return cfg(executor="command", program="sh", args=["-c", script])


def check_lines_in_time(lines, count, every_err):
    """Every line arrived within LINE_BOUND of its writing; each stream's in
    order and complete."""
    outs, errs = [], []
    for arrived, line in lines:
        kind, number, written = line.split(" ")
        late = arrived - float(written)
        check(late <= LINE_BOUND, f"'{line}' arrived {late:.3f} s after it was written "
                                  f"(bound {LINE_BOUND} s)")
        (outs if kind == "line" else errs).append(int(number))
    check(outs == list(range(1, count + 1)), f"stdout lines: {outs}")
    check(errs == list(range(every_err, count + 1, every_err)), f"stderr lines: {errs}")


def metrics(server):
    r = server.call("GET", "/metrics")
    check(r.status == 200, f"GET /metrics: {r}")
    samples = {}
    for line in r.body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        check(m, f"not a sample line: {line!r}")
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return r, samples


# ---- the cases ------------------------------------------------------------

@case("two servers on one database start: A runs the jobs, B only reads")
def t_start():
    run.a.start()
    run.b.start()


@case("a job on A printing a line every 100 ms, followed from B (chunked): every line in order, "
      f"each within {LINE_BOUND} s of being written; the stream ends with the job; it equals "
      "log.txt, and stdout.txt/stderr.txt are kept")
def t_follow_chunked():
    job_id = submit(script_config(30, 10))
    conn, resp = open_stream(run.b, f"/jobs/{job_id}/log?follow=1")
    try:
        check_streaming(resp)
        check(resp.getheader("Transfer-Encoding") == "chunked", f"headers: {resp.getheaders()}")
        check(resp.getheader("Content-Type", "").startswith("text/plain"),
              f"Content-Type: {resp.getheader('Content-Type')}")
        lines, data, rest = timed_lines(resp)
    finally:
        conn.close()
    ended = job(job_id, run.b)
    check(ended["status"] == "complete", f"the stream ended while the job is {ended}")
    check(rest == b"", f"a partial last line: {rest!r}")
    check_lines_in_time(lines, 30, 10)
    kept = download(job_id, "log.txt", run.b)
    check(kept == data, f"log.txt ({len(kept)} bytes) differs from the stream ({len(data)})")
    out = download(job_id, "stdout.txt").decode().splitlines()
    err = download(job_id, "stderr.txt").decode().splitlines()
    check([x.split(" ")[1] for x in out] == [str(i) for i in range(1, 31)], f"stdout.txt: {out}")
    check([x.split(" ")[1] for x in err] == ["10", "20", "30"], f"stderr.txt: {err}")
    run.logged_id, run.logged = job_id, kept


@case("the ended job's log reads from an offset with X-Log-Next and X-Log-Ended; HEAD has the "
      "headers")
def t_read_offset():
    whole = run.b.call("GET", f"/jobs/{run.logged_id}/log")
    check(whole.status == 200 and whole.body == run.logged, f"GET log: {whole}")
    check(whole.headers.get("x-log-next") == str(len(run.logged)) and
          whole.headers.get("x-log-ended") == "true" and
          whole.headers.get("x-log-dropped") == "0", f"headers: {whole.headers}")
    offset = run.logged.index(b"\n", len(run.logged) // 2) + 1
    part = run.b.call("GET", f"/jobs/{run.logged_id}/log?offset={offset}")
    check(part.status == 200 and part.body == run.logged[offset:], f"from {offset}: {part}")
    check(part.headers.get("x-log-next") == str(len(run.logged)), f"headers: {part.headers}")
    head = run.b.call("HEAD", f"/jobs/{run.logged_id}/log")
    check(head.status == 200 and head.body == b"" and
          head.headers.get("x-log-next") == str(len(run.logged)), f"HEAD: {head.headers}")
    # Following an ended job gives the rest and ends.
    conn, resp = open_stream(run.b, f"/jobs/{run.logged_id}/log?follow=1&offset={offset}")
    try:
        body = resp.read()
    finally:
        conn.close()
    check(resp.status == 200 and body == run.logged[offset:], f"follow of an ended job: {body!r}")


@case("the same followed as Server-Sent Events: id is the offset after each event, an end event "
      "closes the stream, Last-Event-ID resumes exactly")
def t_follow_sse():
    job_id = submit(script_config(20, 5))
    conn, resp = open_stream(run.b, f"/jobs/{job_id}/log?follow=1",
                             {"Accept": "text/event-stream"})
    try:
        check_streaming(resp)
        check(resp.getheader("Content-Type") == "text/event-stream",
              f"Content-Type: {resp.getheader('Content-Type')}")
        events = timed_events(resp)
    finally:
        conn.close()
    check(job(job_id, run.b)["status"] == "complete", "the stream ended before the job")
    check(events and events[-1]["event"] == "end", f"no end event: {events[-3:]}")
    body, lines, last = b"", [], 0
    for e in events[:-1]:
        check(e["event"] == "message" and e["id"] is not None, f"event: {e}")
        check(int(e["id"]) > last, f"ids do not grow: {e['id']} after {last}")
        last = int(e["id"])
        body += "".join(d + "\n" for d in e["data"]).encode()
        lines += [(e["at"], d) for d in e["data"]]
    check_lines_in_time(lines, 20, 5)
    kept = download(job_id, "log.txt", run.b)
    check(body == kept, f"the events' text differs from log.txt:\n{body!r}\n{kept!r}")
    check(last == len(kept), f"last id {last}, log of {len(kept)} bytes")
    check(json.loads(events[-1]["data"][0]) == {"next": len(kept)}, f"end: {events[-1]}")
    # An EventSource that lost the stream reconnects naming the last id.
    middle = events[len(events) // 2 - 1]["id"]
    conn, resp = open_stream(run.b, f"/jobs/{job_id}/log?follow=1",
                             {"Accept": "text/event-stream", "Last-Event-ID": middle})
    try:
        resumed = timed_events(resp)
    finally:
        conn.close()
    text = "".join(d + "\n" for e in resumed[:-1] for d in e["data"]).encode()
    check(text == kept[int(middle):], f"resumed at {middle}: {text!r}")
    check(resumed[-1]["event"] == "end", f"resumed: {resumed[-1]}")


@case("a follower waiting longer than B's connection_timeout (2 s) for the next line is not cut")
def t_follow_quiet():
    job_id = submit(cfg(executor="command", program="sh",
                        args=["-c", "echo before; sleep 5; echo after"]))
    conn, resp = open_stream(run.b, f"/jobs/{job_id}/log?follow=1")
    try:
        body = resp.read()
    finally:
        conn.close()
    check(body == b"before\nafter\n", f"followed: {body!r}")
    check(job(job_id, run.b)["status"] == "complete", "ended before the job")


@case("a job that writes no log reads as empty and ended; following it ends at once")
def t_no_log():
    job_id = submit(cfg(executor="checksum", text="no log"))
    check(wait_end(job_id)["status"] == "complete", "checksum job")
    r = run.b.call("GET", f"/jobs/{job_id}/log")
    check(r.status == 200 and r.body == b"" and r.headers.get("x-log-next") == "0" and
          r.headers.get("x-log-ended") == "true", f"no log: {r} {r.headers}")
    conn, resp = open_stream(run.b, f"/jobs/{job_id}/log?follow=1")
    try:
        body = resp.read()
    finally:
        conn.close()
    check(resp.status == 200 and body == b"", f"follow: {body!r}")
    files = run.a.call("GET", f"/jobs/{job_id}/files").json()["files"]
    check([f["name"] for f in files] == ["checksum.json"], f"files: {files}")


@case("GET /jobs/{id} on B shows the progress of a sleep job on A while it runs, and its end")
def t_progress():
    job_id = submit(cfg(executor="sleep", seconds=4))
    seen, deadline = [], time.monotonic() + JOB_TIMEOUT
    while True:
        doc = job(job_id, run.b)
        if doc["status"] == "in-progress" and doc["progress"] is not None:
            seen.append(doc["progress"])
        if doc["status"] not in ("queued", "in-progress"):
            break
        check(time.monotonic() < deadline, f"still {doc['status']}")
        time.sleep(0.1)
    check(doc["status"] == "complete", f"sleep job: {doc}")
    check(seen, "no progress was visible while the job ran")
    for p in seen:
        check(set(p) == {"done", "total", "text", "updated"} and p["total"] == 4 and
              0 <= p["done"] <= 4 and p["text"] is None and ISO_UTC.match(p["updated"]),
              f"progress: {p}")
    check(any(p["done"] < 4 for p in seen), f"only the end was seen: {seen}")
    check([p["done"] for p in seen] == sorted(p["done"] for p in seen), f"went back: {seen}")
    final = doc["progress"]
    check(final and final["done"] == 4 and final["total"] == 4, f"at the end: {final}")
    other = job(run.logged_id, run.b)
    check(other["progress"] is None, f"a job that reported none: {other['progress']}")


@case("GET /jobs/{id}/log answers 400 naming a bad offset, follow, Last-Event-ID or unknown "
      "parameter, 404 for an unknown job, 405 for POST")
def t_log_errors():
    base = f"/jobs/{run.logged_id}/log"
    bad = [("?offset=-1", "offset"), ("?offset=abc", "offset"), ("?offset=", "offset"),
           ("?offset", "offset"), ("?offset=18446744073709551616", "offset"),
           ("?offset=1e3", "offset"), ("?follow=2", "follow"), ("?follow=yes", "follow"),
           ("?follow", "follow"), ("?offset=1&offset=2", "offset"), ("?tail=5", "tail")]
    for query, field in bad:
        r = run.b.call("GET", base + query)
        check(r.status == 400, f"{query}: {r}")
        doc = r.json()
        check(doc.get("field") == field and isinstance(doc.get("detail"), str),
              f"{query}: {doc}")
    r = run.b.call("GET", base + "?follow=1", headers={"Accept": "text/event-stream",
                                                       "Last-Event-ID": "x7"})
    check(r.status == 400 and r.json().get("field") == "Last-Event-ID", f"Last-Event-ID: {r}")
    unknown = secrets.token_hex(16)
    for query in ("", "?follow=1"):
        r = run.b.call("GET", f"/jobs/{unknown}/log{query}")
        check(r.status == 404, f"unknown job{query}: {r}")
    r = run.b.call("GET", "/jobs/not-an-id/log")
    check(r.status == 400 and r.json().get("field") == "id", f"bad id: {r}")
    r = run.b.call("POST", base)
    check(r.status == 405 and r.headers.get("allow") == "GET, HEAD", f"POST: {r} {r.headers}")


@case("GET /metrics: Prometheus text 0.0.4 that passes promtool check metrics, with the library's "
      "and the server's own metrics, whose counters move; routes are patterns, not paths")
def t_metrics():
    promtool = shutil.which("promtool")
    check(promtool, "promtool is not on PATH (Debian package prometheus)")
    r, before = metrics(run.a)
    check(r.headers.get("content-type") == "text/plain; version=0.0.4; charset=utf-8",
          f"Content-Type: {r.headers.get('content-type')}")
    lint = subprocess.run([promtool, "check", "metrics"], input=r.body, capture_output=True,
                          timeout=60)
    check(lint.returncode == 0, f"promtool: {lint.stdout.decode()} {lint.stderr.decode()}")
    for family in ("acp_jobs_succeeded_total", "acp_http_requests_total",
                   "acp_http_request_seconds", "acp_http_open_connections"):
        check(f"# TYPE {family} " in r.body.decode(), f"no family {family}")
    job_key = 'acp_http_requests_total{route="/jobs/{id}",status="200"}'
    succeeded = f'acp_jobs_succeeded_total{{queue="{run.queue}"}}'
    check(before.get(succeeded, 0) >= 3, f"{succeeded}: {before.get(succeeded)}")
    junk = f"/no-such-{run.tag}/x"
    check(run.a.call("GET", junk).status == 404, "unknown path")
    job_id = submit(cfg(executor="checksum", text="metrics"))
    wait_end(job_id)
    job(job_id)
    r, after = metrics(run.a)
    check(after[job_key] >= before.get(job_key, 0) + 2, f"{job_key}: {before.get(job_key)} -> "
                                                        f"{after[job_key]}")
    check(after[succeeded] == before[succeeded] + 1,
          f"{succeeded}: {before[succeeded]} -> {after[succeeded]}")
    other = 'acp_http_requests_total{route="other",status="404"}'
    check(after.get(other, 0) >= 1, f"{other}: {after.get(other)}")
    check(run.tag not in r.body.decode().replace(run.queue, ""),
          "a raw path made it into a label")
    check(after["acp_http_open_connections"] >= 1, "open connections")
    count = 'acp_http_request_seconds_count{route="/jobs/{id}"}'
    check(after[count] >= after[job_key], f"{count} {after[count]} < {after[job_key]}")
    r = run.a.call("POST", "/metrics")
    check(r.status == 405 and r.headers.get("allow") == "GET, HEAD", f"POST /metrics: {r}")


def open_connections(server):
    return metrics(server)[1]["acp_http_open_connections"]


@case("followers hold a connection each but others are still served; a follower whose client "
      "leaves is let go")
def t_followers_release():
    # Far longer than the hang guard below: only noticing the client's
    # leaving lets the followers go before the job ends (it is cancelled
    # after the next case).
    job_id = submit(cfg(executor="sleep", seconds=500))
    wait_running(job_id)
    base = open_connections(run.b)
    streams = [open_stream(run.b, f"/jobs/{job_id}/log?follow=1") for _ in range(5)]
    for _, resp in streams:
        check(resp.status == 200, f"follow: {resp.status}")
    check(open_connections(run.b) >= base + 5, "the followers are not counted")
    check(run.b.call("GET", f"/jobs/{job_id}").status == 200, "B stopped serving")
    for conn, _ in streams:
        conn.close()
    deadline = time.monotonic() + 60
    while open_connections(run.b) > base:
        check(time.monotonic() < deadline, "the followers were not let go after their clients left")
        time.sleep(0.2)
    run.long_id = job_id


@case("SIGTERM stops B cleanly while a client follows a running job: exit 0, the stream cut")
def t_stop_with_follower():
    conn, resp = open_stream(run.b, f"/jobs/{run.long_id}/log?follow=1",
                             {"Accept": "text/event-stream"})
    try:
        check(resp.status == 200, f"follow: {resp.status}")
        status = run.b.stop()
        check(status == 0, f"B exited with {status}:\n{run.b.log_tail()}")
        try:
            rest = resp.read()
            check(b"event: end" not in rest, f"the stream claims an end: {rest!r}")
        except (http.client.IncompleteRead, ConnectionError):
            pass
    finally:
        conn.close()
    run.a.call("POST", f"/jobs/{run.long_id}/cancel")


@case("clean-up: every job of the run is deleted; A stops cleanly")
def t_cleanup():
    for job_id in sorted(run.submitted):
        run.a.call("POST", f"/jobs/{job_id}/cancel")  # 409 for one that ended
        wait_end(job_id)
        d = run.a.call("DELETE", f"/jobs/{job_id}")
        check(d.status in (204, 404), f"DELETE {job_id}: {d}")
    run.cleaned = True
    status = run.a.stop()
    check(status == 0, f"A exited with {status}:\n{run.a.log_tail()}")
    for server in (run.a, run.b):
        log = open(server.log_path, errors="replace").read()
        check_no_sanitizer_report(log, f"{server.name}'s log")


# ---- driver ---------------------------------------------------------------

def main():
    stack_settings_present()
    binary, queue_delete = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    run.tag = secrets.token_hex(4)
    run.queue, run.queue_b = f"live-{run.tag}", f"live-{run.tag}-b"
    run.work = tempfile.mkdtemp(prefix=f"acp-live-{run.tag}-")
    run.submitted, run.cleaned = set(), False
    programs = {"sh": {"path": os.path.realpath(shutil.which("sh")), "options": ["-c"]}}
    base = {
        "listen": {"address": "127.0.0.1", "port": 0, "request_timeout": 5,
                   "max_connections_per_client": 12},
        "s3": {"root_path": f"live-test-{run.tag}"},
        "layout": os.environ.get("ACP_TEST_LAYOUT", "native"),
        "shutdown_timeout": 5,
        "log_level": "info",
        "executors": {"sleep": {"max_seconds": 600},
                      "command": {"programs": programs, "timeout_seconds": 60}},
    }
    run.a = Server(binary, run.work, "server-a", dict(
        base, queues=[{"id": run.queue, "workers": 3}], workspace_root=f"{run.work}/ws-a"))
    run.b = Server(binary, run.work, "server-b", dict(
        base, listen=dict(base["listen"], connection_timeout=2),
        queues=[{"id": run.queue_b, "workers": 1}], workspace_root=f"{run.work}/ws-b"))
    print(f"# run {run.tag}: queue {run.queue}, files in {run.work}")

    failed = run_cases(cases)
    return finish(run, failed, [run.a, run.b], [run.a, run.b], queue_delete, [f"{run.queue}_jobs", f"{run.queue_b}_jobs"])


if __name__ == "__main__":
    sys.exit(main())
