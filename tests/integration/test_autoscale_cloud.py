"""The autoscale nodes against a local fake of the Kubernetes and Docker Swarm APIs
(tests.compat.scenarios_misc.FakeCloud): the requests kapa-core makes, the events it
emits and the node statistics.

The expected data below was taken from the real Kapacitor 1.5.7 (kapacitord) run on the
same scripts, points and fake cloud; regenerate it with

    python -m tests.integration.test_autoscale_cloud --kapacitord BIN
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from tests.compat.runner import _mask_timings
from tests.compat.scenarios_misc import FakeCloud, Scenario, run, services_config

pytestmark = pytest.mark.integration

DBRP = [("mydb", "myrp")]

SCENARIOS = [
    # Kubernetes: a tag names the resource; namespace and kind given; bounds, cooldowns
    # in both directions, renamed and dropped output tags; a resource the API does not
    # know (an error per point).
    Scenario("k8s_cooldowns", "", [("k8s_cooldowns", """
stream
    |from()
        .measurement('load')
        .groupBy('app')
    |k8sAutoscale()
        .resourceNameTag('app')
        .namespace('ops')
        .kind('replicasets')
        .replicas(lambda: "want")
        .min(2)
        .max(12)
        .increaseCooldown(3s)
        .decreaseCooldown(2s)
        .namespaceTag('ns')
        .kindTag('')
        .resourceTag('res')
    |httpOut('out')
""", DBRP)], stats=["k8s_cooldowns"], cloud=True, points=("mydb", "myrp", """\
load,app=serviceA,host=h1 want=4i 31536000
load,app=serviceB,host=h2 want=7i 31536000
load,app=serviceA,host=h1 want=6i 31536001
load,app=serviceB,host=h2 want=5i 31536001
load,app=missing,host=h3 want=1i 31536002
load,app=serviceA,host=h1 want=6i 31536002
load,app=serviceB,host=h2 want=3i 31536003
load,app=serviceA,host=h1 want=20i 31536004
load,app=serviceB,host=h2 want=0i 31536005
load,app=serviceA,host=h1 want=9i 31536006
load,app=serviceA,host=h1 want=1i 31536007
load,app=serviceA,host=h1 want=3i 31536009
""")),
    # currentField: Kapacitor puts the current count in the lambda's scope as a Go int,
    # which its expressions cannot use, so each point is an error.
    Scenario("k8s_current_field", "", [("k8s_current_field", """
stream
    |from()
        .measurement('load')
        .groupBy('app')
    |k8sAutoscale()
        .resourceNameTag('app')
        .currentField('cur')
        .replicas(lambda: "cur" + int("delta"))
    |httpOut('out')
""", DBRP)], stats=["k8s_current_field"], cloud=True, points=("mydb", "myrp", """\
load,app=serviceA delta=1i 31536000
load,app=serviceB delta=-3i 31536000
load,app=serviceA delta=4i 31536001
""")),
    # Batches (from a window) into k8sAutoscale: each point of a batch is handled, in
    # order; the output points keep the batch's group tags.
    Scenario("k8s_batches", "", [("k8s_batches", """
stream
    |from()
        .measurement('load')
        .groupBy('app', 'zone')
    |window()
        .period(2s)
        .every(2s)
    |k8sAutoscale()
        .resourceNameTag('app')
        .kind('deployments')
        .replicas(lambda: int("want"))
        .decreaseCooldown(1m)
    |httpOut('out')
""", DBRP)], stats=["k8s_batches"], cloud=True, points=("mydb", "myrp", """\
load,app=serviceA,zone=z1 want=2 31536000
load,app=serviceB,zone=z1 want=12 31536000
load,app=serviceA,zone=z1 want=3 31536001
load,app=serviceB,zone=z1 want=8 31536001
load,app=serviceA,zone=z1 want=1 31536002
load,app=serviceB,zone=z1 want=4 31536002
load,app=serviceA,zone=z1 want=5 31536003
load,app=serviceB,zone=z1 want=15 31536004
load,app=serviceA,zone=z1 want=5 31536005
load,app=serviceA,zone=z1 want=5 31536007
""")),
    # Docker Swarm: a fixed service name, the name tag given for the output; a float
    # result and a missing field are errors; no groupBy.
    Scenario("swarm_fixed", "", [("swarm_fixed", """
stream
    |from()
        .measurement('load')
    |swarmAutoscale()
        .serviceName('serviceB')
        .outputServiceNameTag('svc')
        .replicas(lambda: "want")
        .max(30)
    |httpOut('out')
""", DBRP)], stats=["swarm_fixed"], cloud=True, points=("mydb", "myrp", """\
load,host=h1 want=10i 31536000
load,host=h1 want=14i 31536001
load,host=h1 want=2.5 31536002
load,host=h1 other=1i 31536003
load,host=h1 want=99i 31536004
load,host=h1 want=0i 31536005
""")),
    # A service spec as a newer Docker daemon answers it (FakeCloud's "rich"): sent back
    # the way Kapacitor's Docker types encode it (unknown fields dropped, Go's field
    # order and omitempty rules, HTML escaping, float32).
    Scenario("swarm_rich_spec", "", [("swarm_rich_spec", """
