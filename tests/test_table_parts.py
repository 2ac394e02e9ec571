"""`TableInParts`, the flow table a datapath changes part by part (a local endpoint, another host's record),
against the whole table its pipeline computes (vxlan's): after any sequence of endpoints and records
coming and going, including records that share a MAC or an address with a local endpoint or each other,
the table is the whole table of the view, and each change computed only the flows of what changed."""

from __future__ import annotations

import random

import netaddr

from acsnet.plugins.segments.datapath import HostView, RemoteChange
from acsnet.plugins.segments.model import SegmentEndpoint, SegmentNetwork, SegmentRecord
from acsnet.plugins.segments.table_parts import TableInParts
from acsnet.plugins.vxlan.agent import VXLAN_TABLE_PARTS, vxlan_endpoint_flows, vxlan_table

NETWORKS = (SegmentNetwork("a" * 64, 100, netaddr.IPNetwork("10.1.0.0/24"), netaddr.IPAddress("10.1.0.1"), None, 1450),
            SegmentNetwork("b" * 64, 200, netaddr.IPNetwork("10.2.0.0/24"), None, None, 1450))
LOCAL = (SegmentEndpoint("e1" * 32, "a" * 64, 100, "10.1.0.5", 24, "02:00:00:00:00:05", 0.0),
         SegmentEndpoint("e2" * 32, "b" * 64, 200, "10.2.0.6", 24, "02:00:00:00:00:06", 0.0))


def view_of(records: dict, local=LOCAL) -> HostView:
    remote = tuple((vni, tuple(sorted((r for (v, _), r in records.items() if v == vni), key=lambda r: (r.ip, r.host, r.endpoint_id))))
                   for vni in (100, 200))
    return HostView("h0", NETWORKS, tuple(local), remote)


def table(flows: list[str]) -> list[str]:
    return sorted(flows)


def test_records_and_local_endpoints_changed_one_by_one_leave_exactly_the_whole_table():
    chooser = random.Random(7)
    records: dict = {}
    local = list(LOCAL)
    flows = TableInParts(VXLAN_TABLE_PARTS)
    applied = {f: None for f in flows.whole(view_of(records))}
    for step in range(400):
        vni = chooser.choice((100, 200))
        # few addresses and MACs, so records share them with each other and a local endpoint (never the
        # router's: the IPAM reserves a network's gateway address)
        ip = f"10.{vni // 100}.0.{chooser.choice((5, 6, 7, 8))}"
        mac = f"02:00:00:00:00:{chooser.choice((5, 6, 7, 8)):02x}"
        ip6 = chooser.choice(("", f"fd00:{vni}::5", f"fd00:{vni}::7"))  # dual-stack or not
        host = chooser.choice(("h1", "h2"))
        present = [k for k in records if k[0] == vni]
        view = None
        own = 0  # flows of the host's own that the change must compute: a new endpoint's, nothing else
        if chooser.random() < 0.15:  # this host's own endpoint comes or goes: its own flows change
            if len(local) > 1 and chooser.random() < 0.5:
                local.pop(chooser.randrange(len(local)))
            elif not any(e.segment == vni and (e.ip == ip or e.mac == mac or (ip6 and e.ip6 == ip6)) for e in local):
                local.append(SegmentEndpoint(f"{step:012x}" + "c" * 52, NETWORKS[vni // 200].network_id, vni, ip, 24, mac, 0.0,
                                             ip6=ip6))  # (the agent refuses an address or MAC held here twice)
                own = len(vxlan_endpoint_flows(local[-1]))
            view = view_of({}, local)
            change = RemoteChange()
        elif present and chooser.random() < 0.45:
            key = chooser.choice(present)
            change = RemoteChange(removed=((vni, records.pop(key)),))
        else:
            record = SegmentRecord(host, "02:aa:00:00:00:01", f"192.0.2.{1 + (host == 'h2')}", ip, mac, f"{step:064x}", ip6)
            records[(vni, record.endpoint_id)] = record
            change = RemoteChange(added=((vni, record),))
        upserts, deletes = flows.change(change, view)
        added = sum(2 + bool(r.ip6) for _vni, r in change.added)
        assert flows.computed == own + added, "only the new endpoint's and the added record's flows are computed"
        by_identity = {f.partition(",actions=")[0].split(",", 1)[1]: f for f in applied}
        for key in deletes:
            by_identity.pop(key)
        for f in upserts:
            by_identity[f.partition(",actions=")[0].split(",", 1)[1]] = f
        applied = {f: None for f in by_identity.values()}
        whole = vxlan_table(view_of(records, local))
        assert table(list(applied)) == table(flows.flows()) == table(whole), f"step {step}"



def test_a_network_that_comes_or_goes_computes_the_networks_flows_again_and_leaves_the_whole_table():
    flows = TableInParts(VXLAN_TABLE_PARTS)
    flows.whole(HostView("h0", NETWORKS[:1], LOCAL[:1], ()))
    for networks, local in ((NETWORKS, LOCAL), (NETWORKS[:1], LOCAL[:1]), (NETWORKS, LOCAL[:1])):
        view = HostView("h0", networks, local, ())
        flows.change(RemoteChange(), view)
        assert sorted(flows.flows()) == sorted(vxlan_table(view))
        networks_only = len(vxlan_table(HostView("h0", networks, (), ())))
        new_endpoint = len(vxlan_endpoint_flows(LOCAL[1])) if local == LOCAL else 0
        assert flows.computed == networks_only + new_endpoint
