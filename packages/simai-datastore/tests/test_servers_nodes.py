"""Servers across nodes: one redis-server per listed host, attach, ACL users and TLS;
one node-local staging directory per node; stores sized by the allocation's nodes.

The nodes are loopback addresses (127.0.0.11, 127.0.0.12: the whole 127/8 routes to
``lo``), as on simai's virtual cluster; real redis-servers bind to each of them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import subprocess

import pytest

from simai.datastore import DataStore, ServerManager

try:
    import redis
except ImportError:  # the node-local and config tests below need no Redis
    redis = None

_no_redis = shutil.which("redis-server") is None or redis is None


def needs_redis(test):
    return pytest.mark.redis(
        pytest.mark.skipif(_no_redis, reason="redis-server or simai-datastore[redis] missing")(test)
    )


NODES = ("127.0.0.11", "127.0.0.12")


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _listed(hosts=NODES) -> str:
    return ",".join(f"{h}:{_free_port(h)}" for h in hosts)


def _admin(address: str, password: str, **kw) -> redis.Redis:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    host, port = address.rsplit(":", 1)
    return redis.Redis(
        host=host,
        port=int(port),
        password=password,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),
        **kw,
    )


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


@needs_redis
def test_one_server_per_listed_node_bound_to_its_address_and_all_stop(monkeypatch):
    wanted = _listed()
    with ServerManager("per-node", type="redis", server_address=wanted) as sm:
        info = sm.get_server_info()
        cfg = info["config"]
        pids = sm.pids()
        assert cfg["server_address"] == wanted and cfg["attach"] and len(pids) == 2
        for address in wanted.split(","):
            host = address.rsplit(":", 1)[0]
            client = _admin(address, cfg["password"])
            assert client.config_get("bind") == {"bind": host}
            client.close()
            port = int(address.rsplit(":", 1)[1])
            with pytest.raises(redis.ConnectionError):  # only the node's own address answers
                _admin(f"127.0.0.1:{port}", cfg["password"], socket_connect_timeout=2).ping()

        # a rank on each node stages through its own node's server only
        for node in NODES:
            monkeypatch.setenv("SIMAI_NODE", node)
            DataStore(f"w-{node}", info, is_colocated=True).stage_write(f"field-{node}", node)
        for address in wanted.split(","):
            node = address.rsplit(":", 1)[0]
            assert _admin(address, cfg["password"]).keys("field-*") == [f"field-{node}".encode()]
            monkeypatch.setenv("SIMAI_NODE", node)
            near = DataStore(f"r-{node}", info, is_colocated=True)
            assert near.config["server_address"] == address
            assert near.stage_read(f"field-{node}", timeout=5) == node
        monkeypatch.delenv("SIMAI_NODE")
        both = DataStore("all", info)  # without is_colocated: keys shard over every node
        assert sorted(both.transport.keys("field-")) == [f"field-{n}" for n in NODES]
    assert all(_gone(pid) for pid in pids)


@needs_redis
def test_launch_prefix_starts_every_server_with_its_host_and_no_password_on_the_command_line(
    tmp_path,
):
    # stands in for ssh/mpiexec: notes the node it was given, then runs the command
    launched = tmp_path / "launched"
    prefix = ["sh", "-c", f'echo "$0" >> {launched}; exec "$@"', "{host}"]
    with ServerManager(
        "prefixed", type="redis", server_address=_listed(), launch_prefix=prefix
    ) as sm:
        password = sm.get_server_info()["config"]["password"]
        assert launched.read_text().split() == list(NODES)
        for pid in sm.pids():
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert password.encode() not in f.read()
        ds = DataStore.from_url(sm.get_url())
        ds.stage_write("k", 1)
        assert ds.stage_read("k") == 1
        pids = sm.pids()
    assert all(_gone(pid) for pid in pids)


@needs_redis
def test_a_host_of_another_machine_needs_a_launch_prefix_or_attach():
    sm = ServerManager("far", type="redis", server_address="node-x.invalid:6875,127.0.0.11:6875")
    with pytest.raises(ValueError, match=r"node-x\.invalid is not this machine.*launch_prefix"):
        sm.start_server()
    assert not sm.is_running()


@needs_redis
def test_attach_is_explicit_and_leaves_the_server_running():
    with ServerManager("owner", type="redis", server_address=_listed(NODES[:1])) as owner:
        cfg = owner.get_server_info()["config"]
        address, password = cfg["server_address"], cfg["password"]
        with pytest.raises(RuntimeError, match=f"cannot listen on {address}"):
            ServerManager("again", type="redis", server_address=address).start_server()
        user = ServerManager(
            "user", type="redis", server_address=address, password=password, attach=True
        )
        user.start_server()
        DataStore("w", user.get_server_info()).stage_write("k", "v")
        user.stop_server()
        assert owner.is_running()
        assert DataStore.from_url(owner.get_url()).stage_read("k") == "v"


@needs_redis
def test_acl_user_name_is_kept_from_the_url_to_the_connection():
    with ServerManager("acl", type="redis", username="alice", bind=NODES[0]) as sm:
        url = sm.get_url()
        assert url.startswith("redis://alice:")
        ds = DataStore.from_url(url)
        assert ds.config["username"] == "alice"
        ds.stage_write("k", 7)
        cfg = sm.get_server_info()["config"]
        admin = _admin(cfg["server_address"], cfg["password"])
        assert "alice" in {c["user"] for c in admin.client_list()}
        assert admin.acl_whoami() == "default"


def _tls_supported() -> bool:
    out = subprocess.run(
        ["redis-server", "-"],
        input=b"port 0\ntls-port 0\n",
        capture_output=True,
        timeout=10,
    )
    return b"Bad directive" not in out.stdout + out.stderr


def _throwaway_ca_and_cert(directory) -> tuple[str, str, str]:
    x509 = pytest.importorskip(
        "cryptography.x509", reason="cryptography makes the test certificate"
    )
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    span = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(hours=1))

    def cert(subject, key, issuer, issuer_key, *extensions):
        b = x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        b = b.public_key(key.public_key()).serial_number(x509.random_serial_number())
        b = b.not_valid_before(span[0]).not_valid_after(span[1])
        for ext, critical in extensions:
            b = b.add_extension(ext, critical=critical)
        return b.sign(issuer_key, hashes.SHA256())

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert(
        name("simai test CA"),
        ca_key,
        name("simai test CA"),
        ca_key,
        (x509.BasicConstraints(ca=True, path_length=None), True),
    )
    sans = [x509.IPAddress(ipaddress.ip_address(h)) for h in ("127.0.0.1", *NODES)]
    leaf = cert(
        name("simai node"), key, ca.subject, ca_key, (x509.SubjectAlternativeName(sans), False)
    )
    paths = [os.path.join(directory, n) for n in ("ca.pem", "node.pem", "node.key")]
    pem = serialization.Encoding.PEM
    blobs = [
        ca.public_bytes(pem),
        leaf.public_bytes(pem),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    ]
    for path, blob in zip(paths, blobs, strict=True):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
    return tuple(paths)


@needs_redis
def test_tls_servers_we_start_and_rediss_urls_with_ca_cert_and_key(tmp_path):
    if not _tls_supported():
        pytest.skip("this redis-server is built without TLS")
    ca, cert, key = _throwaway_ca_and_cert(tmp_path)
    tls = dict(tls=True, tls_ca_cert=ca, tls_cert=cert, tls_key=key)
    with ServerManager("tls", type="redis", server_address=_listed(NODES[:1]), **tls) as sm:
        url = sm.get_url()
        assert url.startswith("rediss://:")
        ds = DataStore.from_url(url)
        ds.stage_write("k", [1, 2])
        assert ds.stage_read("k") == [1, 2]
        cfg = sm.get_server_info()["config"]
        with pytest.raises(redis.ConnectionError):  # the port speaks TLS only
            _admin(cfg["server_address"], cfg["password"], socket_connect_timeout=2).ping()
        # a client that trusts another CA is refused: the certificate is checked
        (tmp_path / "other").mkdir()
        other_ca = _throwaway_ca_and_cert(tmp_path / "other")[0]
        wrong = {**sm.get_server_info(), "config": {**cfg, "tls_ca_cert": other_ca}}
        with pytest.raises(Exception, match=r"(?i)certificate"):
            DataStore("wrong-ca", wrong).stage_read("k", timeout=2)


@needs_redis
def test_redis_cluster_across_three_nodes_one_master_bound_to_each():
    nodes = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
    wanted = _listed(nodes)
    with ServerManager("spread", type="redis", server_address=wanted, is_clustered=True) as sm:
        info = sm.get_server_info()
        ds = DataStore("w", info)
        for i in range(30):
            ds.stage_write(f"k{i}", i)
        cfg = info["config"]
        held = {}
        for address in wanted.split(","):
            admin = _admin(address, cfg["password"])
            assert admin.config_get("bind") == {"bind": address.rsplit(":", 1)[0]}
            assert admin.cluster("INFO")["cluster_known_nodes"] == "3"
            held[address] = admin.dbsize()
        assert all(held.values())  # the keys spread over every node's master
        assert [ds.stage_read(f"k{i}") for i in range(30)] == list(range(30))


@needs_redis
def test_config_errors_name_the_field():
    from pydantic import ValidationError

    from simai.datastore import server_registry

    with pytest.raises(ValidationError, match="nservers=3, but server_address lists 2"):
        server_registry.create_config("redis", server_address=_listed(), nservers=3)
    with pytest.raises(ValidationError, match="attach=True needs server_address"):
        server_registry.create_config("redis", attach=True)
    with pytest.raises(ValidationError, match="tls_cert and tls_key"):
        server_registry.create_config("redis", tls=True, tls_cert="/c.pem")
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        ServerManager("no-cert", type="redis", tls=True).start_server()


@needs_redis
def test_urls_keep_the_acl_user_and_tls_files():
    from simai.datastore.registry import config_from_url

    cfg = config_from_url("rediss://alice:p%40ss@127.0.0.11:6380?ssl_ca_certs=/ca.pem")
    assert (cfg.username, cfg.password, cfg.tls, cfg.tls_ca_cert) == (
        "alice",
        "p@ss",
        True,
        "/ca.pem",
    )
    assert cfg.attach and config_from_url(cfg.to_url()) == cfg
    assert config_from_url("redis://:pw@127.0.0.11:6380").username is None


# ---------------------------------------------------------------- node-local per node


def _files_under(directory) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), directory)
        for d, _, files in os.walk(directory)
        for f in files
        if not f.startswith(".")
    )


def test_node_local_makes_one_private_directory_per_node_and_a_rank_uses_its_own(
    tmp_path, monkeypatch
):
    root = tmp_path / "stage"
    root.mkdir()
    (root / "theirs").write_text("not ours to remove")
    with ServerManager(
        "per-node", type="node-local", server_address=str(root), nodes=list(NODES)
    ) as sm:
        info = sm.get_server_info()
        assert info["config"]["nodes"] == list(NODES)
        for node in NODES:
            assert (root / node).stat().st_mode & 0o777 == 0o700
        for node in NODES:
            monkeypatch.setenv("SIMAI_NODE", node)
            DataStore(f"rank-{node}", info, is_colocated=True).stage_write("field", node)
        for node in NODES:
            monkeypatch.setenv("SIMAI_NODE", node)
            assert DataStore(f"reader-{node}", info).stage_read("field", timeout=0) == node
            # the key and its writer's record, on this node only
            value, owner = _files_under(root / node)
            assert value.endswith("/field") and owner.startswith(f"simai-owners/rank-{node}/")
        # the URL carries the nodes: a rank given only the URL finds its directory too
        url = sm.get_url()
        assert DataStore.from_url(url).stage_read("field", timeout=0) == NODES[-1]
        monkeypatch.setenv("SIMAI_NODE", "127.0.0.99")
        with pytest.raises(Exception, match=r"SIMAI_NODE='127\.0\.0\.99' is not one of"):
            DataStore("lost", info).stage_write("k", 1)
    assert sorted(os.listdir(root)) == ["theirs"]  # only the node directories went


def test_node_local_per_node_directories_refuse_what_was_planted(tmp_path):
    from simai.datastore import UnsafePathError

    root = tmp_path / "stage"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, root / NODES[1])  # a link where a node's directory goes
    sm = ServerManager("planted", type="node-local", server_address=str(root), nodes=list(NODES))
    with pytest.raises(UnsafePathError, match=NODES[1]):
        sm.start_server()
    assert os.listdir(elsewhere) == [] and sorted(os.listdir(root)) == [NODES[1]]
    os.unlink(root / NODES[1])
    (root / NODES[1]).mkdir(mode=0o777)
    os.chmod(root / NODES[1], 0o777)  # a directory anyone could plant files in
    with pytest.raises(UnsafePathError, match="world-writable"):
        sm.start_server()
    os.rmdir(root / NODES[1])
    with sm:  # a second manager on the same node directories is refused
        other = ServerManager("again", type="node-local", server_address=str(root), nodes=NODES[:1])
        with pytest.raises(Exception, match="in use by another ServerManager"):
            other.start_server()
    with pytest.raises(ValueError, match=r"node-x\.invalid is not this machine.*launch_prefix"):
        ServerManager("far", type="node-local", nodes=["node-x.invalid"]).start_server()


STARTER = """
import sys
from simai.datastore import ServerManager