stream
    |from()
        .measurement('load')
    |swarmAutoscale()
        .serviceName('rich')
        .replicas(lambda: "want")
    |httpOut('out')
""", DBRP)], stats=["swarm_rich_spec"], cloud=True, points=("mydb", "myrp", """\
load want=3i 31536000
load want=5i 31536001
""")),
    # A scale without selfLink (Kubernetes 1.20 and later): Kapacitor sends its patch to
    # "/", which the API refuses; the event is not applied (an error).
    Scenario("k8s_no_selflink", "", [("k8s_no_selflink", """
stream
    |from()
        .measurement('load')
    |k8sAutoscale()
        .resourceName('noselflink')
        .replicas(lambda: "want")
    |httpOut('out')
""", DBRP)], stats=["k8s_no_selflink"], cloud=True, points=("mydb", "myrp", """\
load want=3i 31536000
load want=4i 31536001
""")),
    # A replicas lambda Kapacitor's compiler refuses: the task does not start.
    Scenario("static_type_error", "", [("static_type_error", """
stream
    |from()
        .measurement('load')
    |k8sAutoscale()
        .resourceName('serviceA')
        .replicas(lambda: 'a' > 10)
    |httpOut('out')
""", DBRP)], stats=["static_type_error"], cloud=True,
             points=("mydb", "myrp", "load want=3i 31536000\n")),
    # Stateful functions in the lambda count per group.
    Scenario("stateful_per_group", "", [("stateful_per_group", """
stream
    |from()
        .measurement('load')
        .groupBy('app')
    |swarmAutoscale()
        .serviceNameTag('app')
        .replicas(lambda: count() * 2)
    |httpOut('out')
""", DBRP)], stats=["stateful_per_group"], cloud=True, points=("mydb", "myrp", """\
load,app=serviceA want=3i 31536000
load,app=serviceB want=3i 31536000
load,app=serviceA want=3i 31536001
load,app=serviceA want=3i 31536002
load,app=serviceB want=3i 31536003
""")),
    # A lambda giving a boolean: an error for the point.
    Scenario("bool_result", "", [("bool_result", """
stream
    |from()
        .measurement('load')
    |k8sAutoscale()
        .resourceName('serviceA')
        .replicas(lambda: "want" > 2)
    |httpOut('out')
""", DBRP)], stats=["bool_result"], cloud=True,
             points=("mydb", "myrp", "load want=3i 31536000\n")),
    # Barriers (with group deletion) before the node: they reach the window after it in
    # order with the events.
    Scenario("barrier", "", [("barrier", """
stream
    |from()
        .measurement('load')
        .groupBy('app')
    |barrier()
        .idle(2s)
        .delete(TRUE)
    |swarmAutoscale()
        .serviceNameTag('app')
        .replicas(lambda: "want")
    |window()
        .period(10s)
        .every(10s)
    |httpOut('out')
""", DBRP)], stats=["barrier"], cloud=True, points=("mydb", "myrp", """\
load,app=serviceA want=3i 31536000
load,app=serviceB want=4i 31536000
load,app=serviceA want=5i 31536001
load,app=serviceA want=6i 31536005
load,app=serviceB want=7i 31536006
load,app=serviceA want=8i 31536012
""")),
    # Swarm with names from a tag, one of them unknown to the API, and a point without
    # the tag; the lambda uses the current count only.
    Scenario("swarm_tag", "", [("swarm_tag", """
stream
    |from()
        .measurement('load')
        .groupBy('service')
    |swarmAutoscale()
        .serviceNameTag('service')
        .currentField('n')
        .replicas(lambda: "n" * 2)
    |httpOut('out')
