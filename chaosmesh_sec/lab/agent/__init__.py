"""The lab's node agent: a small kubelet for one lab node.

One agent runs inside each node's network namespace and watches the pods bound to
its node. For each pod it gives the pod a network namespace of its own (unless
hostNetwork), materialises its volumes (ServiceAccount tokens through TokenRequest,
ConfigMaps, Secrets, emptyDirs), runs the container's program on this machine, and
registers the pod with kwok so that ``exec``, ``port-forward`` and ``logs`` reach it.
When the pod goes, its processes are stopped and its namespace removed.
"""
