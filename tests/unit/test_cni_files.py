"""A node's CNI files as the cni-chain probe reads them, and what it finds wrong (pure).

The listing and VERSION scripts run here for real, with ``sh``, against a temporary
``net.d`` and ``bin`` holding real files and small fake plugins that answer
``CNI_COMMAND=VERSION`` as a CNI plugin does. The seed (003, TKE Stack's Galaxy):
``galaxy-sdn`` supports config versions up to 0.2.0, istio-cni's conversion wrote
``00-galaxy.conflist`` with 0.3.1, and the manual fix puts ``00-galaxy.conf`` back.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chaosmesh_sec.probes._cni_files import (
    NodeCniFiles,
    assess,
    listing_script,
    parse_listing,
    parse_versions,
    version_script,
)

pytestmark = pytest.mark.unit

PLUGIN = "istio-cni"
ALL_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]
GALAXY_VERSIONS = ["0.1.0", "0.2.0"]


def fake_plugin(
    bin_dir: Path, name: str, versions: list[str] | None, record: Path | None = None
) -> Path:
    """An executable CNI plugin answering VERSION with ``versions`` (None: it fails).

    With ``record``, it writes the request it read on stdin there. Shell builtins
    only: a runtime calls plugins with a bare environment.
    """
    answer = json.dumps({"cniVersion": "1.0.0", "supportedVersions": versions})
    keep = f"printf '%s' \"$request\" > '{record}'" if record else ":"
    if versions is None:
        reply = "printf '%s\\n' 'plugin crashed: segmentation violation' >&2; exit 2"
    else:
        reply = f"printf '%s\\n' '{answer}'; exit 0"
    script = bin_dir / name
    script.write_text(
        "#!/bin/sh\n"
        "IFS= read -r request\n"
        f"{keep}\n"
        f'if [ "$CNI_COMMAND" = VERSION ]; then {reply}; fi\n'
        'printf \'%s\\n\' \'{"code": 4, "msg": "only VERSION here"}\'; exit 1\n'
    )
    script.chmod(0o755)
    return script


def run_sh(script: str) -> str:
    done = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=20, check=True
    )
    return done.stdout


def chain(version: str, *types: str, name: str = "kindnet") -> dict[str, Any]:
    return {"cniVersion": version, "name": name, "plugins": [{"type": t} for t in types]}


def node(files: dict[str, Any], binaries: tuple[str, ...] = ()) -> NodeCniFiles:
    return NodeCniFiles(
        {n: body if isinstance(body, str) else json.dumps(body) for n, body in files.items()},
        set(binaries),
    )


def kinds(findings: list[Any]) -> list[str]:
    return [f.kind for f in findings]


# ---------------------------------------------------------------- the listing, run for real

KINDNET = json.dumps(chain("0.3.1", "ptp", "portmap", PLUGIN), indent=2) + "\n"
OLD_CONF = '{"cniVersion": "0.2.0", "name": "old", "type": "bridge"}'  # no final newline


@pytest.fixture
def cni_dirs(tmp_path: Path) -> tuple[Path, Path]:
    net, bins = tmp_path / "net.d", tmp_path / "bin"
    net.mkdir()
    bins.mkdir()
    (net / "10-kindnet.conflist").write_text(KINDNET)
    (net / "05-old.conf").write_text(OLD_CONF)
    (net / "README").write_text("written by the installer\nnot a config\n")
    (net / "ZZZ-istio-cni-kubeconfig").write_text("users:\n- user:\n    token: not-to-be-read\n")
    (net / "backup").mkdir()  # a directory: not a file the runtime reads
    for name in ("ptp", "portmap", PLUGIN):
        fake_plugin(bins, name, ALL_VERSIONS)
    (bins / "lib").mkdir()
    return net, bins


def test_the_listing_round_trips_files_and_binaries(cni_dirs: tuple[Path, Path]) -> None:
    net, bins = cni_dirs
    found = parse_listing(run_sh(listing_script(str(net), str(bins))))
    # Only CNI configs are read: not the README, nor istio-cni's kubeconfig (its token).
    assert found.files == {"10-kindnet.conflist": KINDNET, "05-old.conf": OLD_CONF}
    assert found.binaries == {"ptp", "portmap", PLUGIN}
    assert found.configs == ["05-old.conf", "10-kindnet.conflist"]


def test_the_listing_of_missing_directories_is_empty(tmp_path: Path) -> None:
    out = run_sh(listing_script(str(tmp_path / "no-net.d"), str(tmp_path / "no-bin")))
    found = parse_listing(out)
    assert (found.files, found.binaries, found.configs) == ({}, set(), [])


# ---------------------------------------------------------------- VERSION, run for real


def test_each_plugin_is_asked_with_the_config_version(tmp_path: Path) -> None:
    bins, asked = tmp_path / "bin", tmp_path / "asked"
    bins.mkdir()
    asked.mkdir()
    fake_plugin(bins, "ptp", ALL_VERSIONS, asked / "ptp")
    fake_plugin(bins, "galaxy-sdn", GALAXY_VERSIONS, asked / "galaxy-sdn")
    fake_plugin(bins, "broken", None)
    out = run_sh(version_script(str(bins), "0.3.1", ["ptp", "galaxy-sdn", "broken", "absent"]))
    answers = parse_versions(out)
    assert answers["ptp"] == ALL_VERSIONS
    assert answers["galaxy-sdn"] == GALAXY_VERSIONS
    assert answers["broken"] == "plugin crashed: segmentation violation"
    assert "absent" in str(answers["absent"])  # the shell's "not found"
    for name in ("ptp", "galaxy-sdn"):
        assert json.loads((asked / name).read_text()) == {"cniVersion": "0.3.1"}


def test_parse_versions_reads_answers_errors_and_silence() -> None:
    out = (
        "==cms:version:ptp\n"
        '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","1.0.0"]}\n'
        "==cms:version:galaxy-sdn\n"
        '{"code":1,"msg":"incompatible CNI versions"}\n'
        "==cms:version:quiet\n"
        "\n"
        "==cms:version:text\n"
        "sh: 1: /opt/cni/bin/text: Permission denied\n"
    )
    assert parse_versions(out) == {
        "ptp": ["0.3.1", "1.0.0"],
        "galaxy-sdn": '{"code":1,"msg":"incompatible CNI versions"}',
        "quiet": "no answer",
        "text": "sh: 1: /opt/cni/bin/text: Permission denied",
    }
    assert parse_versions("") == {}


# ---------------------------------------------------------------- assess

CLEAN = {"10-kindnet.conflist": chain("0.3.1", "ptp", "portmap", PLUGIN)}
CLEAN_BINS = ("ptp", "portmap", PLUGIN, "host-local")
CLEAN_VERSIONS: dict[str, list[str] | str] = {t: ALL_VERSIONS for t in CLEAN_BINS}


def judge(
    files: dict[str, Any],
    binaries: tuple[str, ...] = CLEAN_BINS,
    versions: dict[str, list[str] | str] | None = None,
    expect_plugin: bool = True,
    agent_ready: bool = True,
) -> tuple[dict[str, Any], list[Any]]:
    found = node(files, binaries)
    answers = CLEAN_VERSIONS if versions is None else versions
    return assess(found, answers, PLUGIN, expect_plugin, agent_ready)


def test_a_clean_chain_has_no_findings() -> None:
    facts, findings = judge(CLEAN)
    assert findings == []
    assert facts == {
        "active_config": "10-kindnet.conflist",
        "config_files": ["10-kindnet.conflist"],
        "cni_version": "0.3.1",
        "plugins": ["ptp", "portmap", PLUGIN],
        "has_plugin": True,
        "supported_versions": CLEAN_VERSIONS,
    }


@pytest.mark.parametrize(
    ("files", "kind", "detail"),
    [
        ({}, "no_config", "no CNI config"),
        ({"README": "notes", "10-x.conflist.bak": "{}"}, "no_config", "no CNI config"),
        ({"10-x.conflist": '{"cniVersion": '}, "unreadable_config", "10-x.conflist: not JSON"),
        ({"10-x.conflist": "[]"}, "unreadable_config", "not a JSON object"),
    ],
)
def test_no_or_unreadable_config_is_the_only_finding(
    files: dict[str, Any], kind: str, detail: str
) -> None:
    facts, findings = judge(files)
    assert kinds(findings) == [kind]
    assert detail in findings[0].detail
    assert (facts["cni_version"], facts["plugins"], facts["has_plugin"]) == ("", [], False)


@pytest.mark.parametrize(
    ("expect_plugin", "agent_ready", "types", "expected"),
    [
        (True, True, ("ptp", "portmap"), ["plugin_missing"]),
        (False, True, ("ptp", "portmap"), []),
        (False, False, ("ptp", "portmap"), []),
        (True, False, ("ptp", PLUGIN), ["stale_plugin"]),  # an uninstall left it behind
        (False, False, ("ptp", PLUGIN), ["stale_plugin"]),
    ],
)
def test_the_plugin_must_be_chained_exactly_while_its_agent_runs(
    expect_plugin: bool, agent_ready: bool, types: tuple[str, ...], expected: list[str]
) -> None:
    files = {"10-kindnet.conflist": chain("0.3.1", *types)}
    facts, findings = judge(files, expect_plugin=expect_plugin, agent_ready=agent_ready)
    assert kinds(findings) == expected
    assert facts["has_plugin"] is (PLUGIN in types)
    assert all(PLUGIN in f.detail for f in findings)


def test_an_unsupported_version_names_the_plugin_and_what_it_supports() -> None:
    files = {"00-galaxy.conflist": chain("0.3.1", "galaxy-sdn", PLUGIN, name="galaxy")}
    versions: dict[str, list[str] | str] = {"galaxy-sdn": GALAXY_VERSIONS, PLUGIN: ALL_VERSIONS}
    _, findings = judge(files, binaries=("galaxy-sdn", PLUGIN), versions=versions)
    assert kinds(findings) == ["unsupported_cni_version"]
    detail = findings[0].detail
    assert "'0.3.1'" in detail and "'galaxy-sdn'" in detail and "0.1.0, 0.2.0" in detail
    assert findings[0].as_dict() == {"kind": "unsupported_cni_version", "detail": detail}


def test_a_missing_binary_is_found_and_not_asked_about() -> None:
    _, findings = judge(CLEAN, binaries=("ptp", PLUGIN), versions={"ptp": ALL_VERSIONS})
    assert kinds(findings) == ["plugin_binary_missing"]
    assert "'portmap'" in findings[0].detail


def test_a_plugin_that_cannot_say_its_versions_is_reported_with_its_words() -> None:
    versions = {**CLEAN_VERSIONS, "portmap": "exec format error"}
    _, findings = judge(CLEAN, versions=versions)
    assert [f.as_dict() for f in findings] == [
        {"kind": "plugin_version_unknown", "detail": "portmap: exec format error"}
    ]


GALAXY_CONF = {"cniVersion": "0.2.0", "name": "galaxy", "type": "galaxy-sdn"}
GALAXY_CONFLIST = chain("0.3.1", "galaxy-sdn", name="galaxy")


@pytest.mark.parametrize(
    ("files", "active", "leftovers"),
    [
        # seed 003 after the manual fix: the .conf sorts first and is used
        (
            {"00-galaxy.conf": GALAXY_CONF, "00-galaxy.conflist": GALAXY_CONFLIST},
            "00-galaxy.conf",
            ["00-galaxy.conflist"],
        ),
        # a converted chain in use, its original .conf left behind
        (
            {"00-galaxy.conflist": GALAXY_CONFLIST, "10-galaxy.conf": GALAXY_CONF},
            "00-galaxy.conflist",
            ["10-galaxy.conf"],
        ),
        # other networks, or unreadable files, are not leftovers of this one
        (
            {
                "00-galaxy.conflist": GALAXY_CONFLIST,
                "10-other.conf": {**GALAXY_CONF, "name": "other"},
                "20-broken.json": "{",
                "30-list.json": "[]",
            },
            "00-galaxy.conflist",
            [],
        ),
    ],
)
def test_another_config_defining_the_active_network_is_a_leftover(
    files: dict[str, Any], active: str, leftovers: list[str]
) -> None:
    versions: dict[str, list[str] | str] = {"galaxy-sdn": ALL_VERSIONS}
    facts, findings = judge(files, ("galaxy-sdn",), versions, expect_plugin=False)
    assert facts["active_config"] == active
    found = [f for f in findings if f.kind == "leftover_config"]
    assert [f.detail.split()[0] for f in found] == leftovers
    assert all(f"shadowed by {active}" in f.detail and "'galaxy'" in f.detail for f in found)
    assert kinds(findings) == ["leftover_config"] * len(leftovers)


@pytest.mark.parametrize(
    ("names", "active"),
    [
        (["10-b.conflist", "05-a.json"], "05-a.json"),
        (["99-z.conf", "10-a.conflist"], "10-a.conflist"),
        (["10-a.conflist", "10-a.conf"], "10-a.conf"),  # a prefix sorts first
        (["00-notes.txt", "00-a.conflist.bak", "50-m.conf"], "50-m.conf"),
        (["Z.conflist", "a.conf"], "Z.conflist"),  # by bytes, as Go sorts
    ],
)
def test_the_active_config_is_the_first_by_name(names: list[str], active: str) -> None:
    files = {n: chain("0.3.1", "ptp", PLUGIN, name=n) for n in names}
    facts, _ = judge(files)
    assert facts["active_config"] == active


def test_a_single_plugin_conf_is_a_chain_of_one() -> None:
    bridge = {"cniVersion": "0.3.1", "type": "ptp"}
    facts, findings = judge({"10-bridge.conf": bridge}, expect_plugin=False)
    assert (facts["plugins"], facts["cni_version"], findings) == (["ptp"], "0.3.1", [])