""", DBRP)], stats=["swarm_tag"], cloud=True, points=("mydb", "myrp", """\
load,service=serviceA v=1 31536000
load,service=missing v=1 31536000
load v=1 31536001
load,service=serviceA v=1 31536001
load,service=serviceB v=1 31536002
"""))]

# Taken from kapacitord 1.5.7 (see the module's docstring).
EXPECTED: dict[str, dict[str, object]] = {
    'barrier': {
        'barrier httpOut':
            '{"series":[{"name":"load","tags":{"app":"serviceA"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:00Z",3,1],["1971-01-01T00:00:01Z",5,3],["1971-01-01T00:00:05Z",6,5]]}]}',
        'barrier stats':
            '{"barrier2": {"collected": 6, "emitted": 6, "errors": 0, "working_cardinality": 2}, "from1": {"collected": 6, "emitted": 6, "errors": 0, "working_cardinality": 0}, "http_out5": {"collected": 1, "emitted": 0, "errors": 0, "working_cardinality": 1}, "stream0": {"collected": 6, "emitted": 6, "errors": 0, "working_cardinality": 0}, "swarm_autoscale3": {"collected": 6, "cooldown_drops": 0, "decrease_events": 1, "emitted": 6, "errors": 0, "increase_events": 5, "working_cardinality": 2}, "window4": {"collected": 6, "emitted": 1, "errors": 0, "working_cardinality": 2}}',
        'barrier error':
            '',
        'cloud requests': [
            'GET /v1.30/services/serviceA',
            'GET /v1.30/services/serviceA',
            'POST /v1.30/services/serviceA/update?version=7 {"Name":"serviceA","Labels":{"app":"serviceA"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":3}}}\n',
            'GET /v1.30/services/serviceB',
            'GET /v1.30/services/serviceB',
            'POST /v1.30/services/serviceB/update?version=7 {"Name":"serviceB","Labels":{"app":"serviceB"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":4}}}\n',
            'GET /v1.30/services/serviceA',
            'POST /v1.30/services/serviceA/update?version=8 {"Name":"serviceA","Labels":{"app":"serviceA"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":5}}}\n',
            'GET /v1.30/services/serviceA',
            'POST /v1.30/services/serviceA/update?version=9 {"Name":"serviceA","Labels":{"app":"serviceA"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":6}}}\n',
            'GET /v1.30/services/serviceB',
            'POST /v1.30/services/serviceB/update?version=8 {"Name":"serviceB","Labels":{"app":"serviceB"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":7}}}\n',
            'GET /v1.30/services/serviceA',
            'POST /v1.30/services/serviceA/update?version=10 {"Name":"serviceA","Labels":{"app":"serviceA"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":8}}}\n',
        ],
    },
    'static_type_error': {
        'static_type_error refused':
            'invalid replicas expression: mismatched type to binary operator. got string > int. see bool(), int(), float(), string(), duration()',
    },
    'stateful_per_group': {
        'stateful_per_group httpOut':
            '{"series":[{"name":"load","tags":{"app":"serviceA"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:02Z",6,4]]},{"name":"load","tags":{"app":"serviceB"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:03Z",4,2]]}]}',
        'stateful_per_group stats':
            '{"from1": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}, "http_out3": {"collected": 5, "emitted": 0, "errors": 0, "working_cardinality": 2}, "stream0": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}, "swarm_autoscale2": {"collected": 5, "cooldown_drops": 0, "decrease_events": 1, "emitted": 5, "errors": 0, "increase_events": 4, "working_cardinality": 2}}',
        'stateful_per_group error':
            '',
        'cloud requests': [
            'GET /v1.30/services/serviceA',
            'GET /v1.30/services/serviceA',
            'POST /v1.30/services/serviceA/update?version=7 {"Name":"serviceA","Labels":{"app":"serviceA"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":2}}}\n',
            'GET /v1.30/services/serviceB',
            'GET /v1.30/services/serviceB',
            'POST /v1.30/services/serviceB/update?version=7 {"Name":"serviceB","Labels":{"app":"serviceB"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":2}}}\n',
            'GET /v1.30/services/serviceA',
            'POST /v1.30/services/serviceA/update?version=8 {"Name":"serviceA","Labels":{"app":"serviceA"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":4}}}\n',
            'GET /v1.30/services/serviceA',
            'POST /v1.30/services/serviceA/update?version=9 {"Name":"serviceA","Labels":{"app":"serviceA"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":6}}}\n',
            'GET /v1.30/services/serviceB',
            'POST /v1.30/services/serviceB/update?version=8 {"Name":"serviceB","Labels":{"app":"serviceB"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":4}}}\n',
        ],
    },
    'bool_result': {
        'bool_result httpOut':
            '{"series":null}',
        'bool_result stats':
            '{"from1": {"collected": 1, "emitted": 1, "errors": 0, "working_cardinality": 0}, "http_out3": {"collected": 0, "emitted": 0, "errors": 0, "working_cardinality": 0}, "k8s_autoscale2": {"collected": 1, "cooldown_drops": 0, "decrease_events": 0, "emitted": 0, "errors": 1, "increase_events": 0, "working_cardinality": 1}, "stream0": {"collected": 1, "emitted": 1, "errors": 0, "working_cardinality": 0}}',
        'bool_result error':
            '',
        'cloud requests': [
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken',
        ],
    },
    'k8s_no_selflink': {
        'cloud requests': [
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/noselflink/scale Authorization: Bearer t0ken',
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/noselflink/scale Authorization: Bearer t0ken',
            'PATCH / Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":3}]\n',
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/noselflink/scale Authorization: Bearer t0ken',
            'PATCH / Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":4}]\n',
        ],
        'k8s_no_selflink error':
            '',
        'k8s_no_selflink httpOut':
            '{"series":null}',
        'k8s_no_selflink stats':
            '{"from1": {"collected": 2, "emitted": 2, "errors": 0, "working_cardinality": 0}, "http_out3": {"collected": 0, "emitted": 0, "errors": 0, "working_cardinality": 0}, "k8s_autoscale2": {"collected": 2, "cooldown_drops": 0, "decrease_events": 0, "emitted": 0, "errors": 2, "increase_events": 0, "working_cardinality": 1}, "stream0": {"collected": 2, "emitted": 2, "errors": 0, "working_cardinality": 0}}',
    },
    'swarm_rich_spec': {
        'cloud requests': [
            'GET /v1.30/services/rich',
            'GET /v1.30/services/rich',
            'POST /v1.30/services/rich/update?version=7 {"Name":"rich","Labels":{"a":"\\u003c2\\u003e","z":"1"},"TaskTemplate":{"ContainerSpec":{"Image":"nginx:1.13@sha256:abc","Args":["-g","daemon off;"],"Env":["A=1"],"Mounts":[{"Type":"volume","Source":"data","Target":"/d","VolumeOptions":{"Labels":{"k":"v"}}}],"StopGracePeriod":10000000000,"Healthcheck":{"Test":["CMD","true"],"Retries":3},"DNSConfig":{},"Secrets":[{"File":{"Name":"f","UID":"0","GID":"0","Mode":292},"SecretID":"s1","SecretName":"n"}]},"Resources":{"Limits":{},"Reservations":{"MemoryBytes":1024}},"RestartPolicy":{"Condition":"any","Delay":5000000000,"MaxAttempts":0},"Placement":{"Constraints":["node.role==worker"]},"ForceUpdate":2},"Mode":{"Replicated":{"Replicas":3}},"UpdateConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0.1},"EndpointSpec":{"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"}]}}\n',
            'GET /v1.30/services/rich',
            'POST /v1.30/services/rich/update?version=8 {"Name":"rich","Labels":{"a":"\\u003c2\\u003e","z":"1"},"TaskTemplate":{"ContainerSpec":{"Image":"nginx:1.13@sha256:abc","Args":["-g","daemon off;"],"Env":["A=1"],"Mounts":[{"Type":"volume","Source":"data","Target":"/d","VolumeOptions":{"Labels":{"k":"v"}}}],"StopGracePeriod":10000000000,"Healthcheck":{"Test":["CMD","true"],"Retries":3},"DNSConfig":{},"Secrets":[{"File":{"Name":"f","UID":"0","GID":"0","Mode":292},"SecretID":"s1","SecretName":"n"}]},"Resources":{"Limits":{},"Reservations":{"MemoryBytes":1024}},"RestartPolicy":{"Condition":"any","Delay":5000000000,"MaxAttempts":0},"Placement":{"Constraints":["node.role==worker"]},"ForceUpdate":2},"Mode":{"Replicated":{"Replicas":5}},"UpdateConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0.1},"EndpointSpec":{"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"}]}}\n',
        ],
        'swarm_rich_spec error':
            '',
        'swarm_rich_spec httpOut':
            '{"series":[{"name":"load","columns":["time","new","old"],"values":[["1971-01-01T00:00:01Z",5,3]]}]}',
        'swarm_rich_spec stats':
            '{"from1": {"collected": 2, "emitted": 2, "errors": 0, "working_cardinality": 0}, "http_out3": {"collected": 2, "emitted": 0, "errors": 0, "working_cardinality": 1}, "stream0": {"collected": 2, "emitted": 2, "errors": 0, "working_cardinality": 0}, "swarm_autoscale2": {"collected": 2, "cooldown_drops": 0, "decrease_events": 0, "emitted": 2, "errors": 0, "increase_events": 2, "working_cardinality": 1}}',
    },
    'k8s_batches': {
        'cloud requests': [
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken',
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":2}]\n',
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":3}]\n',
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceB/scale Authorization: Bearer t0ken',
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceB/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/default/deployments/serviceB/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":12}]\n',
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceB/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/default/deployments/serviceB/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":8}]\n',
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":1}]\n',
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":5}]\n',
        ],
        'k8s_batches error':
            '',
        'k8s_batches httpOut':
            '{"series":[{"name":"load","tags":{"app":"serviceA","kind":"deployments","namespace":"default","resource":"serviceA","zone":"z1"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:03Z",5,1]]},{"name":"load","tags":{"app":"serviceB","kind":"deployments","namespace":"default","resource":"serviceB","zone":"z1"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:01Z",8,12]]}]}',
        'k8s_batches stats':
            '{"from1": {"collected": 10, "emitted": 10, "errors": 0, "working_cardinality": 0}, "http_out4": {"collected": 6, "emitted": 0, "errors": 0, "working_cardinality": 2}, "k8s_autoscale3": {"collected": 5, "cooldown_drops": 1, "decrease_events": 2, "emitted": 6, "errors": 0, "increase_events": 4, "working_cardinality": 2}, "stream0": {"collected": 10, "emitted": 10, "errors": 0, "working_cardinality": 0}, "window2": {"collected": 10, "emitted": 5, "errors": 0, "working_cardinality": 2}}',
    },
    'k8s_cooldowns': {
        'cloud requests': [
            'GET /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceA/scale Authorization: Bearer t0ken',
            'GET /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceA/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceA/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":4}]\n',
            'GET /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceB/scale Authorization: Bearer t0ken',
            'GET /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceB/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceB/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":7}]\n',
            'GET /apis/extensions/v1beta1/namespaces/ops/replicasets/missing/scale Authorization: Bearer t0ken',
            'GET /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceB/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceB/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":3}]\n',
            'GET /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceA/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceA/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":12}]\n',
            'GET /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceB/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceB/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":2}]\n',
            'GET /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceA/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceA/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":9}]\n',
            'GET /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceA/scale Authorization: Bearer t0ken',
            'PATCH /apis/extensions/v1beta1/namespaces/ops/replicasets/serviceA/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":3}]\n',
        ],
        'k8s_cooldowns error':
            '',
        'k8s_cooldowns httpOut':
            '{"series":[{"name":"load","tags":{"app":"serviceA","ns":"ops","res":"serviceA"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:09Z",3,9]]},{"name":"load","tags":{"app":"serviceB","ns":"ops","res":"serviceB"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:05Z",2,3]]}]}',
        'k8s_cooldowns stats':
            '{"from1": {"collected": 12, "emitted": 12, "errors": 0, "working_cardinality": 0}, "http_out3": {"collected": 7, "emitted": 0, "errors": 0, "working_cardinality": 2}, "k8s_autoscale2": {"collected": 12, "cooldown_drops": 4, "decrease_events": 5, "emitted": 7, "errors": 1, "increase_events": 2, "working_cardinality": 3}, "stream0": {"collected": 12, "emitted": 12, "errors": 0, "working_cardinality": 0}}',
    },
    'k8s_current_field': {
        'cloud requests': [
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken',
            'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceB/scale Authorization: Bearer t0ken',
        ],
        'k8s_current_field error':
            '',
        'k8s_current_field httpOut':
            '{"series":null}',
        'k8s_current_field stats':
            '{"from1": {"collected": 3, "emitted": 3, "errors": 0, "working_cardinality": 0}, "http_out3": {"collected": 0, "emitted": 0, "errors": 0, "working_cardinality": 0}, "k8s_autoscale2": {"collected": 3, "cooldown_drops": 0, "decrease_events": 0, "emitted": 0, "errors": 3, "increase_events": 0, "working_cardinality": 2}, "stream0": {"collected": 3, "emitted": 3, "errors": 0, "working_cardinality": 0}}',
    },
    'swarm_fixed': {
        'cloud requests': [
            'GET /v1.30/services/serviceB',
            'GET /v1.30/services/serviceB',
            'POST /v1.30/services/serviceB/update?version=7 {"Name":"serviceB","Labels":{"app":"serviceB"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":14}}}\n',
            'GET /v1.30/services/serviceB',
            'POST /v1.30/services/serviceB/update?version=8 {"Name":"serviceB","Labels":{"app":"serviceB"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":30}}}\n',
            'GET /v1.30/services/serviceB',
            'POST /v1.30/services/serviceB/update?version=9 {"Name":"serviceB","Labels":{"app":"serviceB"},"TaskTemplate":{"ContainerSpec":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":1}}}\n',
        ],
        'swarm_fixed error':
            '',
        'swarm_fixed httpOut':
            '{"series":[{"name":"load","tags":{"svc":"serviceB"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:05Z",1,30]]}]}',
        'swarm_fixed stats':
            '{"from1": {"collected": 6, "emitted": 6, "errors": 0, "working_cardinality": 0}, "http_out3": {"collected": 3, "emitted": 0, "errors": 0, "working_cardinality": 1}, "stream0": {"collected": 6, "emitted": 6, "errors": 0, "working_cardinality": 0}, "swarm_autoscale2": {"collected": 6, "cooldown_drops": 0, "decrease_events": 1, "emitted": 3, "errors": 2, "increase_events": 2, "working_cardinality": 1}}',
    },
    'swarm_tag': {
        'cloud requests': [
            'GET /v1.30/services/serviceA',
            'GET /v1.30/services/missing',
            'GET /v1.30/services/serviceB',
        ],
        'swarm_tag error':
            '',
        'swarm_tag httpOut':
            '{"series":null}',
        'swarm_tag stats':
            '{"from1": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}, "http_out3": {"collected": 0, "emitted": 0, "errors": 0, "working_cardinality": 0}, "stream0": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}, "swarm_autoscale2": {"collected": 5, "cooldown_drops": 0, "decrease_events": 0, "emitted": 0, "errors": 5, "increase_events": 0, "working_cardinality": 4}}',
    },
}



#: ``/kapacitor/v1/service-tests`` of kubernetes and swarm: elements "main" (the fake
#: cloud), "off" (disabled) and "bad" (nothing listens), and an id not configured.
SERVICE_TESTS = [(name, {"id": cluster}) for cluster in ("main", "off", "bad", "nope", "")
                 for name in ("kubernetes", "swarm")]


def services_with_more(cloud_url: str) -> dict[str, list[dict[str, object]]]:
    config = services_config(cloud_url)
    for name, urls in (("kubernetes", "api-servers"), ("swarm", "servers")):
        config[name][0]["id"] = "main"
        config[name].append({"enabled": False, "id": "off", urls: [cloud_url]})
        config[name].append({"enabled": True, "id": "bad", urls: ["http://127.0.0.1:1"]})
    return config


def service_tests(url: str, cloud: FakeCloud) -> dict[str, object]:
    out: dict[str, object] = {}
    listed = httpx.get(url + "/kapacitor/v1/service-tests")
    out["list"] = [s for s in listed.json()["services"]
                   if s["name"] in ("kubernetes", "swarm", "ec2")]
    for name, options in SERVICE_TESTS:
        cloud.reset()
        r = httpx.post(f"{url}/kapacitor/v1/service-tests/{name}", json=options, timeout=30)
        with cloud.lock:
            out[f"{name} {options['id']}"] = [r.status_code, r.text, list(cloud.requests)]
    return out


# Taken from kapacitord 1.5.7 (see the module's docstring).
EXPECTED_SERVICE_TESTS: dict[str, object] = {
    'list': [
        {'link': {'href': '/kapacitor/v1/service-tests/ec2', 'rel': 'self'}, 'name': 'ec2', 'options': {'id': ''}},
        {'link': {'href': '/kapacitor/v1/service-tests/kubernetes', 'rel': 'self'}, 'name': 'kubernetes', 'options': {'id': ''}},
        {'link': {'href': '/kapacitor/v1/service-tests/swarm', 'rel': 'self'}, 'name': 'swarm', 'options': {'id': ''}},
    ],
    'kubernetes ': [
        200,
        '{"success":false,"message":"unknown kubernetes cluster \\"\\""}\n',
        [],
    ],
    'kubernetes bad': [
        200,
        '{"success":false,"message":"failed to query server versions: k8s client request failed: Get \\"http://127.0.0.1:1/api\\": dial tcp 127.0.0.1:1: connect: connection refused"}\n',
        [],
    ],
    'kubernetes main': [
        200,
        '{"success":true,"message":""}\n',
        ['GET /api Authorization: Bearer t0ken'],
    ],
    'kubernetes nope': [
        200,
        '{"success":false,"message":"unknown kubernetes cluster \\"nope\\""}\n',
        [],
    ],
    'kubernetes off': [
        200,
        '{"success":false,"message":"failed to get client: service is not enabled"}\n',
        [],
    ],
    'swarm ': [
        200,
        '{"success":false,"message":"unknown swarm cluster \\"\\""}\n',
        [],
    ],
    'swarm bad': [
        200,
        '{"success":false,"message":"failed to query server version: swarm client request failed: Get \\"http://127.0.0.1:1/info\\": dial tcp 127.0.0.1:1: connect: connection refused"}\n',
        [],
    ],
    'swarm main': [
        200,
        '{"success":true,"message":""}\n',
        ['GET /info'],
    ],
    'swarm nope': [
        200,
        '{"success":false,"message":"unknown swarm cluster \\"nope\\""}\n',
        [],
    ],
    'swarm off': [
        200,
        '{"success":false,"message":"failed to get client: service is not enabled"}\n',
        [],
    ],
}


OVERRIDE_SCRIPT = """
stream
    |from()
        .measurement('load')
        .groupBy('app')
    |k8sAutoscale()
        .resourceNameTag('app')
        .replicas(lambda: "want")
    |httpOut('out')
