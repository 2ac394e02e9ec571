"""acsnet's flow lines as the OpenFlow messages `ovs-ofctl --no-names add-flows` sends for them, byte for
byte: OpenFlow 1.0 with Nicira's extensions (NXM matches, `NXT_FLOW_MOD`), the protocol ovs-ofctl picks
for these flows (`acsnet.ovsctl.openflow`). So a flow sent by `OpenFlowConnection` is the flow ovs-ofctl
would have installed, down to how `dump-flows` prints it; `tests/test_flow_mods.py` holds every kind of
flow the three pipelines emit against what ovs-ofctl sends for it.

Only what the pipelines write is known: a line in another form raises `Unencodable` (the caller then
installs the whole table through ovs-ofctl, which knows everything). The forms:

- `cookie=C,table=T,priority=P[,match],actions=A` (an add, which replaces the actions of a flow with
  the same match and priority) and `delete_strict cookie=C/-1,table=T,priority=P[,match]`;
- matches: `ip`, `ipv6`, `arp`, `icmp6`, `in_port` (a number or LOCAL), `dl_src`, `dl_dst`, `dl_vlan`,
  `vlan_tci=V/M`, `nw_src`, `nw_dst`, `arp_spa`, `arp_tpa` (an address or a prefix), `ipv6_src`,
  `ipv6_dst`, `nd_target` (likewise), `arp_op`, `icmp_type` (after `icmp6`), `tun_id`, `reg0`-`reg15`;
- actions: `output:N`, `LOCAL`, `IN_PORT`, `NORMAL`, `drop`, `resubmit(,T)`, `pop_vlan`,
  `mod_vlan_vid:V`, `dec_ttl`, `move:F[]->G[]` (whole fields) and `set_field:V->F`.

Field numbers, the order of a match's fields and how each action is written are OVS's (`nx-match.c`,
`ofp-actions.c`): a match's fields go in the order `nx_put_raw` writes them, and `set_field` on OpenFlow
1.0 becomes `OFPAT_SET_DL_SRC`/`DST` for Ethernet addresses and `NXAST_REG_LOAD`s of at most 64 bits,
lowest bits first, for the rest.
"""

from __future__ import annotations

import ipaddress
import re
import struct

OFP10_VERSION = 0x01
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY, OFPT_VENDOR = 0, 1, 2, 3, 4
OFPT10_BARRIER_REQUEST, OFPT10_BARRIER_REPLY = 18, 19
NX_VENDOR_ID = 0x00002320
NXT_SET_FLOW_FORMAT, NXT_FLOW_MOD, NXT_FLOW_MOD_TABLE_ID, NXT_SET_ASYNC_CONFIG = 12, 13, 15, 19
NXFF_NXM = 2
OFPFC_ADD, OFPFC_DELETE_STRICT = 0, 4
NO_BUFFER, OFPP_NONE = 0xFFFFFFFF, 0xFFFF
RESERVED_PORTS = {"IN_PORT": 0xFFF8, "TABLE": 0xFFF9, "NORMAL": 0xFFFA, "FLOOD": 0xFFFB, "ALL": 0xFFFC,
                  "CONTROLLER": 0xFFFD, "LOCAL": 0xFFFE}
OFPAT10_OUTPUT, OFPAT10_SET_VLAN_VID, OFPAT10_STRIP_VLAN, OFPAT10_SET_DL_SRC, OFPAT10_SET_DL_DST = 0, 1, 3, 4, 5
OFPAT_VENDOR = 0xFFFF
NXAST_REG_MOVE, NXAST_REG_LOAD, NXAST_RESUBMIT_TABLE, NXAST_DEC_TTL = 6, 7, 14, 18

ETH_TYPE_IP, ETH_TYPE_ARP, ETH_TYPE_IPV6 = 0x0800, 0x0806, 0x86DD
IPPROTO_ICMPV6 = 58