prefix = ["sh", "-c", 'echo "$0" >> ' + sys.argv[2] + '; exec "$@"', "{host}"]
sm = ServerManager("nl", type="node-local", nodes=sys.argv[1].split(","), launch_prefix=prefix)
print(sm.start_server()["config"]["server_address"], flush=True)
sys.stdin.read()  # until the test kills us
"""


def test_node_local_through_a_launcher_and_gone_when_the_starter_is_killed(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    launched = tmp_path / "launched"
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, ",".join(NODES), str(launched)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        root = starter.stdout.readline().strip()
        assert launched.read_text().split() == list(NODES)  # one launch per node
        assert sorted(os.listdir(root)) == list(NODES)
        assert all(os.stat(os.path.join(root, n)).st_mode & 0o777 == 0o700 for n in NODES)
    finally:
        starter.send_signal(signal.SIGKILL)  # no chance to clean up: the nodes do it
        starter.wait(10)
    for _ in range(200):  # each node sees its stdin end and removes its directory
        if not os.path.exists(root):
            break
        time.sleep(0.05)
    assert not os.path.exists(root)


def test_node_local_through_a_launcher_never_takes_over_a_directory_that_exists(tmp_path):
    from simai.datastore import BackendUnavailableError

    root = tmp_path / "shm"
    (root / NODES[1]).mkdir(parents=True, mode=0o700)
    (root / NODES[1] / "someone-elses").write_text("x")
    prefix = ["sh", "-c", 'exec "$@"', "{host}"]
    sm = ServerManager(
        "nl", type="node-local", server_address=str(root), nodes=list(NODES), launch_prefix=prefix
    )
    with pytest.raises(BackendUnavailableError, match=rf"{NODES[1]} on node {NODES[1]}: .*exists"):
        sm.start_server()
    # the node that did start removed its directory; the one found there is untouched
    assert os.listdir(root) == [NODES[1]]
    assert os.listdir(root / NODES[1]) == ["someone-elses"]


def test_shared_stores_add_shards_per_node_and_dragon_sizes_per_node():
    from pydantic import ValidationError

    from simai.datastore import server_registry

    nodes = [f"n{i}" for i in range(8)]
    assert server_registry.create_config("filesystem").nshards == 64
    assert server_registry.create_config("filesystem", nodes=nodes).nshards == 128
    assert server_registry.create_config("filesystem", nodes=nodes[:2]).nshards == 64
    assert server_registry.create_config("filesystem", nodes=nodes, nshards=8).nshards == 8
    huge = [f"n{i}" for i in range(1000)]
    assert server_registry.create_config("filesystem", nodes=huge).nshards == 4096
    # node-local: every node has its own directory, so its shards do not grow
    assert server_registry.create_config("node-local", nodes=nodes).nshards == 16
    with pytest.raises(ValidationError, match=r"bad node name '\.\./x'"):
        server_registry.create_config("node-local", nodes=["../x"])
    with pytest.raises(ValidationError, match="launch_prefix: filesystem keeps one shared"):
        server_registry.create_config("filesystem", nodes=nodes, launch_prefix=["ssh", "{host}"])

    cfg = server_registry.create_config(
        "dragon", mem_per_node=256 << 20, nodes="n1,n2,n3", managers_per_node=2
    )
    assert (cfg.n_nodes, cfg.total_mem) == (3, 3 * (256 << 20))
    assert server_registry.config_from_dict(cfg.model_dump()) == cfg  # what a rank rebuilds
    with pytest.raises(
        ValidationError, match=r"total_mem=8388608, but mem_per_node \* n_nodes = 16777216"
    ):
        server_registry.create_config("dragon", mem_per_node=8 << 20, n_nodes=2, total_mem=8 << 20)
    with pytest.raises(ValidationError, match="n_nodes=2, but nodes lists 3"):
        server_registry.create_config("dragon", nodes=["a", "b", "c"], n_nodes=2)
