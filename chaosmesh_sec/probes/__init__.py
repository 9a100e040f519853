"""Read-only checks. Each returns a JSON-ready dict with a boolean headline for tolerances.

Activity modules (listed in :mod:`chaosmesh_sec._registry`, imported by name from
experiments):

- ``control_plane``: istiod replicas Ready, the root certificate published;
- ``issuance``: istiod issues certificates, per replica and through the Service, to the
  caller's identity; a sampled timeline across a fault;
- ``matrix``: the identity matrix, every cell asked for real, each verdict naming the
  layer that decided;
- ``sidecar_certs``: the certificates running proxies hold, and their rotation;
- ``redirection``: every sidecar pod's traffic captured by its proxy;
- ``cni_chain``: each node's CNI chain whole (istio-cni chained, versions supported);
- ``ambient``: ambient pods enrolled, no NetworkPolicy cutting HBONE or kubelet probes.

Helpers, private to the probes (a leading underscore): the identity matrix's file,
evidence and judgement (``_matrix_spec``, ``_matrix_evidence``, ``_matrix_judgement``),
the CA client and what it needs (``_ca_client``, ``_ca_access``, ``_tunnel``), the
inspection pod on a node and what it reads (``_node_pod``, ``_cni_files``,
``_nat_rules``), NetworkPolicy ingress (``_netpol``). What probes share with faults
is on the floor (:mod:`chaosmesh_sec._kube`, :mod:`chaosmesh_sec._validate`).
"""

__all__: list[str] = []