class Unencodable(ValueError):
    """A flow line in a form this module does not write (ovs-ofctl does)."""


class Field:
    """An NXM field: its class, number and width, and how its value is written in a flow line (`kind`:
    mac, ip4, ip6, port or int). The names flow lines give it are the tables below."""

    def __init__(self, nxm_class: int, number: int, n_bytes: int, kind: str):
        self.nxm_class, self.number, self.n_bytes, self.kind = nxm_class, number, n_bytes, kind

    def header(self, masked: bool = False) -> int:
        length = self.n_bytes * 2 if masked else self.n_bytes
        return (self.nxm_class << 16) | (self.number << 9) | (int(masked) << 8) | length

    @property
    def bits(self) -> int:
        return self.n_bytes * 8


IN_PORT = Field(0x0000, 0, 2, "port")
ETH_DST, ETH_SRC, ETH_TYPE, VLAN_TCI = Field(0, 1, 6, "mac"), Field(0, 2, 6, "mac"), Field(0, 3, 2, "int"), Field(0, 4, 2, "int")
IP_PROTO, IP_SRC, IP_DST = Field(0, 6, 1, "int"), Field(0, 7, 4, "ip4"), Field(0, 8, 4, "ip4")
ARP_OP, ARP_SPA, ARP_TPA = Field(0, 15, 2, "int"), Field(0, 16, 4, "ip4"), Field(0, 17, 4, "ip4")
TUN_ID, ARP_SHA, ARP_THA = Field(1, 16, 8, "int"), Field(1, 17, 6, "mac"), Field(1, 18, 6, "mac")
IPV6_SRC, IPV6_DST = Field(1, 19, 16, "ip6"), Field(1, 20, 16, "ip6")
ICMPV6_TYPE, ICMPV6_CODE, ND_TARGET = Field(1, 21, 1, "int"), Field(1, 22, 1, "int"), Field(1, 23, 16, "ip6")
ND_TLL, COOKIE, TUN_IPV4_DST = Field(1, 25, 6, "mac"), Field(1, 30, 8, "int"), Field(1, 32, 4, "ip4")
# OVS's own fields for the NDP option rewrite; ovs-ofctl writes these headers in NXAST_REG_LOAD
ND_RESERVED, ND_OPTIONS_TYPE = Field(0x1000, 1, 4, "int"), Field(0x1000, 2, 1, "int")
REGS = [Field(1, n, 4, "int") for n in range(16)]

# The match's fields in the order OVS writes them (`nx_put_raw`): metadata, Ethernet, VLAN, L3, L4,
# ARP, tunnel, registers; the cookie of a delete last.
MATCH_ORDER = [IN_PORT, ETH_SRC, ETH_DST, ETH_TYPE, VLAN_TCI, IP_SRC, IP_DST, IPV6_SRC, IPV6_DST, IP_PROTO,
               ICMPV6_TYPE, ND_TARGET, ARP_OP, ARP_SPA, ARP_TPA, TUN_ID, *REGS]
MATCH_NAMES = {"in_port": IN_PORT, "dl_src": ETH_SRC, "dl_dst": ETH_DST, "nw_src": IP_SRC, "nw_dst": IP_DST,
               "ipv6_src": IPV6_SRC, "ipv6_dst": IPV6_DST, "nd_target": ND_TARGET, "arp_op": ARP_OP,
               "arp_spa": ARP_SPA, "arp_tpa": ARP_TPA, "tun_id": TUN_ID, "vlan_tci": VLAN_TCI,
               **{f"reg{n}": REGS[n] for n in range(16)}}
PROTOCOLS = {"ip": (ETH_TYPE_IP, None), "ipv6": (ETH_TYPE_IPV6, None), "arp": (ETH_TYPE_ARP, None),
             "icmp6": (ETH_TYPE_IPV6, IPPROTO_ICMPV6)}
