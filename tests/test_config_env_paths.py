"""A config path may use any environment variable ($NAME, ${NAME}); one that is not set is a one-line error
naming it (it used to be read literally: "file '.../$MY_DATA/x.csv': file not found")."""

from __future__ import annotations

import pandas as pd
import pytest

from deepqoe.cli import main


def _files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"a": [float(i) for i in range(30)], "y": [float(i % 5) for i in range(30)]}).to_csv(
        data / "t.csv", index=False)
    cfgs = tmp_path / "cfgs"
    cfgs.mkdir()
    return data


def _config(tmp_path, source: str):
    path = tmp_path / "cfgs" / "c.yaml"
    path.write_text(f"""dataset:
  name: t
  source: {source}
  task: regression
  target: y
  inputs:
    - {{column: a, modality: continuous}}
training: {{max_epochs: 2}}
""")
    return path


@pytest.mark.parametrize("form", ["$MY_QOE_DATA/t.csv", "${MY_QOE_DATA}/t.csv"])
def test_an_environment_variable_in_a_source_path_is_expanded(tmp_path, monkeypatch, capsys, form):
    data = _files(tmp_path)
    monkeypatch.setenv("MY_QOE_DATA", str(data))
    assert main(["train", str(_config(tmp_path, form)), "--out", str(tmp_path / "m"), "-q"]) == 0
    assert (tmp_path / "m" / "model.json").is_file()


def test_an_unset_variable_is_named(tmp_path, monkeypatch, capsys):
    _files(tmp_path)
    monkeypatch.delenv("MY_QOE_DATA", raising=False)
    code = main(["train", str(_config(tmp_path, "$MY_QOE_DATA/t.csv")), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "environment variable MY_QOE_DATA, which is not set" in err[0], err
    assert not (tmp_path / "m").exists()


def test_a_file_whose_name_has_a_dollar_is_still_read(tmp_path, monkeypatch):
    from deepqoe.config import resolve_path

    monkeypatch.delenv("NOT_A_VAR", raising=False)
    (tmp_path / "$NOT_A_VAR.csv").write_text("a\n1\n")
    assert resolve_path("$NOT_A_VAR.csv", str(tmp_path)) == tmp_path / "$NOT_A_VAR.csv"
