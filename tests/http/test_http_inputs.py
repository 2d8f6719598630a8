#!/usr/bin/env python3
"""Input files through POST /jobs (multipart/form-data), against the stack.

    test_http_inputs.py SERVER_BINARY AMQP_QUEUE_DELETE_BINARY

Server A (the default limits) takes a job with two inputs, lists and serves
them byte for byte, hands them to the command executor (`wc -c` in the
sandbox), streams a 200 MiB input without holding it in memory, answers
each malformed or refused upload with its status and field and stores
nothing, and leaves no temporary file behind, also when a client goes away
mid-upload. Server B (small limits) answers 413 naming each limit, and
removes stale upload files at start. Multipart bodies are written here by
hand. Everything the run creates is deleted at the end. Prints TAP.
"""
import hashlib
import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_http import (  # noqa: E402
    Failure, Response, Server, case_registry, check, check_no_sanitizer_report, derived_id,
    finish, run_cases, stack_settings_present)

MIB = 1024 * 1024
JOB_TIMEOUT = 180  # hang guards, not timing assertions
BIG = 200 * MIB


class Run:
    pass


run = Run()
cases, case = case_registry()


def cfg(**members):
    members["run"] = run.tag
    return members


# ---- multipart bodies -------------------------------------------------------

class Multipart:
    """A multipart/form-data body as a list of pieces: bytes, or (generator
    function, length) for a part's contents that is made as it is sent."""

    def __init__(self, boundary=None):
        self.boundary = boundary or "acp-" + secrets.token_hex(12)
        self.pieces = []

    def part(self, name, data=b"", filename=None, content_type=None, headers=()):
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        head += "".join(f"{h}\r\n" for h in headers) + "\r\n"
        self.pieces += [head.encode(), data.encode() if isinstance(data, str) else data, b"\r\n"]
        return self

    def job(self, body):
        return self.part("job", json.dumps(body), content_type="application/json")

    def input(self, name, data):
        return self.part("input", data, filename=name, content_type="application/octet-stream")

    def close(self):
        self.pieces.append(f"--{self.boundary}--\r\n".encode())
        return self

    def length(self):
        return sum(p[1] if isinstance(p, tuple) else len(p) for p in self.pieces)

    def chunks(self):
        for p in self.pieces:
            if isinstance(p, tuple):
                yield from p[0]()
            else:
                yield p

    def content_type(self):
        return f"multipart/form-data; boundary={self.boundary}"


def post(server, body, content_type=None, length=None):
    """POST /jobs with @body (a Multipart, or bytes), sent as it is made."""
    if isinstance(body, Multipart):
        content_type = content_type or body.content_type()
        length = body.length() if length is None else length
        chunks = body.chunks()
    else:
        length = len(body) if length is None else length
        chunks = iter([body])
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=JOB_TIMEOUT)
    try:
        conn.putrequest("POST", "/jobs")
        if content_type:
            conn.putheader("Content-Type", content_type)
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        try:
            for chunk in chunks:
                conn.send(chunk)
        except OSError:
            pass  # an answer given before the body was read: it is read below
        r = conn.getresponse()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def submit(server, body, expect=202):
    r = post(server, body)
    check(r.status == expect, f"POST /jobs: expected {expect}, got {r}")
    doc = r.json()
    run.submitted.add(doc["id"])
    return doc


def check_error(r, status, field, detail=None):
    check(r.status == status, f"expected {status}, got {r}")
    doc = r.json()
    check(isinstance(doc.get("error"), str) and isinstance(doc.get("detail"), str),
          f"error body lacks error/detail: {doc}")
    check(doc.get("field") == field, f"expected field {field!r}, got {doc}")
    if detail:
        check(detail in doc["detail"], f"detail lacks {detail!r}: {doc}")
    return doc


def job(server, job_id):
    r = server.call("GET", f"/jobs/{job_id}")
    check(r.status == 200, f"GET /jobs/{job_id}: {r}")
    return r.json()


def wait_end(server, job_id):
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        doc = job(server, job_id)
        if doc["status"] in ("complete", "failed", "cancelled", "expired"):
            return doc
        check(time.monotonic() < deadline, f"job {job_id} still {doc['status']}")
        time.sleep(0.05)


def listing(server, job_id):
    r = server.call("GET", f"/jobs/{job_id}/files")
    check(r.status == 200, f"GET /jobs/{job_id}/files: {r}")
    return {f["name"]: f["size"] for f in r.json()["files"]}


def download(server, job_id, name):
    r = server.call("GET", f"/jobs/{job_id}/files/{name}")
    check(r.status == 200, f"GET /jobs/{job_id}/files/{name}: {r}")
    return r.body


