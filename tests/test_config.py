import pytest

import mbutils


def test_config_context_restores():
    before = mbutils.get_config().progress
    with mbutils.config_context(progress=not before):
        assert mbutils.get_config().progress is (not before)
    assert mbutils.get_config().progress is before


def test_set_config_rejects_unknown():
    with pytest.raises(ValueError, match="unknown setting 'colour'"):
        mbutils.set_config(colour="red")


def test_set_config_rejects_bad_device():
    with pytest.raises(ValueError, match="device='tpu'"):
        mbutils.set_config(device="tpu")


def test_cli_help_runs(capsys):
    from mbutils.cli import main

    assert main([]) == 2
    assert "mbutils" in capsys.readouterr().out
