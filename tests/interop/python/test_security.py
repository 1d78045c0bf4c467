"""taskhubd secured (docs/security.md) with the published Python SDK: TLS, mutual TLS and bearer tokens, the
right credentials working and wrong or missing ones refused; SIGHUP rotating a token and a certificate while a
work-item stream stays open; the refusal to listen insecurely beyond loopback; owner-only unix sockets; and
completion tokens that cannot be guessed or pointed at another work item.

Certificates come from tests/support/make-pki.sh (openssl CLI, a throwaway CA per module run); nothing secret
is committed."""

import os
import runpy
import select
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2

import durabletask.internal.orchestrator_service_pb2 as pb
import durabletask.internal.orchestrator_service_pb2_grpc as pb_grpc
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker

from conftest import CallRecorder, make_client  # noqa: F401
from taskhubd_harness import CHANNEL_OPTIONS, Workers, wait_until

TESTS = Path(__file__).resolve().parents[2]
WAIT_S = 30
REFUSED_MSG = "missing or invalid bearer token"
# Raw-stream tests leave work items unanswered: taskhubd need not wait for them when the test ends.
SHORT_DRAIN = ("--drain-grace", "0")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(["bash", str(TESTS / "support" / "make-pki.sh"), str(d)], check=True)
    return d


def rd(p: Path) -> bytes:
    return p.read_bytes()


def token_file(path: Path, *tokens: str) -> Path:
    path.write_text("# taskhubd tokens\n\n" + "".join(t + "\n" for t in tokens))
    return path


def reloads(server) -> int:
    return server.stderr_text().count("event=credentials_reloaded")


def sighup(server, what: str):
    """SIGHUP, then wait for taskhubd to log that it reloaded (or kept) its credentials."""
    before = reloads(server)
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: reloads(server) > before, 15, f"taskhubd to reload after SIGHUP ({what})")


def _doc_snippet(tmp: Path):
    """docs/security.md's Python block (secured_channel), taken from the page at test time so that the page
    shows what is tested."""
    subprocess.run([sys.executable, str(TESTS / "docs" / "extract.py"), str(TESTS.parent / "docs" / "security.md"),
                    str(tmp), "secured_channel.py"], check=True)
    return runpy.run_path(str(tmp / "secured_channel.py"))["secured_channel"]


@pytest.fixture(scope="module")
def doc_channel(tmp_path_factory):
    return _doc_snippet(tmp_path_factory.mktemp("doc"))


@pytest.fixture
def secured_channel(doc_channel, pki):
    """The page's secured_channel, with the test PKI's file names and the suites' channel options."""
    def make(address, ca, token, cert=None, key=None):
        return doc_channel(address, str(pki / ca), token, str(pki / cert) if cert else None,
                           str(pki / key) if key else None, options=CHANNEL_OPTIONS)
    return make


def hello(ctx: task.ActivityContext, name: str) -> str:
    return f"Hello, {name}!"


def greet(ctx: task.OrchestrationContext, name: str):
    return (yield ctx.call_activity(hello, input=name))


def run_greeting(client: TaskHubGrpcClient, name: str) -> str:
    iid = client.schedule_new_orchestration(greet, input=name)
    st = client.wait_for_orchestration_completion(iid, timeout=WAIT_S)
    assert st is not None and st.runtime_status == OrchestrationStatus.COMPLETED, st
    return st.serialized_output


def refused(fn) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value


@pytest.fixture
def workers():
    w = Workers()
    yield w
    w.close()


def localhost(server) -> str:
    return f"localhost:{server.port}"