SET_FIELD_NAMES = {"eth_src": ETH_SRC, "eth_dst": ETH_DST, "arp_op": ARP_OP, "arp_sha": ARP_SHA, "arp_spa": ARP_SPA,
                   "tun_id": TUN_ID, "tun_dst": TUN_IPV4_DST, "icmpv6_type": ICMPV6_TYPE, "icmpv6_code": ICMPV6_CODE,
                   "ipv6_src": IPV6_SRC, "nd_reserved": ND_RESERVED, "nd_options_type": ND_OPTIONS_TYPE,
                   **{f"reg{n}": REGS[n] for n in range(16)}}
MOVE_NAMES = {"NXM_OF_ETH_SRC": ETH_SRC, "NXM_OF_ETH_DST": ETH_DST, "NXM_NX_ARP_SHA": ARP_SHA,
              "NXM_NX_ARP_THA": ARP_THA, "NXM_OF_ARP_SPA": ARP_SPA, "NXM_OF_ARP_TPA": ARP_TPA,
              "NXM_NX_IPV6_SRC": IPV6_SRC, "NXM_NX_IPV6_DST": IPV6_DST, "NXM_NX_ND_TARGET": ND_TARGET,
              "NXM_NX_ND_TLL": ND_TLL}
ACTION_SEPARATOR = re.compile(r",(?![^(]*\))")  # the commas between actions, not those in resubmit(,T)
MOVE = re.compile(r"move:(\w+)\[\]->(\w+)\[\]")
MAC = re.compile(r"(?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}")


def header(message_type: int, length: int, xid: int) -> bytes:
    return struct.pack("!BBHI", OFP10_VERSION, message_type, length, xid)


def message(message_type: int, xid: int, body: bytes = b"") -> bytes:
    return header(message_type, 8 + len(body), xid) + body


def nicira(subtype: int, xid: int, body: bytes) -> bytes:
    return message(OFPT_VENDOR, xid, struct.pack("!II", NX_VENDOR_ID, subtype) + body)


def session_setup(xid: int) -> list[bytes]:
    """What a connection says first, as ovs-ofctl does: hello, NXM matches, the table in a flow_mod's
    command; and (ovs-ofctl's monitor does so) no asynchronous messages, which nobody here reads."""
    return [message(OFPT_HELLO, xid),
            nicira(NXT_SET_FLOW_FORMAT, xid + 1, struct.pack("!I", NXFF_NXM)),
            nicira(NXT_FLOW_MOD_TABLE_ID, xid + 2, struct.pack("!B7x", 1)),
            nicira(NXT_SET_ASYNC_CONFIG, xid + 3, bytes(24))]


def barrier(xid: int) -> bytes:
    return message(OFPT10_BARRIER_REQUEST, xid)


def _pad8(data: bytes) -> bytes:
    return data + bytes(-len(data) % 8)


def _value(field: Field, text: str) -> tuple[int, int]:
    """A match value as (value, mask) integers of the field's width."""
    full = (1 << field.bits) - 1
    try:
        if field.kind == "mac":
            if not MAC.fullmatch(text):
                raise ValueError(text)
            return int(text.replace(":", ""), 16), full
        if field.kind in ("ip4", "ip6"):
            network = (ipaddress.IPv4Network if field.kind == "ip4" else ipaddress.IPv6Network)(text, strict=False)
            return int(network.network_address), int(network.netmask)
        if field.kind == "port":
            return (RESERVED_PORTS[text] if text in RESERVED_PORTS else int(text, 10)), full
        if "/" in text:
            value, mask = text.split("/", 1)
            return int(value, 0), int(mask, 0)
        return int(text, 0), full
    except ValueError:
        raise Unencodable(f"{text!r} is not a value of this form") from None