def uploads_dir(server):
    return os.path.join(server.workspace_root, "uploads")


def temp_files(server):
    return sorted(os.listdir(uploads_dir(server)))


def wait_no_temp_files(server):
    deadline = time.monotonic() + 30
    while temp_files(server):
        check(time.monotonic() < deadline,
              f"temporary files left in {uploads_dir(server)}: {temp_files(server)}")
        time.sleep(0.05)


def high_water_mark(server):
    """The server process's peak resident set (VmHWM), in bytes."""
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise Failure("no VmHWM in /proc/PID/status")


# ---- the cases --------------------------------------------------------------

@case("the servers start; the uploads directory is <workspace_root>/uploads, mode 0700, empty")
def t_start():
    run.a.start()
    run.b.start()
    for server in (run.a, run.b):
        st = os.stat(uploads_dir(server))
        check(st.st_mode & 0o777 == 0o700, f"{uploads_dir(server)}: mode {st.st_mode:o}")
        check(temp_files(server) == [], f"uploads: {temp_files(server)}")


@case("a job with two inputs: 202, its files list both with their sizes, each downloads "
      "byte-identical, and the command executor reads them (wc -c in the sandbox)")
def t_two_inputs():
    run.data = os.urandom(300_000) + b"\x00\r\n--" + os.urandom(1000)  # boundary-like bytes
    run.text = "line one\nline two\n".encode()
    config = cfg(executor="command", program="wc", args=["-c", "data.bin", "notes.txt"])
    body = Multipart().job({"queue": run.queue, "config": config})
    body.input("data.bin", run.data).input("notes.txt", run.text).close()
    doc = submit(run.a, body)
    check(doc["id"] == derived_id(config), f"id {doc['id']} is not the config's MD5")
    run.two_id, run.two_config = doc["id"], config
    done = wait_end(run.a, doc["id"])
    check(done["status"] == "complete", f"job: {done}")
    files = listing(run.a, doc["id"])
    check(files.get("data.bin") == len(run.data) and files.get("notes.txt") == len(run.text),
          f"files: {files}")
    check(download(run.a, doc["id"], "data.bin") == run.data, "data.bin differs")
    check(download(run.a, doc["id"], "notes.txt") == run.text, "notes.txt differs")
    out = download(run.a, doc["id"], "stdout.txt").decode().split("\n")
    check(out[0].split() == [str(len(run.data)), "data.bin"] and
          out[1].split() == [str(len(run.text)), "notes.txt"], f"wc -c: {out}")
    check(temp_files(run.a) == [], f"uploads: {temp_files(run.a)}")


@case("the parts may come in any order, an input may be empty, and job control members apply")
def t_order():
    config = cfg(executor="command", program="wc", args=["-c", "empty"])
    body = Multipart().input("empty", b"").job({"queue": run.queue, "config": config,
                                               "priority": 70}).close()
    doc = submit(run.a, body)
    check(doc["priority"] == 70, f"priority: {doc}")
    done = wait_end(run.a, doc["id"])
    check(done["status"] == "complete", f"job: {done}")
    check(listing(run.a, doc["id"]).get("empty") == 0, "the empty input is not listed")
    check(download(run.a, doc["id"], "stdout.txt").split() == [b"0", b"empty"], "wc -c empty")


@case("resubmitting: the same inputs answer 200 with the job as it is; other inputs 409 "
      "(field input): a job's id is its config's alone")
def t_resubmit():
    def body(data, text=run.text, name="notes.txt"):
        return Multipart().job({"queue": run.queue, "config": run.two_config}).input(
            "data.bin", data).input(name, text).close()
    before = job(run.a, run.two_id)
    doc = submit(run.a, body(run.data), expect=200)
    check(doc["id"] == run.two_id and doc["attempts"] == 1 and
          doc["finished"] == before["finished"], f"the job ran again: {doc}")
    changed = bytes([run.data[0] ^ 1]) + run.data[1:]
    for b, what in ((body(changed), "other bytes"), (body(run.data[:-1]), "bytes, this one"),
                    (body(run.data, name="other.txt"), "no file 'other.txt'")):
        check_error(post(run.a, b), 409, "input", what)
    after = job(run.a, run.two_id)
    check(after["attempts"] == 1 and after["finished"] == before["finished"], f"job: {after}")
    check(download(run.a, run.two_id, "data.bin") == run.data, "data.bin was replaced")


@case("a 200 MiB input is streamed: the server's peak memory grows far less than it, the "
      "bytes come back identical, and no temporary file is left")