"""


def config_override(url: str, first: FakeCloud, second: FakeCloud) -> dict[str, object]:
    """A running k8sAutoscale while ``[[kubernetes]]`` is changed through the config
    API: new API servers and token, then the element disabled; then a new task."""
    out: dict[str, object] = {}
    first.reset()
    second.reset()
    with httpx.Client(base_url=url, timeout=30) as c:
        task = {"type": "stream", "status": "enabled", "script": OVERRIDE_SCRIPT,
                "dbrps": [{"db": "mydb", "rp": "myrp"}]}
        write = "/write?db=mydb&rp=myrp&precision=s"
        c.post("/kapacitor/v1/tasks", json={"id": "scale", **task}).raise_for_status()
        for step, lines, change in (
                (0, "load,app=serviceA want=3i 31536000", {"api-servers": [second.url],
                                                          "token": "new"}),
                (1, "load,app=serviceA want=4i 31536001\nload,app=serviceB want=5i 31536001",
                 {"enabled": False}),
                (2, "load,app=serviceA want=6i 31536002", None)):
            before = len(first.requests) + len(second.requests)
            c.post(write, content=lines.encode()).raise_for_status()
            wait_until(lambda: len(first.requests) + len(second.requests) > before,
                       what=f"requests of step {step}")
            time.sleep(0.3)
            if change is not None:
                r = c.post("/kapacitor/v1/config/kubernetes/", json={"set": change})
                out[f"override {step}"] = r.status_code
        out["first"] = list(first.requests)
        out["second"] = list(second.requests)
        out["out"] = c.get("/kapacitor/v1/tasks/scale/out").text
        stats = c.get("/kapacitor/v1/tasks/scale").json()["stats"]["node-stats"]
        stats = stats["k8s_autoscale2"]
        stats.pop("avg_exec_time_ns", None)
        out["stats"] = json.dumps(stats, sort_keys=True)
        r = c.post("/kapacitor/v1/tasks", json={"id": "later", **task})
        out["new task refused"] = r.json().get("error")
        c.delete("/kapacitor/v1/tasks/scale")
        c.delete("/kapacitor/v1/tasks/later")
    return out


# Taken from kapacitord 1.5.7 (see the module's docstring).
EXPECTED_OVERRIDE: dict[str, object] = {
    'first': [
        'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken',
        'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken',
        'PATCH /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer t0ken Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":3}]\n',
    ],
    'new task refused':
        'cannot use the k8sAutoscale node, could not create kubernetes client: service is not enabled',
    'out':
        '{"series":[{"name":"load","tags":{"app":"serviceA","kind":"deployments","namespace":"default","resource":"serviceA"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:02Z",6,4]]},{"name":"load","tags":{"app":"serviceB","kind":"deployments","namespace":"default","resource":"serviceB"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:01Z",5,10]]}]}',
    'override 0':
        204,
    'override 1':
        204,
    'second': [
        'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer new',
        'PATCH /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer new Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":4}]\n',
        'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceB/scale Authorization: Bearer new',
        'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceB/scale Authorization: Bearer new',
        'PATCH /apis/extensions/v1beta1/namespaces/default/deployments/serviceB/scale Authorization: Bearer new Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":5}]\n',
        'GET /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer new',
        'PATCH /apis/extensions/v1beta1/namespaces/default/deployments/serviceA/scale Authorization: Bearer new Content-Type: application/json-patch+json [{"op":"replace","path":"/spec/replicas","value":6}]\n',
    ],
    'stats':
        '{"collected": 4, "cooldown_drops": 0, "decrease_events": 1, "emitted": 4, "errors": 0, "increase_events": 3, "working_cardinality": 2}',
}


DOT_SCRIPT = """
stream
    |from()
        .measurement('load')
        .groupBy('app')
    |swarmAutoscale()
        .serviceNameTag('app')
        .replicas(lambda: "want")
        .increaseCooldown(5s)
    |httpOut('out')