def _entry(field: Field, value: int, mask: int) -> bytes:
    full = (1 << field.bits) - 1
    if not 0 <= value <= full or not 0 <= mask <= full:
        raise Unencodable(f"value {value:#x}/{mask:#x} does not fit a {field.bits}-bit field")
    n = field.n_bytes
    if mask == full:
        return struct.pack("!I", field.header()) + value.to_bytes(n, "big")
    return struct.pack("!I", field.header(masked=True)) + (value & mask).to_bytes(n, "big") + mask.to_bytes(n, "big")


def encode_match(items: list[str]) -> bytes:
    """The NXM match of a flow line's match items (`ip`, `reg0=5`, `nw_dst=192.0.2.0/24`...)."""
    values: dict[Field, tuple[int, int]] = {}  # (value, mask), each field once

    def put(field: Field, value: int, mask: int) -> None:
        if field in values:
            raise Unencodable(f"a field matched twice: {','.join(items)}")
        values[field] = (value, mask)

    icmp_types = []
    for item in items:
        name, found, text = item.partition("=")
        if not found:
            if name not in PROTOCOLS:
                raise Unencodable(f"unknown match {name!r}")
            eth_type, proto = PROTOCOLS[name]
            put(ETH_TYPE, eth_type, 0xFFFF)
            if proto is not None:
                put(IP_PROTO, proto, 0xFF)
        elif name == "dl_vlan":
            put(VLAN_TCI, 0x1000 | _value(VLAN_TCI, text)[0], 0x1FFF)
        elif name == "icmp_type":
            icmp_types.append(_value(ICMPV6_TYPE, text)[0])
        elif name in MATCH_NAMES:
            put(MATCH_NAMES[name], *_value(MATCH_NAMES[name], text))
        else:
            raise Unencodable(f"unknown match field {name!r}")
    if icmp_types:
        if values.get(IP_PROTO, (None,))[0] != IPPROTO_ICMPV6 or len(icmp_types) > 1:
            raise Unencodable("icmp_type is written here only after icmp6")
        put(ICMPV6_TYPE, icmp_types[0], 0xFF)
    return b"".join(_entry(field, *values[field]) for field in MATCH_ORDER if field in values)


def _reg_load(field: Field, value: int) -> bytes:
    """`set_field` as NXAST_REG_LOADs of at most 64 bits, lowest first (as ovs-ofctl writes them)."""
    if not 0 <= value < 1 << field.bits:
        raise Unencodable(f"value {value:#x} does not fit a {field.bits}-bit field")
    loads = []
    for offset in range(0, field.bits, 64):
        n_bits = min(64, field.bits - offset)
        chunk = (value >> offset) & ((1 << n_bits) - 1)
        loads.append(struct.pack("!HHIHHIQ", OFPAT_VENDOR, 24, NX_VENDOR_ID, NXAST_REG_LOAD,
                                 (offset << 6) | (n_bits - 1), field.header(), chunk))
    return b"".join(loads)


def _output(port: int) -> bytes:
    return struct.pack("!HHHH", OFPAT10_OUTPUT, 8, port, 0)


