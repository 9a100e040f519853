"""The lab: a local Kubernetes + Istio cluster whose control plane is real.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and istiod are
built from their Go modules (``components/``) and run as processes; nodes are
network namespaces on a bridge with real iptables; the node agent
(``agent/``) gives pod specs real effects on this machine. Pods' sidecars are the
real ``pilot-agent`` and upstream Envoy (``images``); what the lab cannot run has a
stand-in (``standins/``). Nothing in
``chaosmesh_sec.faults`` or ``chaosmesh_sec.probes`` knows it runs here: they only
speak the Kubernetes API.

Layers, lowest first: ``paths`` and ``topology`` (pure facts) -> ``components`` and
``build`` (binaries) -> ``pki``, ``network``, ``procs`` (host effects) ->
``controlplane``, ``nodes`` -> ``manager`` (up / down / status) -> ``cli``.
"""