"""


def running_dot(url: str, cloud: FakeCloud) -> dict[str, str]:
    """The DOT (both views) of a running swarmAutoscale task: its event statistics."""
    cloud.reset()
    with httpx.Client(base_url=url, timeout=30) as c:
        c.post("/kapacitor/v1/tasks", json={
            "id": "dot", "type": "stream", "status": "enabled", "script": DOT_SCRIPT,
            "dbrps": [{"db": "mydb", "rp": "myrp"}]}).raise_for_status()
        c.post("/write?db=mydb&rp=myrp&precision=s", content=b"""\
load,app=serviceA want=3i 31536000
load,app=serviceA want=5i 31536001
load,app=serviceB want=1i 31536001""").raise_for_status()
        wait_until(lambda: len(cloud.requests) >= 5, what="the swarm requests")
        time.sleep(0.5)
        out = {view: _mask_timings(c.get("/kapacitor/v1/tasks/dot",
                                         params={"dot-view": view}).json()["dot"])
               for view in ("attributes", "labels")}
        c.delete("/kapacitor/v1/tasks/dot")
    return out


# Taken from kapacitord 1.5.7 (see the module's docstring).
EXPECTED_DOT: dict[str, str] = {
    'attributes': (
        'digraph dot {\n'
        'graph [throughput="X points/s"];\n'
        '\n'
        'stream0 [avg_exec_time_ns="X" errors="0" working_cardinality="0" ];\n'
        'stream0 -> from1 [processed="3"];\n'
        '\n'
        'from1 [avg_exec_time_ns="X" errors="0" working_cardinality="0" ];\n'
        'from1 -> swarm_autoscale2 [processed="3"];\n'
        '\n'
        'swarm_autoscale2 [avg_exec_time_ns="X" cooldown_drops="1" decrease_events="1" errors="0" increase_events="1" working_cardinality="2" ];\n'
        'swarm_autoscale2 -> http_out3 [processed="2"];\n'
        '\n'
        'http_out3 [avg_exec_time_ns="X" errors="0" working_cardinality="2" ];\n'
        '}'
    ),
    'labels': (
        'digraph dot {\n'
        'graph [label="Throughput: X points/s" forcelabels=true pad="0.8,0.5"];\n'
        '\n'
        'stream0 [xlabel="avg_exec_time_ns=X\\rerrors=0\\rworking_cardinality=0"];\n'
        'stream0 -> from1 [label="processed=3"];\n'
        '\n'
        'from1 [xlabel="avg_exec_time_ns=X\\rerrors=0\\rworking_cardinality=0"];\n'
        'from1 -> swarm_autoscale2 [label="processed=3"];\n'
        '\n'
        'swarm_autoscale2 [xlabel="avg_exec_time_ns=X\\rcooldown_drops=1\\rdecrease_events=1\\rerrors=0\\rincrease_events=1\\rworking_cardinality=2"];\n'
        'swarm_autoscale2 -> http_out3 [label="processed=2"];\n'
        '\n'
        'http_out3 [xlabel="avg_exec_time_ns=X\\rerrors=0\\rworking_cardinality=2"];\n'
        '}'
    ),
}


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloud]:
    server = FakeCloud()
    yield server
    server.close()


@pytest.fixture(scope="module")
def daemon(cloud: FakeCloud) -> Iterator[DaemonProcess]:
    config = {"http": {"log-enabled": False}, "logging": {"level": "ERROR"},
              **services_config(cloud.url)}
    with DaemonProcess(config) as d:
        yield d


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_autoscale_like_kapacitor(daemon: DaemonProcess, cloud: FakeCloud,
                                  scenario: Scenario) -> None:
    expected = EXPECTED[scenario.name]
    got = run(daemon.url, scenario, None, cloud, expected, timeout=10)
    assert got == expected


def test_running_dot_like_kapacitor(daemon: DaemonProcess, cloud: FakeCloud) -> None:
    assert running_dot(daemon.url, cloud) == EXPECTED_DOT


def test_service_tests_like_kapacitor(cloud: FakeCloud) -> None:
    config = {"http": {"log-enabled": False}, "logging": {"level": "ERROR"},
              **services_with_more(cloud.url)}
    with DaemonProcess(config) as daemon:
        assert service_tests(daemon.url, cloud) == EXPECTED_SERVICE_TESTS


def test_running_node_follows_config_override(cloud: FakeCloud) -> None:
    second = FakeCloud()
    try:
        config = {"http": {"log-enabled": False}, "logging": {"level": "ERROR"},
                  **services_config(cloud.url)}
        with DaemonProcess(config) as daemon:
            assert config_override(daemon.url, cloud, second) == EXPECTED_OVERRIDE
    finally:
        second.close()


#: Elements whose client cannot be made stop the daemon at startup, enabled or not; the
#: messages are kapacitord 1.5.7's (after its "run: create server: ").
STARTUP_REFUSALS = [
    ({"swarm": [{"enabled": True, "id": "s", "servers": ["http://x"],
                 "ssl-ca": "/nonexistent/ca.pem"}]},
     'docker swarm service: failed to create cluster for "s": failed to create swarm '
     "client config: Could not load TLS CA: open /nonexistent/ca.pem: no such file or "
     "directory"),
    ({"swarm": [{"enabled": False, "servers": ["http://x"],
                 "ssl-cert": "/nonexistent/c.pem"}]},
     'docker swarm service: failed to create cluster for "": failed to create swarm '
     "client config: Must provide both key and cert files: only cert file provided."),
    ({"kubernetes": [{"enabled": True, "api-servers": ["http://x"],
                      "ca-path": "/nonexistent/ca.pem"}]},
     'kubernetes service: failed to create k8s client config: failed to read ca-path '
     '"/nonexistent/ca.pem": open /nonexistent/ca.pem: no such file or directory'),
    ({"kubernetes": [{"enabled": False, "in-cluster": True}]},
     "kubernetes service: failed to create k8s client config: could not load namespace: "
     "open /var/run/secrets/kubernetes.io/serviceaccount/namespace: no such file or "
     "directory"),
]


@pytest.mark.parametrize(("config", "message"), STARTUP_REFUSALS)
def test_unusable_client_config_stops_startup(config: dict[str, object],
                                              message: str) -> None:
    with pytest.raises(RuntimeError) as info:
        with DaemonProcess({"logging": {"level": "ERROR"}, **config}, ready_timeout=20):
            pass
    assert str(info.value).rstrip().endswith(message)


def test_global_swarm_service_is_an_error(daemon: DaemonProcess, cloud: FakeCloud) -> None:
    """A global-mode service has no replica count. Kapacitor 1.5.7 dereferences the
    missing count and the whole kapacitord crashes (checked); kapa-core counts an error
    for the point and goes on (a deliberate difference, see docs/tickscript.md)."""
    scenario = Scenario("swarm_global", "", [("swarm_global", """