def encode_action(action: str) -> bytes:
    if action in RESERVED_PORTS:
        return _output(RESERVED_PORTS[action])
    if action == "pop_vlan":
        return struct.pack("!HH4x", OFPAT10_STRIP_VLAN, 8)
    if action == "dec_ttl":
        return struct.pack("!HHIH6x", OFPAT_VENDOR, 16, NX_VENDOR_ID, NXAST_DEC_TTL)
    name, found, argument = action.partition(":")
    if name == "output" and found:
        port = RESERVED_PORTS.get(argument)
        if port is None:
            if not argument.isdigit() or not 0 < int(argument) < 0xFF00:
                raise Unencodable(f"output to {argument!r}: a port number is needed")
            port = int(argument)
        return _output(port)
    if name == "mod_vlan_vid" and found:
        vid = _value(VLAN_TCI, argument)[0]
        if not 0 <= vid < 4096:
            raise Unencodable(f"VLAN {vid} is out of range")
        return struct.pack("!HHH2x", OFPAT10_SET_VLAN_VID, 8, vid)
    resubmit = re.fullmatch(r"resubmit\(,(\d+)\)", action)
    if resubmit and int(resubmit[1]) < 255:
        return struct.pack("!HHIHHB3x", OFPAT_VENDOR, 16, NX_VENDOR_ID, NXAST_RESUBMIT_TABLE,
                           RESERVED_PORTS["IN_PORT"], int(resubmit[1]))
    move = MOVE.fullmatch(action)
    if move and move[1] in MOVE_NAMES and move[2] in MOVE_NAMES:
        source, destination = MOVE_NAMES[move[1]], MOVE_NAMES[move[2]]
        if source.bits != destination.bits:
            raise Unencodable(f"{action}: fields of different widths")
        return struct.pack("!HHIHHHHII", OFPAT_VENDOR, 24, NX_VENDOR_ID, NXAST_REG_MOVE, source.bits, 0, 0,
                           source.header(), destination.header())
    if name == "set_field" and found and "->" in argument:
        text, target = argument.rsplit("->", 1)
        field = SET_FIELD_NAMES.get(target)
        if field is None:
            raise Unencodable(f"set_field to {target!r}")
        value, mask = _value(field, text)
        if mask != (1 << field.bits) - 1:
            raise Unencodable(f"{action}: set_field of part of a field")
        if field is ETH_SRC or field is ETH_DST:
            kind = OFPAT10_SET_DL_SRC if field is ETH_SRC else OFPAT10_SET_DL_DST
            return struct.pack("!HH", kind, 16) + value.to_bytes(6, "big") + bytes(6)
        return _reg_load(field, value)
    raise Unencodable(f"unknown action {action!r}")


def encode_actions(actions: str) -> bytes:
    if actions == "drop":
        return b""
    return b"".join(encode_action(a) for a in ACTION_SEPARATOR.split(actions))


def _number(text: str, what: str, limit: int) -> int:
    if not text.isdigit() or int(text) > limit:
        raise Unencodable(f"{what} {text!r}")
    return int(text)


def encode_flow_mod(line: str, xid: int) -> bytes:
    """One flow line (an add, or a `delete_strict`) as the NXT_FLOW_MOD ovs-ofctl sends for it."""
    delete = line.startswith("delete_strict ")
    if delete:
        head, actions = line[len("delete_strict "):], None
    else:
        head, found, actions = line.partition(",actions=")
        if not found:
            raise Unencodable(f"no actions: {line!r}")
    items = head.split(",")
    if len(items) < 3 or not items[0].startswith("cookie=") or not items[1].startswith("table=") \
            or not items[2].startswith("priority="):
        raise Unencodable(f"not in acsnet's form cookie=...,table=...,priority=...: {line!r}")
    cookie_text = items[0][len("cookie="):]
    table = _number(items[1][len("table="):], "table", 254)
    priority = _number(items[2][len("priority="):], "priority", 0xFFFF)
    match = encode_match(items[3:])
    if delete:
        cookie, cookie_mask = (cookie_text[:-3], True) if cookie_text.endswith("/-1") else (None, False)
        if not cookie_mask:
            raise Unencodable(f"a delete_strict is written here with cookie=C/-1: {line!r}")
        match += _entry(COOKIE, _value(COOKIE, cookie)[0], (1 << 64) - 1)
        command, flow_cookie, action_bytes = OFPFC_DELETE_STRICT, 0, b""
    else:
        command, flow_cookie, action_bytes = OFPFC_ADD, _value(COOKIE, cookie_text)[0], encode_actions(actions)
    body = struct.pack("!IIQHHHHIHHH6x", NX_VENDOR_ID, NXT_FLOW_MOD, flow_cookie, (table << 8) | command, 0, 0,
                       priority, NO_BUFFER, OFPP_NONE, 0, len(match)) + _pad8(match) + action_bytes
    return message(OFPT_VENDOR, xid, body)
