"""Stand-ins for programs the lab cannot run (no container runtime, no Envoy, no eBPF).

Each stands for one image's entrypoint (see :mod:`chaosmesh_sec.lab.agent.programs`)
and does, for real and on this machine, the part of its job that the pack's faults
and probes observe. What each leaves out is said in its module docstring.
"""
