"""``npsim import`` and calls: the pods' env proposes ``calls:`` (commented out, for the
user to confirm), ``--calls CSV`` sets them. On a shop in the shape of the "online
boutique" demo (tests/importer/fixtures/shop_calls.yaml)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from npsim.cli import main
from npsim.importer.load import CALL_COLUMNS, CALL_OPTIONAL
from npsim.scenario.calls_spec import leaves
from npsim.scenario.loader import load_scenario

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "shop_calls.yaml"
README = HERE.parents[1] / "README.md"

PROPOSED = {
    "frontend": [("productcatalogservice", 3550), ("currencyservice", 7000),
                 ("cartservice", 7070), ("recommendationservice", 8080),
                 ("shippingservice", 50051), ("checkoutservice", 5050)],
    "checkoutservice": [("productcatalogservice", 3550), ("shippingservice", 50051),
                        ("paymentservice", 50051), ("emailservice", 5000),
                        ("currencyservice", 7000), ("cartservice", 7070)],
    "cartservice": [("redis-cart", 6379)],
    "recommendationservice": [("productcatalogservice", 3550), ("currencyservice", 7000),
                              ("cartservice", 7070)],
    "loadgenerator": [("frontend", 80)],
}


def _import(tmp_path: Path, *args: str) -> tuple[int, str, Path]:
    out = tmp_path / "shop.yaml"
    result = CliRunner().invoke(main, ["import", str(FIXTURE), "--out", str(out), *args])
    return result.exit_code, result.output, out


def uncommented(text: str) -> str:
    """The file with every proposal confirmed, as an editor's "uncomment" does it."""
    return re.sub(r"(?m)^(\s*)# (calls:|  - \{service)", r"\1\2", text)


def _calls(path: Path) -> dict[str, list[tuple[str, int | str, int]]]:
    spec = load_scenario(path).spec
    return {name: [(c.service, c.port, c.count) for _, c in leaves(w.calls)]
            for name, w in spec.workloads.items() if w is not None and w.calls}


@pytest.fixture(scope="module")
def proposed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    code, output, out = _import(tmp_path_factory.mktemp("calls"))
    assert code == 0, output
    return output, out


def test_env_addresses_of_other_services_become_commented_proposals(
        proposed: tuple[str, Path], tmp_path: Path) -> None:
    _, out = proposed
    assert _calls(out) == {}  # as written, nothing calls: the user confirms first
    confirmed = tmp_path / "confirmed.yaml"
    confirmed.write_text(uncommented(out.read_text()))
    assert _calls(confirmed) == {name: [(s, p, 1) for s, p in calls]
                                 for name, calls in PROPOSED.items()}


def _notes(text: str) -> dict[str, dict[tuple[str, int], str]]:
    """Each workload's proposals: (service, port) -> the comment after it."""
    out: dict[str, dict[tuple[str, int], str]] = {}
    for block in re.split(r"(?m)^(?=  [\w-]+:$)", text[text.index("\nworkloads:"):]):
        head = re.match(r"  ([\w-]+):", block)
        lines = re.findall(r"(?m)^    #   - \{service: ([\w-]+), port: (\d+)\}  # env (.*)$",
                           block)
        if head and lines:
            out[head[1]] = {(s, int(p)): note for s, p, note in lines}
    return out


def test_each_proposal_names_the_env_variable_it_came_from(proposed: tuple[str, Path]) -> None:
    notes = _notes(proposed[1].read_text())
    assert {w: list(v) for w, v in notes.items()} == PROPOSED
    checkout, recommendation = notes["checkoutservice"], notes["recommendationservice"]
    assert checkout[("paymentservice", 50051)] == (
        "PAYMENT_SERVICE_ADDR=http://paymentservice:50051/charge")
    assert checkout[("emailservice", 5000)] == "EMAIL_SERVICE_ADDR=emailservice:grpc"
    assert checkout[("currencyservice", 7000)] == "CURRENCY_HOST=currencyservice"  # +_PORT
    # $(REDIS_HOST):6379 expanded as the kubelet does; both variables on one line
    assert notes["cartservice"][("redis-cart", 6379)] == "REDIS_HOST=redis-cart, REDIS_ADDR"
    assert recommendation[("currencyservice", 7000)] == "CURRENCY_ADDR=10.96.0.70:7000"
    # the kubelet's Service variables; $$( escapes one (no second line for the cart)
    assert recommendation[("cartservice", 7070)] == "CART_ADDR=cartservice:7070"


def test_the_pods_own_service_secrets_and_outside_addresses_are_not_proposed(
        proposed: tuple[str, Path]) -> None:
    text = proposed[1].read_text()
    frontend = text[text.index("\n  frontend:"):text.index("\n  checkoutservice:")]
    assert "PUBLIC_URL" not in frontend and "SESSION_SECRET" not in frontend
    assert "cdn.example.com" not in frontend
    payment = text[text.index("\n  paymentservice:"):text.index("\n  shippingservice:")]
    assert "calls" not in payment  # DB_HOST=postgres is no Service; OTEL names itself