def t_big():
    block = os.urandom(MIB)

    def contents():
        for i in range(BIG // MIB):
            yield i.to_bytes(8, "big") + block[8:]

    expected = hashlib.sha256()
    for chunk in contents():
        expected.update(chunk)
    config = cfg(executor="command", program="wc", args=["-c", "big.bin"])
    body = Multipart().job({"queue": run.queue, "config": config})
    body.pieces += [b"--" + body.boundary.encode() +
                    b'\r\nContent-Disposition: form-data; name="input"; filename="big.bin"\r\n\r\n',
                    (contents, BIG), b"\r\n"]
    body.close()
    before = high_water_mark(run.a)
    doc = submit(run.a, body)
    grown = high_water_mark(run.a) - before
    print(f"# peak RSS {before // MIB} MiB before the 200 MiB upload, grown by {grown // MIB} MiB")
    check(grown < 64 * MIB, f"the server's peak memory grew by {grown // MIB} MiB")
    check(temp_files(run.a) == [], f"uploads: {temp_files(run.a)}")
    done = wait_end(run.a, doc["id"])
    check(done["status"] == "complete", f"job: {done}")
    check(listing(run.a, doc["id"]).get("big.bin") == BIG, "big.bin's size")
    check(download(run.a, doc["id"], "stdout.txt").split() == [str(BIG).encode(), b"big.bin"],
          "wc -c big.bin")
    conn = http.client.HTTPConnection("127.0.0.1", run.a.port, timeout=JOB_TIMEOUT)
    try:
        conn.request("GET", f"/jobs/{doc['id']}/files/big.bin")
        r = conn.getresponse()
        check(r.status == 200, f"download: {r.status}")
        got = hashlib.sha256()
        while chunk := r.read(MIB):
            got.update(chunk)
        check(got.hexdigest() == expected.hexdigest(), "big.bin came back different")
    finally:
        conn.close()
    d = run.a.call("DELETE", f"/jobs/{doc['id']}")
    check(d.status == 204, f"DELETE: {d}")
    run.deleted.add(doc["id"])


def refused_cases():
    """(what, body, status, field, detail, config) for every refusal."""
    def new(**extra):
        return cfg(executor="checksum", text="refused", **extra)

    def with_job(config, *inputs, boundary=None):
        body = Multipart(boundary).job({"queue": run.queue, "config": config})
        for name, data in inputs:
            body.input(name, data)
        return body

    out = []
    c = new(case="no job")
    out.append(("no job part", Multipart().input("a", b"x").close(), 400, "job", "no 'job' part",
                c))
    c = new(case="two jobs")
    body = with_job(c).job({"queue": run.queue, "config": c}).close()
    out.append(("two job parts", body, 400, "job", "two 'job' parts", c))
    c = new(case="no filename")
    body = with_job(c).part("input", b"data").close()
    out.append(("an input without filename", body, 400, "input", "needs a filename", c))
    c = new(case="empty filename")
    body = with_job(c).part("input", b"data", filename="").close()
    out.append(("an input with an empty filename", body, 400, "input", "needs a filename", c))
    for i, name in enumerate(("a/b", "..", "sp ace", "x" * 256)):
        c = new(case=f"bad name {i}")
        out.append((f"bad name {name[:20]!r}", with_job(c, (name, b"x")).close(), 400, "input",
                    "unsafe file name", c))
    c = new(case="duplicate")
    out.append(("a duplicate name", with_job(c, ("a", b"1"), ("a", b"2")).close(), 400, "input",
                "two inputs named 'a'", c))
    for name in ("input-config", ".workspace", ".complete"):
        c = new(case=f"reserved {name}")
        out.append((f"reserved name {name}", with_job(c, (name, b"x")).close(), 400, "input",
                    "reserved name", c))
    c = new(case="log.txt")
    out.append(("the log's name", with_job(c, ("log.txt", b"x")).close(), 400, "input",
                "name of the job's log", c))
    c = new(case="other part")
    out.append(("a part with another name", with_job(c).part("note", b"hi").close(), 400, "body",
                "unknown part 'note'", c))
    c = new(case="encoding")
    body = with_job(c).part("input", b"eA==", filename="a",
                            headers=["Content-Transfer-Encoding: base64"]).close()
    out.append(("a transfer encoding", body, 400, "input", "Content-Transfer-Encoding", c))
    c = new(case="truncated")
    body = with_job(c, ("a", b"x" * 1000))  # no closing boundary
    out.append(("a body without its closing boundary", body, 400, "body", "closing boundary", c))
    c = new(case="garbage")
    out.append(("a body without any part", f"not multipart at all {c}".encode(), 400, "body",
                "no part", c))
    c = new(case="bad json")
    body = Multipart().part("job", '{"queue": "' + run.queue + '", "config": ').input("a", b"x")
    out.append(("a job part that is not JSON", body.close(), 400, "job", "malformed JSON", c))
    c = new(case="unknown queue")
    body = Multipart().job({"queue": "no-such-queue", "config": c}).input("a", b"x").close()
    out.append(("an unknown queue", body, 400, "queue", "not configured", c))
    return out


@case("every malformed or refused upload answers 400 naming job, input or body; nothing is "
      "stored and no temporary file is left")
def t_refused():
    for what, body, status, field, detail, config in refused_cases():
        if isinstance(body, bytes):
            r = post(run.a, body, content_type="multipart/form-data; boundary=zz")
        else:
            r = post(run.a, body)
        try:
            check_error(r, status, field, detail)
        except Failure as e:
            raise Failure(f"{what}: {e}")
        code = run.a.call("GET", f"/jobs/{derived_id(config)}").status
        check(code == 404, f"{what}: the job was stored ({code})")
        check(temp_files(run.a) == [], f"{what}: uploads: {temp_files(run.a)}")


@case("a multipart Content-Type without boundary answers 400 (body); another content type "
      "415 (body); JSON stays as it was, also as curl -d sends it")
def t_content_types():
    check_error(post(run.a, b"--x\r\n", content_type="multipart/form-data"), 400, "body",
                "boundary")
    for ctype in ("application/xml", "multipart/mixed; boundary=x", "image/png"):
        check_error(post(run.a, b"{}", content_type=ctype), 415, "body", "Content-Type")
    config = cfg(executor="checksum", text="plain json")
    for ctype in (None, "application/json", "application/json; charset=utf-8",
                  "application/x-www-form-urlencoded", "text/plain;charset=UTF-8"):
        r = post(run.a, json.dumps({"queue": run.queue, "config": config}).encode(),
                 content_type=ctype)
        check(r.status in (200, 202), f"{ctype}: {r}")
        run.submitted.add(r.json()["id"])


@case("limits (server B: max_body_bytes 4096, max_input_bytes 65536): 413 naming each, the "
      "upload read to the limit and dropped; nothing stored, no temporary file left")
def t_limits():
    config = cfg(executor="checksum", text="limits")
    cases = [
        ("inputs over max_input_bytes", Multipart().job({"queue": run.queue_b, "config": config})
         .input("a", b"x" * 40000).input("b", b"y" * 40000).close(), "input", "max_input_bytes"),
        ("a job part over max_body_bytes",
         Multipart().job({"queue": run.queue_b, "config": dict(config, pad="p" * 5000)})
         .input("a", b"x").close(), "job", "max_body_bytes"),
    ]
    many = Multipart().job({"queue": run.queue_b, "config": config})
    for i in range(101):
        many.input(f"f{i}", b"z")
    cases.append(("101 inputs", many.close(), "input", "more than 100 input files"))
    for what, body, field, detail in cases:
        try:
            check_error(post(run.b, body), 413, field, detail)
        except Failure as e:
            raise Failure(f"{what}: {e}")
        check(temp_files(run.b) == [], f"{what}: uploads: {temp_files(run.b)}")
    check(run.b.call("GET", f"/jobs/{derived_id(config)}").status == 404, "a job was stored")
    # A Content-Length over the whole allowance is refused before the body.
    huge = Multipart().job({"queue": run.queue_b, "config": config}).close()
    r = post(run.b, huge, length=64 * MIB)
    check_error(r, 413, "body", "larger than")
    # Chunked, with no length to refuse: an input that goes on far beyond
    # the whole allowance (4096 + 65536 + 6684672 bytes, and 8 times
    # max_body_bytes more) gets its connection dropped.
    body = Multipart().job({"queue": run.queue_b, "config": config})
    head = b"".join(body.pieces) + (b"--" + body.boundary.encode() +
                                    b'\r\nContent-Disposition: form-data; name="input"; '
                                    b'filename="endless"\r\n\r\n')
    sock = socket.create_connection(("127.0.0.1", run.b.port), timeout=JOB_TIMEOUT)
    sent, dropped = 0, False
    try:
        sock.sendall(f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     f"{body.content_type()}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() +
                     b"%x\r\n%s\r\n" % (len(head), head))
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"e" * 64 * 1024)
        while sent < 32 * MIB:
            sock.sendall(chunk)
            sent += 64 * 1024
        sock.sendall(b"0\r\n\r\n")
        dropped = sock.recv(1024) == b""
    except OSError:
        dropped = True
    finally:
        sock.close()
    check(dropped, f"the server read {sent} bytes of an endless upload and answered")
    wait_no_temp_files(run.b)
    log = open(run.b.log_path, errors="replace").read()
    check("upload far over its limits; connection dropped" in log, "no drop in B's log")


