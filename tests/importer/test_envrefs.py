"""Reading Service addresses out of environment values: each form a cluster DNS name is
written in gives its name, namespace and port; what names no Service is left alone."""

from __future__ import annotations

import pytest

from npsim.importer.envrefs import address_var, env_refs, strong_address_var


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("PRODUCT_CATALOG_SERVICE_ADDR", "productcatalogservice:3550",
     ("productcatalogservice", None, 3550, None)),
    ("CART_URL", "http://cart:7070/api/v1?x=1", ("cart", None, 7070, "http")),
    ("CART_URL", "HTTP://Cart:7070", ("cart", None, 7070, "http")),
    ("CART_URL", "https://cart.shop.svc.cluster.local/api", ("cart", "shop", None, "https")),
    ("ANYTHING", "cart.shop.svc:grpc", ("cart", "shop", "grpc", None)),
    ("ANYTHING", "cart.shop:7070", ("cart", "shop", 7070, None)),
    ("ANYTHING", "cart.shop", ("cart", "shop", None, None)),
    ("CART_TARGET", "dns:///cart:7070", ("cart", None, 7070, "dns")),
    ("DATABASE_URL", "postgres://app:secret@db.data.svc:5432/orders", ("db", "data", 5432,
                                                                       "postgres")),
    ("REDIS_HOST", "redis-cart", ("redis-cart", None, None, None)),
    ("CART_ADDR", "10.96.0.12:7070", ("10.96.0.12", None, 7070, None)),  # a clusterIP?
    ("AD_SERVICE", "adservice", ("adservice", None, None, None)),
])
def test_each_way_of_writing_a_service_address_is_read(var: str, value: str,
                                                       expected: tuple) -> None:
    (ref,) = env_refs(var, value)
    assert (ref.name, ref.namespace, ref.port, ref.scheme) == expected


def test_an_ip_address_is_marked_as_one() -> None:
    """An IP is a Service only if it is one's clusterIP: the caller looks it up."""
    (ref,) = env_refs("DB_URL", "postgres://10.0.0.5:5432/db")
    assert ref.ip and ref.name == "10.0.0.5"
    assert not env_refs("CART_ADDR", "[fd00::1]:7070")  # IPv6: npsim simulates IPv4
    assert not env_refs("RETRIES", "3") and not env_refs("VERSION", "1.2.3.4")


def test_a_list_of_addresses_gives_each() -> None:
    refs = env_refs("KAFKA_BROKERS", "kafka-0.kafka:9092, kafka-1.kafka:9092;zk:2181")
    assert [(r.name, r.namespace, r.port) for r in refs] == [
        ("kafka-0", "kafka", 9092), ("kafka-1", "kafka", 9092), ("zk", None, 2181)]


@pytest.mark.parametrize(("var", "value"), [
    ("PORT", "8080"),  # no host
    ("LOG_LEVEL", "info"),  # a bare word in a variable that is no address
    ("REDIS_ADDR", "localhost:6379"),
    ("API_URL", "https://api.example.com/v1"),  # an outside name
    ("FEATURE_ENDPOINT", "true"),
    ("CART_ADDR", "cart:99999"),  # no port number
    ("CART_ADDR", "cart:7070:1"),
    ("CACHE_ADDR", "-cache:6379"),  # no DNS label
    ("CART_ADDR", ""),
])
def test_what_names_no_service_is_not_read_as_one(var: str, value: str) -> None:
    assert env_refs(var, value) == []


def test_variable_names_that_say_address() -> None:
    assert all(address_var(v) for v in ("CART_SERVICE_ADDR", "DB_HOST", "API_URL",
                                        "OTLP_ENDPOINT", "AD_SERVICE", "SMTP_SERVER"))
    assert not any(address_var(v) for v in ("PORT", "LOG_LEVEL", "USERS", "HOSTS_FILE_PATH"))
    # the pod's own name: read (it may name a Service) but never reported as missing
    assert address_var("OTEL_SERVICE_NAME") and not strong_address_var("OTEL_SERVICE_NAME")
