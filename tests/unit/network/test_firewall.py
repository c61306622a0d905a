"""nftables rules as data: the scripts for each mode, and removal computed from the listed tables."""

from __future__ import annotations

import json
import random
from pathlib import Path

from pyvirt.conf.network import Network
from pyvirt.conf.network_validate import apply_defaults, validate_network
from pyvirt.conf.network_xml import parse_network_xml
from pyvirt.network.firewall import (
    add_script,
    build_rules,
    chain_id,
    parse_table_json,
    remove_script,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "network"


def load(name: str) -> Network:
    net = parse_network_xml((DATA / name).read_text())
    apply_defaults(net, bridge_taken=lambda _b: False, rng=random.Random(0))
    validate_network(net)
    return net


def test_nat_rules() -> None:
    net = load("nat.xml")
    cid = chain_id(net)
    assert cid == "n81ff0d90c91e"
    rules = build_rules(net)
    assert rules.filter_chains[f"{cid}_in"] == [
        'iifname "pvbr0" accept',
        "ip daddr 192.168.122.0/24 ct state established,related accept",
        "reject",
    ]
    assert rules.filter_chains[f"{cid}_out"] == ["ip saddr 192.168.122.0/24 accept", "reject"]
    assert rules.nat_chains[f"{cid}_nat"][-2:] == [
        "meta l4proto { tcp, udp } masquerade to :1024-65535",
        "masquerade",
    ]
    script = add_script(rules)
    assert "add rule inet pyvirt forward oifname vmap @to_bridge" in script
    assert f'add element inet pyvirt to_bridge {{ "pvbr0" : jump {cid}_in }}' in script
    assert f"add rule ip pyvirt_nat postrouting ip saddr 192.168.122.0/24 jump {cid}_nat" in script
    assert "flush ruleset" not in script and "flush table" not in script


def test_nat_dev_ports_and_addresses() -> None:
    rules = build_rules(load("nat-full.xml"))
    cid = rules.chain_id
    assert 'oifname "eth1" ip saddr 10.20.0.0/24 accept' in rules.filter_chains[f"{cid}_out"]
    assert 'iifname "eth1" ip6 daddr fd00:20::/64 accept' in rules.filter_chains[f"{cid}_in"]
    assert (
        'oifname "eth1" meta l4proto { tcp, udp } snat to 203.0.113.10-203.0.113.20:20000-30000'
        in rules.nat_chains[f"{cid}_nat"]
    )


def test_route_accepts_new_inbound() -> None:
    rules = build_rules(load("route.xml"))
    assert "ip daddr 10.30.0.0/24 accept" in rules.filter_chains[f"{rules.chain_id}_in"]
    assert not rules.nat_chains


def test_isolated_rejects_everything_forwarded() -> None:
    rules = build_rules(load("isolated.xml"))
    assert rules.filter_chains[f"{rules.chain_id}_in"] == ['iifname "pvbr4" accept', "reject"]
    assert rules.filter_chains[f"{rules.chain_id}_out"] == ["reject"]


def test_open_and_bridge_have_no_rules() -> None:
    assert build_rules(load("open.xml")).empty
    assert build_rules(load("bridge.xml")).empty
    assert add_script(build_rules(load("open.xml"))) == ""


def _listing(elements: list[tuple[str, str]], jumps: list[tuple[int, str]]) -> str:
    items: list[dict[str, object]] = [{"metainfo": {}}, {"table": {"name": "pyvirt"}}]
    items.append({"chain": {"name": "forward"}})
    for _key, target in elements:
        items.append({"chain": {"name": target}})
    items.append({"map": {"name": "to_bridge", "elem": [[k, {"jump": {"target": t}}] for k, t in elements]}})
    for handle, target in jumps:
        items.append(
            {"rule": {"chain": "postrouting", "handle": handle, "expr": [{"jump": {"target": target}}]}}
        )
    return json.dumps({"nftables": items})


def test_remove_only_own_elements_and_chains() -> None:
    state = parse_table_json(_listing([("pvbr0", "naaaa_in"), ("pvbr1", "nbbbb_in")], [(7, "naaaa_nat")]))
    script = remove_script("naaaa", state, None)
    assert 'delete element inet pyvirt to_bridge { "pvbr0" }' in script
    assert "delete chain inet pyvirt naaaa_in" in script
    assert "delete rule inet pyvirt postrouting handle 7" in script
    assert "nbbbb" not in script and "delete table" not in script


def test_last_network_removes_table() -> None:
    state = parse_table_json(_listing([("pvbr0", "naaaa_in")], []))
    assert remove_script("naaaa", state, None).endswith("delete table inet pyvirt\n")
    assert remove_script("naaaa", None, None) == ""