def test_what_cannot_be_proposed_is_said_in_the_file(proposed: tuple[str, Path]) -> None:
    text = proposed[1].read_text()
    assert re.search(r"# AD_SERVICE_ADDR=adservice names Service adservice, which has ports "
                     r"9555 \(grpc\), 9090 \(metrics\): add the call by hand", text)
    shipping = text[text.index("\n  shippingservice:"):text.index("\n  loadgenerator:")]
    assert "QUOTE_URL" in shipping and "would close the cycle shippingservice -> " \
        "checkoutservice -> shippingservice" in shipping
    assert "# calls:" not in shipping
    loadgen = text[text.index("\n  loadgenerator:"):text.index("\n  productcatalogservice:")]
    assert "no Service selects these pods" in loadgen


def test_the_summary_counts_proposals_and_says_how_to_confirm_them(
        proposed: tuple[str, Path]) -> None:
    output = proposed[0]
    assert ("calls: 17 proposed from the pods' env for 5 workloads (frontend, "
            "checkoutservice, cartservice, recommendationservice, loadgenerator)") in output
    assert "to confirm: delete the '# ' before calls:" in output
    assert "--calls FILE.csv (caller,service,port,count)" in output
    missing = re.search(r"of Services not in the dump \(ignored\): (.*)", output)
    assert missing and missing[1] == ("frontend COLLECTOR_SERVICE_ADDR=opentelemetrycollector:"
                                      "4317, paymentservice DB_HOST=postgres")
    assert "several (add the call by hand): frontend AD_SERVICE_ADDR=adservice" in output
    assert ("headless or ExternalName Services (no ClusterIP for kube-proxy to program; not "
            "proposed): cartservice REDIS_REPLICA_ADDR=redis-cart-headless:6379") in output
    assert "does not have: recommendationservice CATALOG_FALLBACK_ADDR=" \
        "productcatalogservice:3551" in output
    assert "would close a call cycle: shippingservice QUOTE_URL=" in output


