"""Run records (the probes' ``record_as``): the first record of a name wins."""

from chaosmesh_sec.probes import matrix, sidecar_certs
from chaosmesh_sec.probes._baselines import RunRecords


def test_the_first_record_of_a_name_is_kept() -> None:
    records: RunRecords[dict[str, str]] = RunRecords("test value")
    assert records.get("before") is None
    assert records.record("before", {"a": "allowed"}) is True
    assert records.record("before", {"a": "denied_by_mesh"}) is False
    assert records.get("before") == {"a": "allowed"}
    assert records.record("after", {"a": "denied_by_mesh"}) is True
    assert records.get("after") == {"a": "denied_by_mesh"}


def test_both_recording_probes_keep_their_records_so() -> None:
    assert isinstance(matrix._BASELINES, RunRecords)
    assert isinstance(sidecar_certs._SERIALS, RunRecords)
