"""How a broker decides that its instance spans hosts (PMI_process_mapping), the
mapping the job shell gives (one node per host, not per shell), the TCP address
it binds (tbon.interface-hint), and the expansion of [bootstrap] hosts."""

import pytest

from flux_launch.broker.boot import BootError, interface_address, spans_hosts
from flux_launch.broker.boot_config import expand_hosts
from flux_launch.proto.pmi1 import mapping_nodes, process_mapping_by_host


@pytest.mark.parametrize("text,size,nodes", [
    ("(vector,(0,1,4))", 4, [0, 0, 0, 0]),
    ("(vector,(0,2,2))", 4, [0, 0, 1, 1]),
    ("(vector,(0,4,1))", 8, [0, 1, 2, 3, 0, 1, 2, 3]),
    ("(vector,(0,1,2),(1,1,1))", 3, [0, 0, 1]),
    ("(vector, (0,2,1))", 2, [0, 1]),
])
def test_mapping_nodes(text, size, nodes):
    assert mapping_nodes(text, size) == nodes


@pytest.mark.parametrize("text", ["", "(vector)", "(vector,(0,0,1))", "(vector,(a,1,1))", "(0,1,1)"])
def test_mapping_nodes_rejects_garbage(text):
    with pytest.raises(ValueError, match="not a PMI process mapping"):
        mapping_nodes(text, 2)


@pytest.mark.parametrize("counts,hosts,text", [
    ([2, 2], ["a", "a"], "(vector,(0,1,4))"),
    ([2, 2, 2], ["a", "b", "c"], "(vector,(0,3,2))"),
    ([2, 1], ["a", "b"], "(vector,(0,1,2),(1,1,1))"),
    ([1, 1, 1], ["a", "b", "a"], "(vector,(0,2,1),(0,1,1))"),
    ([2, 2], [], "(vector,(0,2,2))"),  # no host names: a node per shell
    ([0, 3], ["a", "b"], "(vector,(0,1,3))"),
])
def test_process_mapping_by_host(counts, hosts, text):
    assert process_mapping_by_host(counts, hosts) == text


class _PMI:
    """What spans_hosts asks of a PMI client: one get."""

    def __init__(self, mapping):
        self.mapping = mapping

    def get(self, key):
        assert key == "PMI_process_mapping"
        if self.mapping is None:
            raise KeyError(key)
        return self.mapping


def test_spans_hosts():
    assert not spans_hosts(_PMI("(vector,(0,1,4))"), 4)
    assert spans_hosts(_PMI("(vector,(0,4,1))"), 4)
    assert spans_hosts(_PMI("(vector,(0,1,2),(1,1,2))"), 4)
    assert spans_hosts(_PMI(None), 2)  # a launcher that says nothing: TCP
    assert spans_hosts(_PMI("garbage"), 2)


def test_interface_address():
    assert interface_address("lo") == "127.0.0.1"
    assert interface_address("10.1.2.3") == "10.1.2.3"
    assert interface_address("hostname")  # whatever the name resolves to
    addr = interface_address(None)
    assert addr.count(".") == 3


def test_expand_hosts():
    hosts = expand_hosts({"default_port": 8050, "default_bind": "tcp://eth0:%p", "default_connect": "tcp://%h:%p",
                          "hosts": [{"host": "test0", "bind": "tcp://en4:9001", "connect": "tcp://mgmt:9001"},
                                    {"host": "test[1-2]"}]})
    assert hosts == [{"host": "test0", "bind": "tcp://en4:9001", "connect": "tcp://mgmt:9001"},
                     {"host": "test1", "bind": "tcp://eth0:8050", "connect": "tcp://test1:8050"},
                     {"host": "test2", "bind": "tcp://eth0:8050", "connect": "tcp://test2:8050"}]
    assert expand_hosts({}) == []


@pytest.mark.parametrize("boot,expect", [
    ({"hosts": "node0"}, "must be an array"),
    ({"hosts": [{"bind": "x"}]}, "needs a host key"),
    ({"default_port": "x", "hosts": []}, "default_port must be a port number"),
    ({"default_port": 70000, "hosts": []}, "default_port must be a port number"),
    ({"hosts": [{"host": "a", "bind": 5}]}, "bind must be a ZeroMQ URI string"),
    ([1], "must be a table"),
])
def test_expand_hosts_errors(boot, expect):
    with pytest.raises(BootError, match=expect):
        expand_hosts(boot)


def test_read_cert_keeps_keys_with_hash(tmp_path):
    """Z85 has '#' in its alphabet: only whole lines are comments."""
    from flux_launch.broker.boot_config import read_cert

    pub, sec = "#" * 5 + "a" * 35, "b" * 34 + "#x#y#z"
    path = tmp_path / "cert"
    path.write_text(f'#  a comment\nmetadata\n    name = "x"\ncurve\n    public-key = "{pub}"\n'
                    f'    secret-key = "{sec}"\n')
    path.chmod(0o600)
    assert read_cert(str(path)) == (pub.encode(), sec.encode())
