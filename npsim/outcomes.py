"""What became of a request: its outcome and, for a failure, the reason, as dense codes.

The codes are what the request log stores, the frames name, a scenario's
``retries.retryOn`` lists and the planner's metrics count: one table below the scenario,
the simulation and the results, so none of them reaches into another for it.
"""

from __future__ import annotations

IN_FLIGHT, COMPLETED, FAILED = 0, 1, 2
OUTCOMES = {IN_FLIGHT: "in_flight", COMPLETED: "completed", FAILED: "failed"}

# failure reasons (code -> name); 0 = none
(NO_REASON, QUEUE_FULL, NO_ENDPOINTS, CONNECT_TIMEOUT, DIAL_FAILED, NODEPORT_CLOSED,
 ENDPOINT_GONE, DROPPED, REPLY_LOST) = range(9)
REASONS = {
    NO_REASON: "",
    QUEUE_FULL: "queue_full",  # the pod's queue was full: rejected
    NO_ENDPOINTS: "no_endpoints",  # the Service has no endpoints: REJECT, refused at once
    CONNECT_TIMEOUT: "connect_timeout",  # the chosen endpoint did not answer (gone pod)
    DIAL_FAILED: "dial_failed",  # userspace proxy: every dial attempt timed out
    NODEPORT_CLOSED: "nodeport_closed",  # nothing listens on that node address (nftables)
    ENDPOINT_GONE: "endpoint_gone",  # the pod of an open keep-alive connection went away
    DROPPED: "dropped_no_local_endpoint",  # Local policy, no endpoint on that node: DROP
    REPLY_LOST: "reply_lost",  # IPVS Local policy, no local endpoint: the reply is lost
}
# the firewalls in the traffic path (npsim/sim/guard.py); codes follow on (frames need
# contiguous codes)
FIREWALL_DROPPED, FIREWALL_REJECTED, SECURITY_GROUP_DROPPED, POLICY_DROPPED = range(
    len(REASONS), len(REASONS) + 4)
REASONS.update({
    FIREWALL_DROPPED: "firewall_dropped",  # a node firewall DROP: the client times out
    FIREWALL_REJECTED: "firewall_rejected",  # a node firewall REJECT: refused at once
    SECURITY_GROUP_DROPPED: "security_group_dropped",  # no cloud security group rule allows it
    POLICY_DROPPED: "network_policy_dropped",  # no NetworkPolicy ingress rule allows it
})
# the pod's address answers but its process does not listen (crashed, draining, exited)
CONNECTION_REFUSED = len(REASONS)
REASONS[CONNECTION_REFUSED] = "connection_refused"
# client and external-balancer failures (codes stay dense: frames index names by code)
REQUEST_TIMEOUT = len(REASONS)  # no response within the client's requestTimeout
REASONS[REQUEST_TIMEOUT] = "request_timeout"
NO_UPSTREAM = len(REASONS)  # the external balancer had every node marked down: 503
REASONS[NO_UPSTREAM] = "no_healthy_upstream"
# a call the pod made while serving the request failed (onFailure: fail): it answers
# with an error, as a handler returning 5xx on an upstream error does
DOWNSTREAM_FAILED = len(REASONS)
REASONS[DOWNSTREAM_FAILED] = "downstream_failed"
# a dependency outside the cluster (a call's ``external:``) answered with an error (its
# failureProbability); frames name it only in runs that call such a dependency
EXTERNAL_ERROR = len(REASONS)
REASONS[EXTERNAL_ERROR] = "external_error"
# reasons only runs whose pods make calls can have: other runs' frames leave them out
CALL_REASONS = ("downstream_failed", "external_error")
