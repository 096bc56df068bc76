"""Scale-out on NATS JetStream (docs/cluster.md): several daemons share one workload.

* :mod:`kapa_core.cluster.bridge`: :class:`~kapa_core.cluster.bridge.NatsBridge`, the
  official NATS client (asyncio, ``nats-py``) run on a loop thread of its own and called
  from trio: JetStream streams, publishing, durable pull consumers
  (:mod:`~kapa_core.cluster.pull_consumer`), key-value buckets
  (:mod:`~kapa_core.cluster.kv_bucket`).

The errors live here rather than in the bridge so that code which only configures or
reasons about the cluster can catch them without importing the NATS client.
"""

from kapa_core.errors import KapaError


class ClusterError(KapaError):
    """A NATS or JetStream operation failed: the message says what was attempted, against
    which server, stream, consumer or bucket, and what the server or client answered."""


class ConflictError(ClusterError):
    """A compare-and-set on a key-value bucket lost: the key exists (``create``) or is no
    longer at the expected revision (``update``/``delete``). Another member wrote first;
    read the key again and decide."""


__all__ = ["ClusterError", "ConflictError"]