@case("a client that disconnects mid-upload leaves no temporary file")
def t_disconnect():
    body = Multipart().job({"queue": run.queue, "config": cfg(executor="checksum", text="gone")})
    head = b"".join(body.pieces) + (b"--" + body.boundary.encode() +
                                    b'\r\nContent-Disposition: form-data; name="input"; '
                                    b'filename="half.bin"\r\n\r\n')
    sock = socket.create_connection(("127.0.0.1", run.a.port), timeout=JOB_TIMEOUT)
    try:
        sock.sendall(f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     f"{body.content_type()}\r\nContent-Length: {len(head) + 8 * MIB}\r\n\r\n"
                     .encode() + head + os.urandom(MIB))
        deadline = time.monotonic() + 30
        while not temp_files(run.a):  # the input is being written
            check(time.monotonic() < deadline, "no temporary file appeared during the upload")
            time.sleep(0.02)
        name = temp_files(run.a)[0]
        mode = os.stat(os.path.join(uploads_dir(run.a), name)).st_mode & 0o777
        check(mode == 0o600, f"{name}: mode {mode:o}")
    finally:
        sock.close()
    wait_no_temp_files(run.a)


@case("at start a server removes the upload files of servers that are gone, and keeps "
      "those of a running one")
def t_stale():
    status = run.b.stop()
    check(status == 0, f"B exited with {status}")
    directory = uploads_dir(run.b)
    # pid_max is at most 2^22: no process has the first; this test's own
    # process stands for a running server.
    stale, live = "upload-9999999-1", f"upload-{os.getpid()}-1"
    for name in (stale, live):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(b"left over")
    run.b.start()
    check(temp_files(run.b) == [live], f"after the start: {temp_files(run.b)}")
    os.unlink(os.path.join(directory, live))