def test_a_dump_without_env_addresses_says_nothing_of_calls(tmp_path: Path) -> None:
    out = tmp_path / "plain.yaml"
    result = CliRunner().invoke(main, ["import", str(HERE / "fixtures" / "cluster.yaml"),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "calls" not in result.output and "calls" not in out.read_text()


def test_calls_csv_sets_calls_and_replaces_that_caller_s_proposals(tmp_path: Path) -> None:
    csv = tmp_path / "elsewhere" / "calls.csv"  # outside the dump's folder: the user's
    csv.parent.mkdir()
    csv.write_text("caller,service,port,count\n"
                   "frontend,productcatalogservice,3550,4\n"
                   "frontend,cartservice,grpc,\n"
                   "checkoutservice,paymentservice,50051,1\n")
    code, output, out = _import(tmp_path, "--calls", str(csv))
    assert code == 0, output
    assert _calls(out) == {"frontend": [("productcatalogservice", 3550, 4),
                                        ("cartservice", "grpc", 1)],
                           "checkoutservice": [("paymentservice", 50051, 1)]}
    assert f"calls: 3 set from --calls {csv} for frontend, checkoutservice" in output
    text = out.read_text()
    frontend = text[text.index("\n  frontend:"):text.index("\n  checkoutservice:")]
    assert "# calls:" not in frontend and "--calls calls.csv line 3" in frontend
    assert "calls: 6 proposed" in output  # the other callers' proposals stay
    # shipping's QUOTE_URL no longer closes a cycle (checkout does not call it now)
    confirmed = tmp_path / "confirmed.yaml"
    confirmed.write_text(uncommented(text))
    calls = _calls(confirmed)
    assert calls["frontend"] == _calls(out)["frontend"]
    assert calls["shippingservice"] == [("checkoutservice", 5050, 1)]


@pytest.mark.parametrize(("rows", "where", "message"), [
    ("caller,service\nfrontend,cartservice\n", ":1:1: header",
     "expected columns caller,service,port (optional: count), got caller,service"),
    ("caller,service,port\nghost,cartservice,7070\n", ":2:1: caller", "no workload 'ghost'"),
    ("caller,service,port\nfrontend,nope,7070\n", ":2:10: service", "no Service 'nope'"),
    ("caller,service,port\nfrontend,cartservice,9\n", ":2:22: port",
     "Service 'cartservice' has no port 9 (ports: 7070 (grpc))"),
    ("caller,service,port\nfrontend,adservice,\n", ":2:20: port",
     "Service 'adservice' has several ports, and the cell is empty"),
    ("caller,service,port,count\nfrontend,cartservice,7070,two\n", ":2:27: count",
     "expected a whole number of calls from 1 to 1000, got 'two'"),
    ("caller,service,port,count\nfrontend,cartservice,7070,0\n", ":2:27: count",
     "got '0'"),
    ("caller,service,port,count\nfrontend,cartservice,7070\n", ":2:1:",
     "expected 4 values, got 3"),
    ("caller,service,port\nfrontend,checkoutservice,5050\ncheckoutservice,frontend,80\n",
     ":3:1: caller", "the call checkoutservice -> frontend closes a cycle in the call graph "
     "(a request would call itself without end): checkoutservice -> frontend -> "
     "checkoutservice"),
    ("caller,service,port\nfrontend,frontend-external,http\n", ":2:1: caller",
     "frontend -> frontend"),
])
def test_a_bad_calls_csv_is_refused_with_its_line_and_field(
        tmp_path: Path, rows: str, where: str, message: str) -> None:
    csv = tmp_path / "calls.csv"
    csv.write_text(rows)
    code, output, out = _import(tmp_path, "--calls", str(csv))
    assert code == 2
    assert f"{csv}{where}" in output and message in output
    assert "nothing was written" in output and "Traceback" not in output
    assert not out.exists()


def test_the_readme_example_csv_is_what_import_accepts(tmp_path: Path) -> None:
    """The README's ``--calls`` example has the header the code reads, and imports."""
    readme = README.read_text()
    section = readme[readme.index("## Simulate your own cluster"):
                     readme.index("## Scenario reference")]
    block = re.search(r"```csv\n(caller.*?)```", section, re.S)
    assert block is not None
    header = block[1].splitlines()[0].split(",")
    assert header == [*CALL_COLUMNS, *CALL_OPTIONAL]
    csv = tmp_path / "calls.csv"
    csv.write_text(block[1])
    code, output, out = _import(tmp_path, "--calls", str(csv))
    assert code == 0, output
    assert _calls(out)


def test_the_yaml_of_a_proposal_is_the_one_written_active(tmp_path: Path) -> None:
    """A proposal line uncommented reads as the call --calls would write."""
    csv = tmp_path / "calls.csv"
    csv.write_text("caller,service,port\ncartservice,redis-cart,6379\n")
    code, output, out = _import(tmp_path, "--calls", str(csv))
    assert code == 0, output
    active = re.search(r"(?m)^      - (\{service: redis-cart.*?\})", out.read_text())
    assert active and yaml.safe_load(active[1]) == {"service": "redis-cart", "port": 6379}


def test_a_bare_name_is_a_service_of_the_caller_s_own_namespace(tmp_path: Path) -> None:
    """``cartservice`` from namespace ``web`` is ``cartservice.web`` (the pod's DNS search
    path), which the dump does not hold; ``cartservice.shop`` is the shop's."""
    extra = tmp_path / "web.yaml"
    extra.write_text("""apiVersion: apps/v1
kind: Deployment
metadata: {name: storefront, namespace: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: storefront}}
  template:
    metadata: {labels: {app: storefront}}
    spec:
      containers:
      - name: web
        image: example/storefront:v1
        env:
        - {name: CART_ADDR, value: "cartservice:7070"}
        - {name: SHOP_CART_ADDR, value: "cartservice.shop:7070"}
""")
    out = tmp_path / "two.yaml"
    result = CliRunner().invoke(main, ["import", str(FIXTURE), str(extra), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "storefront CART_ADDR=cartservice:7070" in result.output  # not in the dump
    confirmed = tmp_path / "confirmed.yaml"
    confirmed.write_text(uncommented(out.read_text()))
    assert _calls(confirmed)["storefront"] == [("cartservice", 7070, 1)]


def test_calls_set_for_a_workload_nothing_calls_are_warned_about(tmp_path: Path) -> None:
    csv = tmp_path / "calls.csv"
    csv.write_text("caller,service,port\nloadgenerator,frontend,http\n")
    code, output, out = _import(tmp_path, "--calls", str(csv))
    assert code == 0, output
    assert "warning: --calls: workload loadgenerator: no Service selects these pods" in output
    assert _calls(out) == {"loadgenerator": [("frontend", "http", 1)]}


@pytest.mark.slow
def test_confirmed_proposals_make_the_pods_call(proposed: tuple[str, Path],
                                                tmp_path: Path) -> None:
    """Uncommented, the proposals run: each of the frontend's requests calls the six
    Services its env names, and the checkout calls its own six below it."""
    import npsim

    text = uncommented(proposed[1].read_text())
    text = text.replace("duration: 60s", "duration: 2s").replace("warmup: 5s ", "warmup: 0s ")
    confirmed = tmp_path / "confirmed.yaml"
    confirmed.write_text(text)
    calls = npsim.run(confirmed).calls
    edges = set(zip(calls["caller_service"].astype(str), calls["service"].astype(str),
                    strict=True))
    # caller_service: the Service the request being served came through
    for via, caller in (("frontend-external", "frontend"), ("checkoutservice",
                                                            "checkoutservice")):
        assert {s for c, s in edges if c == via} == {s for s, _ in PROPOSED[caller]}
