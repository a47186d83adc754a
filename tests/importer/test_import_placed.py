"""A dump the scenario checks refuse is the dump's problem, at the dump's line: two
Services asking for one nodePort printed "the imported scenario does not validate
(please report this)" without a line (issue 22)."""

from __future__ import annotations

from pathlib import Path

import pytest

from npsim.importer import DumpError, import_cluster

FIXTURE = Path(__file__).parent / "fixtures" / "cluster.yaml"


def test_two_services_on_one_node_port_name_the_dump_line(tmp_path: Path) -> None:
    text = FIXTURE.read_text().replace("nodePort: 30900", "nodePort: 31080")
    dump = tmp_path / "dump.yaml"
    dump.write_text(text)
    out = tmp_path / "imported.yaml"
    with pytest.raises(DumpError) as info:
        import_cluster([dump], out)
    (problem,) = info.value.problems
    assert problem.mark is not None and problem.mark.file == str(dump)
    line = text.splitlines()[problem.mark.line - 1]
    assert "nodePort: 31080" in line and "grpc" in line
    assert problem.path.endswith("spec.ports[0].nodePort")
    assert "already allocated" in problem.message and "please report" not in problem.message
    assert not out.exists()


def test_a_workers_column_past_the_bound_names_the_csv_line(tmp_path: Path) -> None:
    """It reached the scenario check: 'does not validate (please report this)'."""
    times = tmp_path / "times.csv"
    times.write_text("deployment,namespace,service_time,workers\nweb,shop,5ms,2000000\n")
    with pytest.raises(DumpError) as info:
        import_cluster([FIXTURE], tmp_path / "out.yaml", service_times=times)
    (problem,) = info.value.problems
    assert (problem.mark.file, problem.mark.line) == (str(times), 2)
    assert "from 1 to 1,048,576" in problem.message
