#!/usr/bin/env python3
"""Cold start of every function against a hello-world `lambda_runtime` function.

Runs each release binary of `functions/` and `tools/hello-lambda` as Lambda would on
provided.al2023: a fresh process per run, given `AWS_LAMBDA_RUNTIME_API` pointing at a local
Runtime API emulator (this script), the environment template.yaml gives the function, and
the AWS endpoints pointed at moto (`AWS_ENDPOINT_URL`, fake credentials). The resources the
environment names (tables, queues, bucket, KMS key, secrets) are created in moto first, the
secrets in the stored form of decision 0035, so a cold start reads them as it would on AWS.

For each run it measures:
- init: from just before the exec to the first `GET /runtime/invocation/next`;
- first invoke: from the moment the first event is handed out to the end of its response
  (`POST /runtime/invocation/{id}/response`, buffered or streamed).
Runs are interleaved (run 1 of every function, then run 2...) so a slower moment of the
machine falls on every function alike. Prints the median, min and max of each, and init as a
ratio of the hello-world's init.

The trust store is reproduced as provided.al2023 has it (`--trust-store al2023`, the
default): one PEM bundle (`SSL_CERT_FILE`) and an empty certificate directory
(`SSL_CERT_DIR`), which is what rustls-native-certs 0.8 reads when either variable is set;
`--trust-store system` leaves both unset, so the machine's own store is read (on Debian
`/etc/ssl/certs/ca-certificates.crt` plus the ~300 files of `/etc/ssl/certs`).

Why Python with the standard library only: the emulator, the timing and moto's API need
nothing else, the script runs where the project's tests run (python3 is required there),
and it builds nothing that could differ from what it measures.

Usage:
    CARGO_TARGET_DIR=... MOTO_ENDPOINT=http://127.0.0.1:PORT \\
        python3 scripts/bench/cold_start.py [--runs 20] [--trust-store al2023|system]
        [--no-build] [--only NAME,...] [--json FILE]
Without MOTO_ENDPOINT it starts `.venv/bin/python scripts/moto_server.py` on a free port.

Runtime API (version 2018-06-01), as documented in
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html: `GET
/2018-06-01/runtime/invocation/next` answers the event with the headers
`Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
`Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`; the runtime answers
with `POST .../invocation/{id}/response` (202) or `.../{id}/error`, or `POST
.../runtime/init/error` when init fails. A streamed response
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html) is the
same POST with `Lambda-Runtime-Function-Response-Mode: streaming` and a chunked body.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVENTS = Path(__file__).resolve().parent / "cold_start_events"
REGION = "eu-central-1"
ACCOUNT = "123456789012"
STACK = "wappline-bench"
HELLO = "hello-lambda"
# The bundle that stands in for provided.al2023's /etc/pki/tls/certs/ca-bundle.crt (about
# 140 roots): Debian's, which has the same Mozilla roots in one file.
BUNDLES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]

# Values of template.yaml's parameters for the bench. Test values only: the verify token and
# app secret are those the samples of events/ are signed with (events/README.md).
PARAMETERS = {
    "AdminTokenSha256": hashlib.sha256(b"local-dev-admin-token").hexdigest(),
    "MetaAppSecret": "local-dev-app-secret",
    "MetaAppId": "1234567890",
    "MetaVerifyToken": "local-dev-verify-token",
    "BitrixClientId": "local.bench0000000000.00000000",
    "BitrixClientSecret": "bench-bitrix-client-secret",
    "PublicBaseUrl": "https://api.example.com",
    "ExportLinkKey": "11" * 32,
    "SessionSigningKey": "22" * 32,
    "BcryptCost": "12",
    "MailFrom": "",
    "MediaLinkKey": "33" * 32,
    "SecretsRevision": "1",
    "LogLevel": "info",
    "GraphApiVersion": "",
    # Template defaults: no privacy-policy notice. Self-service onboarding on (test ids), so
    # the functions that carry it read the Instagram app secret at cold start as on AWS.
    "PrivacyPolicyVersion": "",
    "MetaEsConfigId": "1234567892",
    "InstagramAppId": "1234567891",
    "InstagramAppSecret": "bench-instagram-app-secret",
}
# The secrets' initial values (template.yaml's SecretString: {"current": <parameter>}).
SECRET_STORES = {
    "MetaAppSecretStore": "MetaAppSecret",
    "BitrixClientSecretStore": "BitrixClientSecret",
    "SessionSigningKeyStore": "SessionSigningKey",
    "ExportLinkKeyStore": "ExportLinkKey",
    "MediaLinkKeyStore": "MediaLinkKey",
    "InstagramAppSecretStore": "InstagramAppSecret",
}
TABLES = {"DataTable": "data", "RoutesTable": "routes", "KeysTable": "keys", "DedupeTable": "dedupe"}

# The first event of each function: a sample of events/ where one fits, else our own
# (cold_start_events/), each in the format the function's trigger delivers.
FIRST_EVENTS = {
    "admin-api": ROOT / "events/admin-api/get-tenant.json",
    "meta-webhook": ROOT / "events/meta-webhook/lambda/deliver-whatsapp-text.json",
    "data-deletion": ROOT / "events/data-deletion/status-unknown.json",
    "bitrix-webhook": ROOT / "events/bitrix-webhook/message-add.json",
    "public-api": EVENTS / "public-api.json",
    "console": EVENTS / "console.json",
    "media-proxy": EVENTS / "media-proxy.json",
    "inbound-worker": EVENTS / "inbound-worker.json",
    "sync-worker": EVENTS / "sync-worker.json",
    "outbound-worker": EVENTS / "outbound-worker.json",
    "erasure-worker": EVENTS / "erasure-worker.json",
    "export-worker": EVENTS / "export-worker.json",
    "retention": EVENTS / "retention.json",
    HELLO: EVENTS / "hello-lambda.json",
}


# --------------------------------------------------------------------------------------
# template.yaml: each function's binary and environment
# --------------------------------------------------------------------------------------


def read_template() -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, str]]:
    """The global environment, by binary name each function's own variables, and each
    function's memory size in MB (Lambda tells the runtime in AWS_LAMBDA_FUNCTION_MEMORY_SIZE).

    A reader for the shapes template.yaml uses (indentation-structured mappings, `!Ref` and
    `!GetAtt` scalars): the standard library has no YAML parser.
    """
    lines = (ROOT / "template.yaml").read_text().splitlines()
    globals_env: dict[str, str] = {}
    functions: dict[str, dict[str, str]] = {}
    memory: dict[str, str] = {}
    default_memory = "128"
    pending_memory = None
    i = 0
    resource = None
    binary = None
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if m:
            resource, binary, pending_memory = m.group(1), None, None
        m = re.match(r"^\s+Binary:\s*(\S+)", line)
        if m:
            binary = m.group(1)
        m = re.match(r"^\s+MemorySize:\s*(\d+)", line)
        if m:
            if resource == "Function":
                default_memory = m.group(1)
            else:
                pending_memory = m.group(1)
        m = re.match(r"^(\s+)Environment:\s*$", line)
        if m and i + 1 < len(lines) and lines[i + 1].strip() == "Variables:":
            indent = len(lines[i + 1]) - len(lines[i + 1].lstrip()) + 2
            env: dict[str, str] = {}
            j = i + 2
            while j < len(lines):
                raw = lines[j]
                if raw.strip().startswith("#") or not raw.strip():
                    j += 1
                    continue
                if len(raw) - len(raw.lstrip()) != indent:
                    break
                key, _, value = raw.strip().partition(":")
                env[key] = value.strip()
                j += 1
            if resource == "Function" or binary is None:
                globals_env = env
            else:
                functions[binary] = env
                memory[binary] = pending_memory or default_memory
            i = j
            continue
        i += 1
    return globals_env, functions, memory


# --------------------------------------------------------------------------------------
# moto: the resources the environment names, created through AWS's own APIs
# --------------------------------------------------------------------------------------


class Moto:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint.rstrip("/")

    def call(self, service: str, target: str | None, body: bytes, *, method="POST", path="/",
             content_type="application/x-amz-json-1.1", extra=None) -> bytes:
        # moto does not check signatures; it reads the region and service from the
        # credential scope of a SigV4 Authorization header.
        headers = {
            "Content-Type": content_type,
            "Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0",
            "X-Amz-Date": "20260101T000000Z",
        }
        if target:
            headers["X-Amz-Target"] = target
        headers.update(extra or {})
        req = urllib.request.Request(self.endpoint + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            if "ResourceInUse" in text or "AlreadyExists" in text or "BucketAlreadyOwnedByYou" in text:
                return b"{}"
            raise RuntimeError(f"moto {service} {target or path}: {e.code} {text[:300]}") from None

    def json(self, service, target, payload, content_type="application/x-amz-json-1.1"):
        out = self.call(service, target, json.dumps(payload).encode(), content_type=content_type)
        return json.loads(out or b"{}")

    def provision(self) -> dict[str, str]:
        """Creates every resource and returns the value of each `!Ref`/`!GetAtt` by name."""
        refs: dict[str, str] = {}
        for logical, suffix in TABLES.items():
            name = f"{STACK}-{suffix}"
            self.json("dynamodb", "DynamoDB_20120810.CreateTable", {
                "TableName": name,
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                              {"AttributeName": "sk", "KeyType": "RANGE"}],
            }, content_type="application/x-amz-json-1.0")
            refs[logical] = name
        key = self.json("kms", "TrentService.CreateKey", {"Description": "bench tenant key"})
        refs["TenantKey.Arn"] = key["KeyMetadata"]["Arn"]
        for logical, queue, fifo in [
            ("InboundQueue", "inbound.fifo", True),
            ("SyncQueue", "sync.fifo", True),
            ("InboundDlq", "inbound-dlq.fifo", True),
            ("SyncDlq", "sync-dlq.fifo", True),
            ("OutboundQueue", "outbound.fifo", True),
            ("OutboundDlq", "outbound-dlq.fifo", True),
            ("ErasureQueue", "erasure", False),
            ("ExportsQueue", "exports", False),
        ]:
            attrs = {"FifoQueue": "true"} if fifo else {}
            out = self.json("sqs", "AmazonSQS.CreateQueue",
                            {"QueueName": f"{STACK}-{queue}", "Attributes": attrs},
                            content_type="application/x-amz-json-1.0")
            refs[logical] = out["QueueUrl"]
        bucket = f"{STACK}-exports"
        self.call("s3", None, (
            "<CreateBucketConfiguration><LocationConstraint>"
            f"{REGION}</LocationConstraint></CreateBucketConfiguration>").encode(),
            method="PUT", path=f"/{bucket}", content_type="application/xml")
        refs["ExportsBucket"] = bucket
        for store, parameter in SECRET_STORES.items():
            name = f"{STACK}-{store}"
            secret = json.dumps({"current": PARAMETERS[parameter]})
            try:
                out = self.json("secretsmanager", "secretsmanager.CreateSecret",
                                {"Name": name, "SecretString": secret})
            except RuntimeError:
                out = {}
            if "ARN" not in out:
                out = self.json("secretsmanager", "secretsmanager.DescribeSecret", {"SecretId": name})
            refs[store] = out["ARN"]
        # The role the tenant-scoped functions assume per tenant (decision 0037), named as
        # template.yaml names it; assumed at a tenant's first call, not at cold start.
        role = self.call("iam", None, urllib.parse.urlencode({
            "Action": "CreateRole", "Version": "2010-05-08", "RoleName": f"{STACK}-tenant-data",
            "AssumeRolePolicyDocument": json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": ["sts:AssumeRole", "sts:TagSession"]}]}),
        }).encode(), content_type="application/x-www-form-urlencoded")
        m = re.search(rb"<Arn>([^<]+)</Arn>", role)
        refs["TenantDataRole.Arn"] = m.group(1).decode() if m else f"arn:aws:iam::{ACCOUNT}:role/{STACK}-tenant-data"
        # A function URL cannot name itself; what Lambda gives, in its documented form.
        refs["MediaProxyFunctionUrl.FunctionUrl"] = "https://abcdefghij0123456789abcdefghij01.lambda-url.eu-central-1.on.aws/"
        refs.update(PARAMETERS)
        return refs


def resolve_env(raw: dict[str, str], refs: dict[str, str]) -> dict[str, str]:
    env = {}
    for key, value in raw.items():
        m = re.match(r"^!(?:Ref|GetAtt)\s+(\S+)$", value)
        if m:
            if m.group(1) not in refs:
                raise SystemExit(f"template.yaml: {key} refers to {m.group(1)}, unknown to the bench")
            env[key] = refs[m.group(1)]
            continue
        m = re.match(r"^!Sub\s+(.+)$", value)
        if m:
            # `${Name}` of a parameter or resource, `${AWS::StackName}` of the stack.
            def sub(ref: re.Match) -> str:
                name = ref.group(1)
                if name == "AWS::StackName":
                    return STACK
                if name not in refs:
                    raise SystemExit(f"template.yaml: {key} refers to {name}, unknown to the bench")
                return refs[name]
            env[key] = re.sub(r"\$\{([^}]+)\}", sub, m.group(1).strip("'\""))
        else:
            env[key] = value.strip("'\"")
    return env


# --------------------------------------------------------------------------------------
# The Runtime API emulator
# --------------------------------------------------------------------------------------


TIMED_OUT = "no answer within 20 s"


class Run:
    """One cold start: the event to hand out and what was observed, in ns."""

    def __init__(self, event: bytes, function: str):
        self.event = event
        self.function = function
        self.request_id = str(uuid.uuid4())
        self.started = 0
        self.first_next = 0
        self.event_sent = 0
        self.response_done = 0
        self.response = b""
        self.streaming = False
        self.failure = None
        self.done = threading.Event()
        self.stop = threading.Event()


class Emulator(ThreadingHTTPServer):
    daemon_threads = True
    run: Run | None = None

    def handle_error(self, request, client_address):
        # A stopped process resets its held `/next` connection: expected at every run's end.
        pass


class RuntimeApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Emulator

    def log_message(self, *args):  # the bench prints its own table only
        pass

    def reply(self, status: int, body: bytes = b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers (a streamed error is reported in them), then the blank line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        now = time.perf_counter_ns()
        run = self.server.run
        if self.path != "/2018-06-01/runtime/invocation/next" or run is None:
            return self.reply(404, b'{"errorType":"NotFound"}')
        if run.first_next:
            # The runtime asks for its second event: the run is over; hold the request
            # until the process is stopped, as Lambda freezes it.
            run.stop.wait(60)
            return
        run.first_next = now
        deadline = int(time.time() * 1000) + 30_000
        headers = {
            "Lambda-Runtime-Aws-Request-Id": run.request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline),
            "Lambda-Runtime-Invoked-Function-Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-{run.function}",
            "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        }
        self.reply(200, run.event, headers)
        run.event_sent = time.perf_counter_ns()

    def do_POST(self):
        run = self.server.run
        body = self.read_body()
        now = time.perf_counter_ns()
        if run is None:
            return self.reply(404, b"{}")
        if self.path == "/2018-06-01/runtime/init/error":
            run.failure = "init error: " + body.decode(errors="replace")[:300]
        elif self.path == f"/2018-06-01/runtime/invocation/{run.request_id}/response":
            run.response_done = now
            run.response = body
            run.streaming = self.headers.get("Lambda-Runtime-Function-Response-Mode") == "streaming"
        elif self.path == f"/2018-06-01/runtime/invocation/{run.request_id}/error":
            run.failure = "invocation error: " + body.decode(errors="replace")[:300]
        else:
            return self.reply(404, b"{}")
        self.reply(202, b'{"status":"OK"}')
        run.done.set()


def outcome(run: Run) -> str:
    """What the first event got, for the table: an HTTP status, or failed batch items."""
    if run.failure:
        return run.failure
    body = run.response
    if run.streaming:
        # The streamed HTTP answer: its prelude (JSON), 8 zero bytes, then the body.
        prelude = body.split(b"\0" * 8, 1)[0]
        try:
            return f"HTTP {json.loads(prelude).get('statusCode')} (streamed)"
        except ValueError:
            return "streamed"
    try:
        value = json.loads(body)
    except ValueError:
        return "unreadable response"
    if isinstance(value, dict) and "statusCode" in value:
        return f"HTTP {value['statusCode']}"
    if isinstance(value, dict) and "batchItemFailures" in value:
        return f"{len(value['batchItemFailures'])} failed item(s)"
    return "ok"


def cold_start(server: Emulator, binary: Path, env: dict[str, str], event: bytes, function: str,
               log: Path, wrapper: list[str] = ()) -> Run:
    run = Run(event, function)
    server.run = run
    with open(log, "wb") as out:
        run.started = time.perf_counter_ns()
        proc = subprocess.Popen([*wrapper, str(binary)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        finished = False
        while not finished:
            finished = run.done.wait(0.05)
            if not finished and proc.poll() is not None:
                run.failure = f"exited with {proc.returncode} before answering (see {log})"
                break
            if time.perf_counter_ns() - run.started > 20e9:
                run.failure = TIMED_OUT
                break
        # The whole process group: a wrapper's (strace's) tracee must not live on and take
        # the next run's event.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    run.stop.set()
    server.run = None
    return run


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[str, subprocess.Popen]:
    port = free_port()
    python = ROOT / ".venv/bin/python"
    proc = subprocess.Popen([str(python), str(ROOT / "scripts/moto_server.py"), "127.0.0.1", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
            return endpoint, proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def stats(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def zip_size(binary: Path) -> int:
    """The deployment package as cargo-lambda makes it: the binary as `bootstrap`, deflated."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bootstrap.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(binary, "bootstrap")
        return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--trust-store", choices=["al2023", "system"], default="al2023")
    ap.add_argument("--no-build", action="store_true", help="use the release binaries as built")
    ap.add_argument("--only", default="", help="comma-separated function names (the hello-world always runs)")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--markdown", action="store_true", help="also print the table as "
                    "docs/performance.md has it")
    ap.add_argument("--bin-dir", type=Path, help="where the binaries are (default: the release "
                    "directory of CARGO_TARGET_DIR or target/); with --no-build")
    ap.add_argument("--wrapper", default="", help="a command to run each function under, for "
                    "profiling (e.g. 'strace -f -tt -o FILE'); its figures include the wrapper")
    args = ap.parse_args()
    wrapper = args.wrapper.split()

    globals_env, functions, memory = read_template()
    names = sorted(functions)
    if args.only:
        wanted = set(args.only.split(",")) - {HELLO}
        unknown = wanted - set(names)
        if unknown:
            raise SystemExit(f"unknown functions: {', '.join(sorted(unknown))}")
        names = [n for n in names if n in wanted]
    names.append(HELLO)

    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    if not args.no_build:
        cmd = ["cargo", "build", "--release", "--locked"]
        for n in names:
            cmd += ["-p", n]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
    bin_dir = args.bin_dir or target / "release"
    binaries = {n: bin_dir / n for n in names}
    for n, b in binaries.items():
        if not b.exists():
            raise SystemExit(f"{b} is missing: build it (or drop --no-build)")

    moto_proc = None
    endpoint = os.environ.get("MOTO_ENDPOINT")
    if not endpoint:
        endpoint, moto_proc = start_moto()
    try:
        refs = Moto(endpoint).provision()
        server = Emulator(("127.0.0.1", 0), RuntimeApi)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        api = f"127.0.0.1:{server.server_address[1]}"

        empty_dir = tempfile.mkdtemp(prefix="bench-certs-")
        logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_LAMBDA_RUNTIME_API": api,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_ENDPOINT_URL": endpoint,
            "LAMBDA_TASK_ROOT": "/var/task",
            "TZ": ":UTC",
        }
        if args.trust_store == "al2023":
            bundle = next((b for b in BUNDLES if Path(b).exists()), None)
            if bundle is None:
                raise SystemExit(f"no CA bundle found at {' or '.join(BUNDLES)}")
            base["SSL_CERT_FILE"] = bundle
            base["SSL_CERT_DIR"] = empty_dir
        envs = {}
        for n in names:
            env = dict(base)
            if n != HELLO:
                env.update(resolve_env(globals_env, refs))
                env.update(resolve_env(functions[n], refs))
            env["AWS_LAMBDA_FUNCTION_NAME"] = f"{STACK}-{n}"
            env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = memory.get(n, "128")
            envs[n] = env
        events = {n: FIRST_EVENTS[n].read_bytes() for n in names}

        init: dict[str, list[float]] = {n: [] for n in names}
        invoke: dict[str, list[float]] = {n: [] for n in names}
        outcomes: dict[str, str] = {}
        failures: dict[str, str] = {}
        for i in range(args.runs):
            for n in names:
                run = cold_start(server, binaries[n], envs[n], events[n], n, logs / f"{n}.log", wrapper)
                if run.failure == TIMED_OUT:
                    # A process starved by the machine's other work: measure that run again
                    # rather than drop it or let one stall decide the figures.
                    run = cold_start(server, binaries[n], envs[n], events[n], n, logs / f"{n}.log", wrapper)
                if run.failure or not run.first_next:
                    failures[n] = run.failure or "no /next"
                    continue
                init[n].append((run.first_next - run.started) / 1e6)
                invoke[n].append((run.response_done - run.event_sent) / 1e6)
                outcomes[n] = outcome(run)
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)
        server.shutdown()
        shutil.rmtree(empty_dir, ignore_errors=True)
    finally:
        if moto_proc:
            moto_proc.kill()
            moto_proc.wait()

    if failures:
        for n, why in failures.items():
            print(f"{n}: FAILED: {why}", file=sys.stderr)
        print(f"function logs: {logs}", file=sys.stderr)
    hello_init = statistics.median(init[HELLO]) if init[HELLO] else float("nan")
    rows = []
    print(f"\ntrust store: {args.trust_store}; {args.runs} runs; times in ms (median [min-max])")
    print(f"{'function':<16} {'init':>22} {'ratio':>6} {'first invoke':>22} {'zip':>9}  first event")
    for n in names:
        if not init[n]:
            print(f"{n:<16} {'failed':>22}")
            continue
        im, imin, imax = stats(init[n])
        vm, vmin, vmax = stats(invoke[n])
        size = zip_size(binaries[n])
        ratio = im / hello_init
        print(f"{n:<16} {im:8.1f} [{imin:5.1f}-{imax:6.1f}] {ratio:5.2f}x "
              f"{vm:8.1f} [{vmin:5.1f}-{vmax:6.1f}] {size / 1024:7.0f}K  {outcomes.get(n, '')}")
        rows.append({"function": n, "init_ms": [im, imin, imax], "ratio": ratio,
                     "first_invoke_ms": [vm, vmin, vmax], "zip_bytes": size,
                     "first_event": outcomes.get(n, "")})
    if args.markdown:
        print("\n| function | init ms | ratio | first invoke ms | zip (x86_64) | first event |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            (im, imin, imax), (vm, vmin, vmax) = r["init_ms"], r["first_invoke_ms"]
            print(f"| {r['function']} | {im:.1f} [{imin:.1f}-{imax:.1f}] | {r['ratio']:.2f} | "
                  f"{vm:.1f} [{vmin:.1f}-{vmax:.1f}] | {r['zip_bytes'] / 1024:,.0f} KiB | "
                  f"{r['first_event']} |")
    if args.json:
        args.json.write_text(json.dumps({"trust_store": args.trust_store, "runs": args.runs,
                                         "rows": rows}, indent=2))
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