@case("clean-up: every job of the run is deleted; both servers stop cleanly, with no "
      "sanitizer report")
def t_cleanup():
    for job_id in sorted(run.submitted - run.deleted):
        wait_end(run.a, job_id)
        d = run.a.call("DELETE", f"/jobs/{job_id}")
        check(d.status in (204, 404), f"DELETE {job_id}: {d}")
    run.cleaned = True
    for server in (run.a, run.b):
        status = server.stop()
        check(status == 0, f"{server.name} exited with {status}:\n{server.log_tail()}")
        log = open(server.log_path, errors="replace").read()
        check_no_sanitizer_report(log, f"{server.name}'s log")


# ---- driver -----------------------------------------------------------------

def main():
    stack_settings_present()
    binary, queue_delete = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    run.tag = secrets.token_hex(4)
    run.queue, run.queue_b = f"inputs-{run.tag}", f"inputs-{run.tag}-b"
    run.work = tempfile.mkdtemp(prefix=f"acp-inputs-{run.tag}-")
    run.submitted, run.deleted, run.cleaned = set(), set(), False
    programs = {"wc": {"path": os.path.realpath(shutil.which("wc")), "options": ["-c"]}}
    base = {
        "listen": {"address": "127.0.0.1", "port": 0, "request_timeout": 600},
        "s3": {"root_path": f"inputs-test-{run.tag}"},
        "layout": os.environ.get("ACP_TEST_LAYOUT", "native"),
        "shutdown_timeout": 5,
        "log_level": "info",
        "executors": {"command": {"programs": programs, "timeout_seconds": 60}},
    }
    run.a = Server(binary, run.work, "server-a", dict(
        base, queues=[{"id": run.queue, "workers": 2}], workspace_root=f"{run.work}/ws-a"))
    run.b = Server(binary, run.work, "server-b", dict(
        base, queues=[{"id": run.queue_b, "workers": 1}], workspace_root=f"{run.work}/ws-b",
        max_body_bytes=4096, max_input_bytes=65536))
    for server in (run.a, run.b):
        server.workspace_root = f"{run.work}/ws-{server.name[-1]}"
    print(f"# run {run.tag}: queue {run.queue}, files in {run.work}")

    failed = run_cases(cases)
    return finish(run, failed, [run.a, run.b], [run.a, run.b], queue_delete, [f"{run.queue}_jobs", f"{run.queue_b}_jobs"])


if __name__ == "__main__":
    sys.exit(main())
