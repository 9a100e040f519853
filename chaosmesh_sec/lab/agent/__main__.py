"""``python -m chaosmesh_sec.lab.agent --node NAME``: run one node's agent (inside its netns)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kubernetes import config

from chaosmesh_sec.lab import images
from chaosmesh_sec.lab.agent.node_agent import NodeAgent
from chaosmesh_sec.lab.topology import DEFAULT


def main() -> None:
    parser = argparse.ArgumentParser(description="The lab's node agent for one node.")
    parser.add_argument("--node", required=True, help="the lab node this agent serves")
    parser.add_argument("--kubeconfig", required=True, type=Path, help="the node's kubeconfig")
    parser.add_argument("--pods-dir", required=True, type=Path, help="where pod directories go")
    parser.add_argument(
        "--images", required=True, type=Path, help="the lab's image table (lab/images.py)"
    )
    parser.add_argument(
        "--node-root", required=True, type=Path, help="the node's filesystem (hostPath volumes)"
    )
    parser.add_argument(
        "--cni-bin-dir", required=True, type=Path, help="the built CNI plugins (ptp, host-local)"
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    api = config.new_client_from_config(config_file=str(args.kubeconfig))
    NodeAgent(
        DEFAULT.node(args.node),
        DEFAULT,
        api,
        args.pods_dir,
        images.read(args.images),
        args.node_root,
        args.cni_bin_dir,
    ).run_forever()


if __name__ == "__main__":
    main()