def test_python_sdk_tls_mtls_and_token(server_factory, pki, tmp_path, workers, secured_channel):
    tokens = token_file(tmp_path / "tokens", "py-token-" + uuid.uuid4().hex)
    good = tokens.read_text().split("\n")[2]
    server = server_factory.start("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                                  "--tls-client-ca", str(pki / "ca.pem"), "--auth-token-file", str(tokens))
    ca, cert, key = "ca.pem", "client.pem", "client.key"
    ch = secured_channel(localhost(server), ca, good, cert, key)
    worker = TaskHubGrpcWorker(channel=ch)
    worker.add_orchestrator(greet)
    worker.add_activity(hello)
    workers.start(worker)
    client = TaskHubGrpcClient(channel=ch)
    assert run_greeting(client, "TLS") == '"Hello, TLS!"'

    # The same certificates with a wrong token, and without one: UNAUTHENTICATED, the same words for both.
    for tok in ("wrong-" + good, None):
        c = TaskHubGrpcClient(channel=secured_channel(localhost(server), ca, tok, cert, key))
        e = refused(lambda: c.get_orchestration_state("x"))
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
        assert REFUSED_MSG in e.details()
        assert good not in e.details() and "wrong" not in e.details()
    # A token sent as plain metadata (the SDK's metadata= option) works like call credentials.
    stub = pb_grpc.TaskHubSidecarServiceStub(secured_channel(localhost(server), ca, None, cert, key))
    stub.Hello(empty_pb2.Empty(), metadata=[("authorization", "Bearer " + good)], timeout=10)
    # taskhubd's own admin service needs the token like the rest.
    admin = secured_channel(localhost(server), ca, None, cert, key).unary_unary("/taskhubd.admin.Admin/GetServerInfo")
    e = refused(lambda: admin(b"", timeout=10))
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
    assert admin(b"", timeout=10, metadata=[("authorization", "Bearer " + good)])
    # grpc.health.v1 answers without a token (probes send none): an empty HealthCheckRequest, and SERVING (1)
    # back.
    check = secured_channel(localhost(server), ca, None, cert, key).unary_unary("/grpc.health.v1.Health/Check")
    assert check(b"", timeout=10) == b"\x08\x01"

    # TLS refusals happen in the handshake: no client certificate, one from another CA, a client that does
    # not trust the server's CA, and plaintext.
    for what, ch2 in [
        ("no client certificate", secured_channel(localhost(server), ca, good)),
        ("client certificate of another CA", secured_channel(localhost(server), ca, good, "other-client.pem",
                                                             "other-client.key")),
        ("server CA not trusted", secured_channel(localhost(server), "other-ca.pem", good, cert, key)),
        ("plaintext", grpc.insecure_channel(localhost(server), options=CHANNEL_OPTIONS)),
    ]:
        c = TaskHubGrpcClient(channel=ch2)
        e = refused(lambda: c.get_orchestration_state("x"))
        assert e.code() == grpc.StatusCode.UNAVAILABLE, (what, e)
    assert run_greeting(client, "still") == '"Hello, still!"'


def test_python_sdk_token_without_tls_on_loopback(server_factory, tmp_path, workers):
    """A token alone (plaintext, loopback): the SDK's own metadata= option carries it."""
    tokens = token_file(tmp_path / "tokens", "tok-a-" + uuid.uuid4().hex, "tok-b-" + uuid.uuid4().hex)
    a, b = tokens.read_text().split("\n")[2:4]
    server = server_factory.start("--auth-token-file", str(tokens))
    opts = dict(host_address=server.address, metadata=[("authorization", f"Bearer {b}")])
    worker = TaskHubGrpcWorker(**opts)
    worker.add_orchestrator(greet)
    worker.add_activity(hello)
    workers.start(worker)
    assert run_greeting(TaskHubGrpcClient(**opts), "token") == '"Hello, token!"'
    assert TaskHubGrpcClient(host_address=server.address, metadata=[("authorization", f"Bearer {a}")]) \
        .get_orchestration_state("nope") is None
    for md in ([("authorization", "Bearer " + a[:-1])], [("authorization", a)], [("authorization", "Basic " + a)],
               None):
        c = TaskHubGrpcClient(host_address=server.address, metadata=md)
        e = refused(lambda: c.get_orchestration_state("x"))
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (md, e)


def raw_stub_for(ch):
    return pb_grpc.TaskHubSidecarServiceStub(ch)


def open_work_stream(stub, metadata=None):
    """A raw GetWorkItems stream and a thread that collects its work items."""
    call = stub.GetWorkItems(pb.GetWorkItemsRequest(), metadata=metadata)
    items, done = [], threading.Event()

    def pump():
        try:
            for wi in call:
                if wi.HasField("orchestratorRequest") or wi.HasField("activityRequest"):
                    items.append(wi)
        except grpc.RpcError as e:
            items.append(e)
        finally:
            done.set()

    threading.Thread(target=pump, daemon=True).start()
    return call, items, done


def start_raw(stub, name: str, metadata=None) -> str:
    iid = "sec-" + uuid.uuid4().hex
    stub.StartInstance(pb.CreateInstanceRequest(instanceId=iid, name=name), metadata=metadata, timeout=10)
    return iid


def finish(stub, wi, metadata=None, **kw):
    done = pb.OrchestratorAction(id=0, completeOrchestration=pb.CompleteOrchestrationAction(
        orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED))
    req = pb.OrchestratorResponse(instanceId=kw.get("iid", wi.orchestratorRequest.instanceId),
                                  completionToken=kw.get("token", wi.completionToken), actions=[done])
    return stub.CompleteOrchestratorTask(req, metadata=metadata, timeout=10)


def test_sighup_rotates_token_with_a_stream_open(server_factory, tmp_path):
    old, new = "old-" + uuid.uuid4().hex, "new-" + uuid.uuid4().hex
    tokens = token_file(tmp_path / "tokens", old)
    server = server_factory.start("--auth-token-file", str(tokens), *SHORT_DRAIN)
    ch = grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
    stub = raw_stub_for(ch)
    md_old, md_new = [("authorization", f"Bearer {old}")], [("authorization", f"Bearer {new}")]
    call, items, done = open_work_stream(stub, md_old)
    iid1 = start_raw(stub, "Rot", md_old)
    wait_until(lambda: items, WAIT_S, "a work item on the stream opened with the old token")
    assert refused(lambda: start_raw(stub, "Rot", md_new)).code() == grpc.StatusCode.UNAUTHENTICATED

    # Rotation, step 1: both tokens; step 2: only the new one.
    token_file(tokens, old, new)
    sighup(server, "old+new")
    start_raw(stub, "Rot", md_new)
    token_file(tokens, new)
    sighup(server, "new only")
    assert refused(lambda: start_raw(stub, "Rot", md_old)).code() == grpc.StatusCode.UNAUTHENTICATED
    # A broken file on SIGHUP keeps the tokens in force.
    token_file(tokens)
    sighup(server, "empty file")
    assert "event=reload_failed what=auth_token_file" in server.stderr_text()
    iid3 = start_raw(stub, "Rot", md_new)

    # The stream authorised with the old token was not dropped: it still receives work (iid3 was started after
    # the rotation), and the work completes with calls carrying the new token.
    wait_until(lambda: any(not isinstance(w, grpc.RpcError) and w.orchestratorRequest.instanceId == iid3
                           for w in items), WAIT_S, "the post-rotation work item on the old stream")
    assert not done.is_set()
    first = items[0]
    assert first.orchestratorRequest.instanceId == iid1
    finish(stub, first, md_new)
    st = stub.GetInstance(pb.GetInstanceRequest(instanceId=iid1), metadata=md_new, timeout=10)
    assert st.orchestrationState.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED
    call.cancel()


def served_certificate(port: int, ca: Path, cert: Path, key: Path) -> bytes:
    """The DER certificate taskhubd presents to a new connection (a plain TLS handshake with the ssl module)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(str(cert), str(key))
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return t.getpeercert(binary_form=True)


def der(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text())


def test_sighup_rotates_certificate_with_a_stream_open(server_factory, pki, tmp_path, secured_channel):
    live = tmp_path / "live"
    live.mkdir()
    (live / "tls.pem").write_bytes(rd(pki / "server.pem"))
    (live / "tls.key").write_bytes(rd(pki / "server.key"))
    server = server_factory.start("--tls-cert", str(live / "tls.pem"), "--tls-key", str(live / "tls.key"),
                                  "--tls-client-ca", str(pki / "ca.pem"), *SHORT_DRAIN)
    client_files = (pki / "ca.pem", pki / "client.pem", pki / "client.key")
    ca, cert, key = "ca.pem", "client.pem", "client.key"
    assert served_certificate(server.port, *client_files) == der(pki / "server.pem")
    stub = raw_stub_for(secured_channel(localhost(server), ca, None, cert, key))
    call, items, done = open_work_stream(stub)
    iid1 = start_raw(stub, "CertRot")
    wait_until(lambda: items, WAIT_S, "a work item over the first certificate")

    # Rotate to a self-signed certificate: new connections get it (clients trusting only the CA now fail),
    # the open connection and its stream go on.
    (live / "tls.pem").write_bytes(rd(pki / "self.pem"))
    (live / "tls.key").write_bytes(rd(pki / "self.key"))
    sighup(server, "self-signed certificate")
    assert served_certificate(server.port, *client_files) == der(pki / "self.pem")
    e = refused(lambda: raw_stub_for(secured_channel(localhost(server), ca, None, cert, key))
                .GetInstance(pb.GetInstanceRequest(instanceId=iid1), timeout=10))
    assert e.code() == grpc.StatusCode.UNAVAILABLE
    stub2 = raw_stub_for(secured_channel(localhost(server), "self.pem", None, cert, key))
    iid2 = start_raw(stub2, "CertRot")
    wait_until(lambda: any(w.orchestratorRequest.instanceId == iid2 for w in items if not isinstance(w, Exception)),
               WAIT_S, "work started after the rotation, on the stream opened before it")
    assert not done.is_set()
    finish(stub, items[0])

    # A key that does not match its certificate is refused on SIGHUP; the certificate in force stays.
    (live / "tls.key").write_bytes(rd(pki / "server2.key"))
    sighup(server, "mismatched key")
    assert "event=reload_failed what=tls" in server.stderr_text()
    assert "does not belong to the certificate" in server.stderr_text()
    assert served_certificate(server.port, *client_files) == der(pki / "self.pem")
    st = stub2.GetInstance(pb.GetInstanceRequest(instanceId=iid1), timeout=10)
    assert st.orchestrationState.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED
    call.cancel()


def run_taskhubd(args, tmp_path, timeout=60, umask=None):
    binary = os.environ["TASKHUBD_BIN"]
    return subprocess.Popen([binary, "--data-dir", str(tmp_path / "d"), "--ops-listen", "off", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0"])
def test_insecure_listen_beyond_loopback_is_refused(tmp_path, listen):
    p = run_taskhubd(["--listen", listen], tmp_path)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1, err
    assert "reachable from other machines" in err and "--allow-insecure" in err, err


def test_loopback_names_need_no_credentials(server_factory):
    """A name that resolves to loopback only is as private as 127.0.0.1."""
    server = server_factory.start("--listen", "localhost:0")
    assert server.port > 0


@pytest.mark.parametrize("extra", [["--allow-insecure"], ["--auth-token-file", "TOKENS"], ["TLS"]])
def test_listen_beyond_loopback_with_tls_token_or_consent(server_factory, tmp_path, pki, extra):
    if extra == ["TLS"]:
        extra = ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")]
    if "TOKENS" in extra:
        extra = ["--auth-token-file", str(token_file(tmp_path / "tokens", "t-" + uuid.uuid4().hex))]
    server = server_factory.start("--listen", "0.0.0.0:0", *extra)
    assert server.port > 0


def test_tls_mistakes_fail_at_start(tmp_path, pki):
    cases = [
        (["--tls-cert", str(pki / "server.pem")], "--tls-cert and --tls-key go together"),
        (["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "client.key")], "does not belong"),
        (["--tls-cert", str(pki / "server.key"), "--tls-key", str(pki / "server.key")], "not a PEM certificate"),
        (["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
          "--tls-client-ca", str(tmp_path / "missing.pem")], "missing.pem"),
        (["--tls-client-ca", str(pki / "ca.pem")], "needs --tls-cert"),
        (["--auth-token-file", str(tmp_path / "nope")], "nope"),
    ]
    for args, want in cases:
        p = run_taskhubd(["--listen", "127.0.0.1:0", *args], tmp_path)
        _, err = p.communicate(timeout=60)
        assert p.returncode != 0 and want in err, (args, p.returncode, err)


def test_unix_socket_is_owner_only(server_factory, tmp_path):
    sock = tmp_path / "th.sock"
    r, w = os.pipe()
    binary = os.environ["TASKHUBD_BIN"]
    err = open(tmp_path / "unix.stderr", "wb")
    p = subprocess.Popen([binary, "--listen", f"unix:{sock}", "--data-dir", str(tmp_path / "d"),
                          "--ops-listen", "off", "--ready-fd", str(w)],
                         stdout=subprocess.DEVNULL, stderr=err, pass_fds=(w,),
                         preexec_fn=lambda: os.umask(0))  # the loosest umask: taskhubd must not rely on it
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], 60)
        assert ready and os.read(r, 64).strip() == b"0"  # unix: reports port 0 once serving
        mode = stat.S_IMODE(os.stat(sock).st_mode)
        assert stat.S_ISSOCK(os.stat(sock).st_mode)
        assert mode & 0o077 == 0, oct(mode)
        stub = raw_stub_for(grpc.insecure_channel(f"unix:{sock}", options=CHANNEL_OPTIONS))
        stub.Hello(empty_pb2.Empty(), timeout=10)
    finally:
        os.close(r)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
        err.close()


def hamming(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))


def test_completion_tokens_cannot_be_guessed_or_redirected(server_factory):
    server = server_factory.start(*SHORT_DRAIN)
    ch = grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
    stub = raw_stub_for(ch)
    call, items, done = open_work_stream(stub)
    ids = [start_raw(stub, "Tok") for _ in range(3)]
    wait_until(lambda: len(items) >= 3, WAIT_S, "three work items")
    by_id = {w.orchestratorRequest.instanceId: w for w in items}
    toks = [by_id[i].completionToken for i in ids]
    # 128 random bits each: consecutive tokens share nothing a guess could use (a counter would differ in a
    # digit or two).
    for a, b in [(toks[0], toks[1]), (toks[1], toks[2])]:
        assert len(a) >= 33 and hamming(a, b) >= 16, (a, b)

    # A guessed neighbour of a real token is unknown, and does not touch the real work item.
    t0 = toks[0]
    guess = t0[:-1] + ("0" if t0[-1] != "0" else "1")
    e = refused(lambda: finish(stub, by_id[ids[0]], token=guess))
    assert e.code() == grpc.StatusCode.NOT_FOUND and "unknown or expired completion token" in e.details()
    # A real token naming another instance is refused, and applies nothing to either.
    e = refused(lambda: finish(stub, by_id[ids[1]], iid=ids[2]))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not match" in e.details(), e
    st2 = stub.GetInstance(pb.GetInstanceRequest(instanceId=ids[2]), timeout=10)
    assert st2.orchestrationState.orchestrationStatus != pb.ORCHESTRATION_STATUS_COMPLETED
    # The rightful holder's completion is applied (not answered OK and dropped).
    finish(stub, by_id[ids[0]])
    st0 = stub.GetInstance(pb.GetInstanceRequest(instanceId=ids[0]), timeout=10)
    assert st0.orchestrationState.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED
    call.cancel()
