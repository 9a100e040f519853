"""Stand-in for ``pilot-agent request GET <path>`` in the lab's istio-proxy containers.

``kubectl exec ... -c istio-proxy -- pilot-agent request GET certs`` asks the proxy's
admin port (``127.0.0.1:15000``) as the real pilot-agent asks Envoy's; the lab's exec
shim runs this module for ``pilot-agent`` inside the container's namespaces. Only the
``request GET`` form exists here.
"""

from __future__ import annotations

import sys
import urllib.request

__all__ = ["main"]

ADMIN = "http://127.0.0.1:15000"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[:2] != ["request", "GET"]:
        sys.stderr.write("lab pilot-agent: only `pilot-agent request GET <path>` is here\n")
        return 2
    path = args[2].lstrip("/")
    try:
        with urllib.request.urlopen(f"{ADMIN}/{path}", timeout=5) as resp:
            sys.stdout.write(resp.read().decode())
    except OSError as exc:
        sys.stderr.write(f"lab pilot-agent: {ADMIN}/{path}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
