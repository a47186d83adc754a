"""Host firewalls and cloud security groups in front of NodePorts (tutorial section 6).

A node firewall is a list of rules evaluated in order, first match wins, as an iptables
chain: ACCEPT / DROP / REJECT end the walk, LOG notes the packet and goes on, the chain's
policy applies when nothing matched. Rules match on protocol, source CIDR (``!`` negates),
destination port or range, and ``-m connlimit --connlimit-above N [--connlimit-mask M]``
(the number of open connections from the source's /M network that passed this rule;
xt_connlimit counts the new connection too, so the rule matches once N are open and
exactly N are admitted per source).

*Which* chain a NodePort connection meets depends on the kube-proxy mode, and this is
the lesson of the tutorial's ``iptables -A INPUT ... --dport 30080`` rules:

* iptables and nftables modes DNAT the packet in PREROUTING (nat priority -100) to a pod
  address, so it is *forwarded* (FORWARD chain), never delivered to INPUT, even when the
  pod runs on the receiving node (the pod is behind the bridge). INPUT rules on the
  NodePort do nothing for a Service with endpoints. In iptables mode kube-proxy's
  ``KUBE-FORWARD`` chain, inserted at the top of FORWARD, ACCEPTs packets carrying the
  masquerade mark (``externalTrafficPolicy: Cluster``) before any rule of yours; nftables
  mode adds no such accept (kubernetes.io "NFTables mode for kube-proxy").
* IPVS mode: the node address is local, the packet goes through INPUT, and IPVS (hooked
  at LOCAL_IN after the filter table) forwards it: INPUT rules apply, FORWARD does not.
* userspace mode: REDIRECT to kube-proxy's own port, so INPUT sees that port, not the
  NodePort: port rules on the NodePort do not match.
* ``PREROUTING`` rules (``-t raw``/``-t mangle``, or Calico's ``preDNAT`` policies) see
  every packet before kube-proxy: the reliable place to restrict NodePorts (Calico docs
  "Apply policy to Kubernetes node ports", "Pre-DNAT policy").

DROP leaves the client waiting for its connect timeout; REJECT (ICMP port unreachable)
refuses at once. Security groups are cloud allow-lists in front of the nodes: stateful,
default deny, a miss is a silent drop.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field

ACTIONS = ("ACCEPT", "DROP", "REJECT", "LOG")
CHAINS = ("INPUT", "FORWARD", "PREROUTING")


class FirewallSyntaxError(ValueError):
    """A firewall command npsim cannot read; the message names the line."""


@dataclass(frozen=True)
class Rule:
    """One rule of a chain. ``None`` fields match anything."""

    action: str
    protocol: str | None = None  # "tcp" / "udp"
    source: ipaddress.IPv4Network | None = None
    source_negated: bool = False
    dports: tuple[int, int] | None = None
    connlimit_above: int | None = None
    connlimit_mask: int = 32
    log_prefix: str = ""
    text: str = ""  # the rule as written (iptables/ufw line or a YAML rendering)

    def matches(self, source: int, protocol: str, dport: int | None) -> bool:
        """Every match except connlimit (which needs the chain's counters)."""
        if self.protocol is not None and self.protocol != protocol:
            return False
        if self.source is not None:
            inside = (source & int(self.source.netmask)) == int(self.source.network_address)
            if inside == self.source_negated:
                return False
        return self.dports is None or (dport is not None
                                       and self.dports[0] <= dport <= self.dports[1])

    def group(self, source: int) -> int:
        """The connlimit key: the source address under ``--connlimit-mask``."""
        return source & ((0xFFFFFFFF << (32 - self.connlimit_mask)) & 0xFFFFFFFF)

    def describe(self) -> str:
        if self.text:
            return self.text
        parts = ["-A {chain}"]
        if self.protocol:
            parts.append(f"-p {self.protocol}")
        if self.source is not None:
            parts.append(("! " if self.source_negated else "") + f"-s {self.source}")
        if self.dports is not None:
            lo, hi = self.dports
            parts.append(f"--dport {lo}" if lo == hi else f"--dport {lo}:{hi}")
        if self.connlimit_above is not None:
            parts.append(f"-m connlimit --connlimit-above {self.connlimit_above}"
                         + (f" --connlimit-mask {self.connlimit_mask}"
                            if self.connlimit_mask != 32 else ""))
        parts.append(f"-j {self.action}")
        if self.log_prefix:
            parts.append(f'--log-prefix "{self.log_prefix}"')
        return " ".join(parts)


@dataclass
class Chain:
    """A chain of rules with a policy, and the connlimit counters of its rules."""

    name: str
    policy: str = "ACCEPT"
    rules: list[Rule] = field(default_factory=list)
    # per rule index: {source group: open connections that passed the rule}
    counts: dict[int, dict[int, int]] = field(default_factory=dict)

    def walk(self, source: int, protocol: str, dport: int | None
             ) -> tuple[str, int, list[int], list[tuple[int, int]]]:
        """(verdict, index of the deciding rule or -1 for the policy, LOG rule indexes
        passed, connlimit (rule, group) pairs this connection would count in)."""
        logged: list[int] = []
        counted: list[tuple[int, int]] = []
        for i, rule in enumerate(self.rules):
            if not rule.matches(source, protocol, dport):
                continue
            if rule.connlimit_above is not None:
                group = rule.group(source)
                if self.counts.get(i, {}).get(group, 0) < rule.connlimit_above:
                    counted.append((i, group))
                    continue
            if rule.action == "LOG":
                logged.append(i)
                continue
            return rule.action, i, logged, counted
        return self.policy, -1, logged, counted

    def opened(self, counted: list[tuple[int, int]]) -> None:
        for i, group in counted:
            per = self.counts.setdefault(i, {})
            per[group] = per.get(group, 0) + 1

    def closed(self, counted: list[tuple[int, int]]) -> None:
        for i, group in counted:
            self.counts[i][group] -= 1


@dataclass
class NodeFirewall:
    """A node's chains (those not given accept everything)."""

    chains: dict[str, Chain] = field(default_factory=dict)

    def chain(self, name: str) -> Chain | None:
        return self.chains.get(name)


@dataclass(frozen=True)
class SecurityGroupRule:
    """An allow rule of a cloud security group."""

    protocol: str | None
    first: int
    last: int
    source: ipaddress.IPv4Network

    def allows(self, source: int, protocol: str, port: int) -> bool:
        return ((self.protocol is None or self.protocol == protocol)
                and self.first <= port <= self.last
                and (source & int(self.source.netmask)) == int(self.source.network_address))


# --- reading the tutorial's commands --------------------------------------------------------


def _ports(text: str, where: str) -> tuple[int, int]:
    lo, _, hi = text.replace("-", ":").partition(":")
    try:
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise FirewallSyntaxError(f"{where}: expected a port or FIRST:LAST, got {text!r}"
                                  ) from None
    if not 1 <= first <= last <= 65535:
        raise FirewallSyntaxError(f"{where}: port range {text!r} is not within 1-65535")
    return first, last


def _network(text: str, where: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise FirewallSyntaxError(f"{where}: {text!r} is not an IPv4 address or CIDR") from None


def _commands(text: str) -> list[tuple[int, list[str]]]:
    """Non-empty, non-comment lines split like a shell, ``sudo`` dropped."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not line:
            continue
        words = shlex.split(line)
        if words and words[0] == "sudo":
            words = words[1:]
        out.append((n, words))
    return out


def parse_iptables(text: str, firewall: NodeFirewall | None = None) -> NodeFirewall:
    """``iptables -A|-I CHAIN ...`` and ``iptables -P CHAIN POLICY`` lines as the
    tutorial writes them (``-t raw``/``-t mangle`` PREROUTING too). Unsupported matches
    are errors, never silently ignored; ``iptables-save`` lines are skipped."""
    firewall = firewall or NodeFirewall()
    for n, words in _commands(text):
        where = f"line {n}"
        if words and words[0] in ("iptables-save", "ip6tables-save", "netfilter-persistent"):
            continue  # saving the rules changes nothing
        if not words or words[0] not in ("iptables", "ip6tables"):
            raise FirewallSyntaxError(f"{where}: expected an iptables command, got "
                                      f"{' '.join(words)!r}")
        if words[0] == "ip6tables":
            continue  # npsim's addresses are IPv4
        args = words[1:]
        if args and args[0].startswith("iptables-save"):
            continue
        table = "filter"
        if args[:1] == ["-t"]:
            if len(args) < 2:
                raise FirewallSyntaxError(f"{where}: -t needs a table (raw, mangle, filter)")
            table, args = args[1], args[2:]
        if not args:
            raise FirewallSyntaxError(f"{where}: nothing to do")
        op = args[0]
        if op in ("-P", "--policy"):
            if len(args) != 3 or args[1] not in CHAINS or args[2] not in ("ACCEPT", "DROP"):
                raise FirewallSyntaxError(f"{where}: expected -P INPUT|FORWARD ACCEPT|DROP")
            firewall.chains.setdefault(args[1], Chain(args[1])).policy = args[2]
            continue
        if op not in ("-A", "--append", "-I", "--insert"):
            raise FirewallSyntaxError(f"{where}: only -A, -I and -P are understood, got {op!r}")
        if len(args) < 2:
            raise FirewallSyntaxError(f"{where}: {op} needs a chain ({', '.join(CHAINS)})")
        name = args[1]
        if name not in CHAINS:
            raise FirewallSyntaxError(f"{where}: chain {name!r} is not one npsim models "
                                      f"({', '.join(CHAINS)})")
        if (name == "PREROUTING") != (table in ("raw", "mangle")):
            raise FirewallSyntaxError(f"{where}: {name} rules need -t raw or -t mangle; "
                                      "INPUT and FORWARD are in the filter table")
        rule = _iptables_rule(args[2:], where, " ".join(words))
        if rule.action == "REJECT" and name == "PREROUTING":
            raise FirewallSyntaxError(f"{where}: REJECT is only valid in the filter table "
                                      "(INPUT, FORWARD)")
        if rule.connlimit_above is not None and table == "raw":
            raise FirewallSyntaxError(f"{where}: connlimit needs conntrack, which runs after "
                                      "the raw table: use -t mangle")
        chain = firewall.chains.setdefault(name, Chain(name))
        if op in ("-I", "--insert"):
            chain.rules.insert(0, rule)
        else:
            chain.rules.append(rule)
    return firewall


# the options of a rule that take a value (a missing one is named as such)
TAKES_VALUE = ("-p", "--protocol", "-s", "--source", "--dport", "--destination-port", "-m",
               "--connlimit-above", "--connlimit-mask", "-j", "--jump", "--log-prefix",
               "--reject-with", "--ctstate", "--state")


def _count(value: str, option: str, where: str) -> int:
    """A whole number from 0 to 2^32 - 1, as iptables takes connlimit's options."""
    if not (value.isascii() and value.isdigit()) or int(value) > 0xFFFFFFFF:
        raise FirewallSyntaxError(f"{where}: {option} takes a whole number from 0 to "
                                  f"4294967295, got {value!r}")
    return int(value)


def _iptables_rule(args: list[str], where: str, text: str) -> Rule:
    fields: dict = {"text": text}
    negate = False
    i = 0
    while i < len(args):
        word = args[i]
        value = args[i + 1] if i + 1 < len(args) else None
        if word == "!":
            negate = True
            i += 1
            continue
        if word in ("-p", "--protocol") and value:
            if value not in ("tcp", "udp"):
                raise FirewallSyntaxError(f"{where}: protocol {value!r} (npsim: tcp, udp)")
            fields["protocol"] = value
        elif word in ("-s", "--source") and value:
            fields["source"] = _network(value, where)
            fields["source_negated"] = negate
        elif word in ("--dport", "--destination-port") and value:
            fields["dports"] = _ports(value, where)
        elif word == "-m" and value in ("tcp", "udp", "connlimit", "conntrack", "state"):
            pass
        elif word == "--connlimit-above" and value:
            fields["connlimit_above"] = _count(value, word, where)
        elif word == "--connlimit-mask" and value:
            fields["connlimit_mask"] = _count(value, word, where)
        elif word == "--syn" or word in ("--ctstate", "--state") and value and "NEW" in value:
            i += 1 if word == "--syn" else 2  # npsim evaluates new connections only
            negate = False
            continue
        elif word in ("-j", "--jump") and value:
            if value not in ACTIONS:
                raise FirewallSyntaxError(f"{where}: target {value!r} (npsim: "
                                          f"{', '.join(ACTIONS)})")
            fields["action"] = value
        elif word == "--log-prefix" and value is not None:
            fields["log_prefix"] = value
        elif word == "--reject-with" and value:
            pass  # every REJECT is an immediate refusal to the client
        elif word in TAKES_VALUE and value is None:
            raise FirewallSyntaxError(f"{where}: {word} needs a value")
        else:
            raise FirewallSyntaxError(f"{where}: {word!r} is not understood by npsim")
        negate = False
        i += 2
    if "action" not in fields:
        raise FirewallSyntaxError(f"{where}: the rule has no -j target")
    if "connlimit_mask" in fields and not 0 <= fields["connlimit_mask"] <= 32:
        raise FirewallSyntaxError(f"{where}: --connlimit-mask must be 0-32")
    return Rule(**fields)


def parse_ufw(text: str, firewall: NodeFirewall | None = None) -> NodeFirewall:
    """``ufw allow|deny|reject [proto] PORT[/proto]``, ``ufw allow from CIDR to any port
    N [proto P]`` and ``ufw default allow|deny|reject [incoming]``: INPUT rules (ufw's
    ``ufw-user-input`` chain) in order. ``ufw enable`` and ``ufw status`` are skipped."""
    firewall = firewall or NodeFirewall()
    chain = firewall.chains.setdefault("INPUT", Chain("INPUT"))
    verbs = {"allow": "ACCEPT", "deny": "DROP", "reject": "REJECT", "limit": None}
    for n, words in _commands(text):
        where = f"line {n}"
        if not words or words[0] != "ufw":
            raise FirewallSyntaxError(f"{where}: expected a ufw command")
        args = words[1:]
        if args[:1] in (["enable"], ["status"], ["reload"], ["--force"]):
            continue
        if args[:1] == ["default"]:
            if len(args) < 2 or args[1] not in ("allow", "deny", "reject") or (
                    len(args) > 2 and args[2] != "incoming"):
                raise FirewallSyntaxError(f"{where}: expected ufw default allow|deny|reject "
                                          "[incoming]")
            chain.policy = {"allow": "ACCEPT", "deny": "DROP", "reject": "REJECT"}[args[1]]
            continue
        if not args or args[0] not in verbs or verbs[args[0]] is None:
            raise FirewallSyntaxError(f"{where}: only allow, deny, reject and default are "
                                      "understood")
        fields: dict = {"action": verbs[args[0]], "text": " ".join(words)}
        rest = args[1:]
        if rest[:1] == ["in"]:
            rest = rest[1:]
        if rest[:1] == ["from"]:
            if len(rest) < 2:
                raise FirewallSyntaxError(f"{where}: 'from' needs an address")
            if rest[1] != "any":
                fields["source"] = _network(rest[1], where)
            rest = rest[2:]
            if rest[:2] == ["to", "any"]:
                rest = rest[2:]
            if rest[:1] == ["port"] and len(rest) >= 2:
                fields["dports"] = _ports(rest[1], where)
                rest = rest[2:]
            if rest[:1] == ["proto"] and len(rest) >= 2:
                fields["protocol"] = rest[1]
                rest = rest[2:]
        elif len(rest) == 1:
            port, _, proto = rest[0].partition("/")
            fields["dports"] = _ports(port, where)
            if proto:
                fields["protocol"] = proto
            rest = []
        if rest:
            raise FirewallSyntaxError(f"{where}: {' '.join(rest)!r} is not understood by npsim")
        if fields.get("protocol") not in (None, "tcp", "udp"):
            raise FirewallSyntaxError(f"{where}: protocol {fields['protocol']!r}")
        chain.rules.append(Rule(**fields))
    return firewall


def parse_security_group_cli(text: str) -> list[SecurityGroupRule]:
    """``aliyun ecs AuthorizeSecurityGroup --IpProtocol tcp --PortRange 30000/32767
    --SourceCidrIp 10.0.0.0/8`` lines (tutorial 6.2), continuation backslashes allowed."""
    out = []
    for n, words in _commands(text.replace("\\\n", " ")):
        where = f"line {n}"
        if words[:3] != ["aliyun", "ecs", "AuthorizeSecurityGroup"]:
            raise FirewallSyntaxError(f"{where}: expected 'aliyun ecs AuthorizeSecurityGroup'")
        opts = dict(zip(words[3::2], words[4::2], strict=False))
        proto = opts.get("--IpProtocol", "all").lower()
        lo, hi = _ports(opts.get("--PortRange", "1/65535").replace("/", ":"), where)
        source = _network(opts.get("--SourceCidrIp", "0.0.0.0/0"), where)
        out.append(SecurityGroupRule(None if proto == "all" else proto, lo, hi, source))
    return out


# --- from the scenario's YAML -----------------------------------------------------------------


def _rule_from_spec(spec: object, chain: str, where: str) -> Rule:
    source = getattr(spec, "source", None)
    negated = bool(source) and source.startswith("!")
    dport = getattr(spec, "dport", None)
    rule = Rule(
        action=spec.action,  # type: ignore[attr-defined]
        protocol=spec.protocol,  # type: ignore[attr-defined]
        source=_network(source.lstrip("! "), where) if source else None,
        source_negated=negated,
        dports=_ports(str(dport), where) if dport is not None else None,
        connlimit_above=spec.connlimit_above,  # type: ignore[attr-defined]
        connlimit_mask=spec.connlimit_mask,  # type: ignore[attr-defined]
        log_prefix=spec.log_prefix)  # type: ignore[attr-defined]
    if rule.action == "REJECT" and chain == "PREROUTING":
        raise FirewallSyntaxError(f"{where}: REJECT is only valid in the filter table "
                                  "(INPUT, FORWARD)")
    return rule


def build_node_firewall(spec: object) -> NodeFirewall:
    """A :class:`NodeFirewall` from a scenario's ``firewall`` section (schema
    FirewallSpec): YAML chains first, then ``iptables`` lines, then ``ufw`` lines."""
    firewall = NodeFirewall()
    for name in CHAINS:
        chain_spec = getattr(spec, name.lower(), None)
        if chain_spec is None:
            continue
        chain = firewall.chains.setdefault(name, Chain(name, chain_spec.policy))
        for i, rule in enumerate(chain_spec.rules):
            chain.rules.append(_rule_from_spec(rule, name, f"{name.lower()}.rules[{i}]"))
    if getattr(spec, "iptables", None):
        try:
            parse_iptables(spec.iptables, firewall)  # type: ignore[attr-defined]
        except FirewallSyntaxError as exc:
            raise FirewallSyntaxError(f"iptables {exc}") from None
    if getattr(spec, "ufw", None):
        try:
            parse_ufw(spec.ufw, firewall)  # type: ignore[attr-defined]
        except FirewallSyntaxError as exc:
            raise FirewallSyntaxError(f"ufw {exc}") from None
    return firewall


def build_security_group(spec: object) -> list[SecurityGroupRule]:
    rules = []
    for i, rule in enumerate(spec.rules):  # type: ignore[attr-defined]
        where = f"rules[{i}]"
        lo, hi = _ports(str(rule.ports), where)
        rules.append(SecurityGroupRule(None if rule.protocol == "all" else rule.protocol, lo, hi,
                                       _network(rule.source, where)))
    if getattr(spec, "aliyun", None):
        rules += parse_security_group_cli(spec.aliyun)  # type: ignore[attr-defined]
    return rules
