"""Stand-ins for programs the lab cannot run (no container runtime, no eBPF).

- :mod:`.ambient_enrolment`: the ambient enrolment istio-cni's agent does with
  ztunnel (the annotation only; the agent itself, its installer, its repair
  controller and its plugin are real);
- :mod:`.cilium_agent`: Cilium's agent, L4 ingress policy as iptables, built by
  :mod:`.l4policy`;
- :mod:`.apps`: Istio's helloworld sample.

Each stands for one image's entrypoint (see :mod:`chaosmesh_sec.lab.agent.programs`)
and does, for real and on this machine, the part of its job that the pack's faults
and probes observe. What each leaves out is said in its module docstring. The
sidecar (``proxyv2``: pilot-agent and Envoy), its capture (``istio-iptables``),
istio-cni (``install-cni`` and the ``istio-cni`` plugin), istiod and httpbin are not
stand-ins: the lab runs the real programs
(:mod:`chaosmesh_sec.lab.images`).
"""