stream
    |from()
        .measurement('load')
    |swarmAutoscale()
        .serviceName('global')
        .replicas(lambda: "want")
    |httpOut('out')
""", DBRP)], stats=["swarm_global"], cloud=True, points=("mydb", "myrp", """\
load want=3i 31536000
load want=5i 31536001
"""))
    got = run(daemon.url, scenario, None, cloud, timeout=5)
    assert got["cloud requests"] == ["GET /v1.30/services/global"] * 2
    stats = json.loads(str(got["swarm_global stats"]))["swarm_autoscale2"]
    assert (stats["errors"], stats["emitted"]) == (2, 0)
    assert httpx.get(daemon.url + "/kapacitor/v1/ping").status_code == 204


def main(argv: list[str]) -> int:
    from kapa_core.testing import to_toml
    from tests.compat.oracle import Kapacitor

    binary = argv[argv.index("--kapacitord") + 1]
    cloud = FakeCloud()
    server = Kapacitor(binary, extra_conf=to_toml(services_config(cloud.url)))
    try:
        out = {s.name: run(server.url, s, None, cloud) for s in SCENARIOS}
        out["dot"] = running_dot(server.url, cloud)
    finally:
        server.close()
    second = FakeCloud()
    server = Kapacitor(binary, extra_conf=to_toml(services_config(cloud.url)))
    try:
        out["config override"] = config_override(server.url, cloud, second)
    finally:
        server.close()
        second.close()
    more = services_with_more(cloud.url)
    server = Kapacitor(binary, extra_conf=to_toml(more))
    try:
        out["service tests"] = service_tests(server.url, cloud)
    finally:
        server.close()
        cloud.close()
    print(json.dumps(out, indent=4, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
