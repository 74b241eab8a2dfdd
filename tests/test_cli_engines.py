"""--engine of `tf-signsal evaluate` and `explain`: the arguments, and the refusals made
before any work (an engine's option for another engine, options Ray cannot take, the
engine's extra missing, simulated by hiding its package). The runs on the engines are in
tests/test_beam.py and tests/test_ray.py, in the extras' own environments."""

import sys
import types

import pytest

from tf_signsal.cli import build_parser, main


def _parse(*argv):
    return build_parser().parse_args([str(a) for a in argv])


EVALUATE = ("evaluate", "--model", "m.keras", "--data", "cifar10", "--out", "o")
EXPLAIN = ("explain", "--model", "m.keras", "--images", "a.png", "--out", "o")


@pytest.mark.parametrize("command", [EVALUATE, EXPLAIN])
def test_engine_arguments(command):
    args = _parse(*command)
    assert (args.engine, args.ray_address, args.beam_option) == ("local", None, None)
    args = _parse(*command, "--engine", "beam", "--beam-option", "runner=DirectRunner",
                  "--beam-option", "direct_num_workers=2")
    assert args.engine == "beam"
    assert args.beam_option == ["--runner=DirectRunner", "--direct_num_workers=2"]
    assert _parse(*command, "--engine", "ray", "--ray-address", "auto").ray_address == "auto"


@pytest.mark.parametrize("argv, expected", [
    (("--engine", "spark"), "invalid choice: 'spark'"),
    (("--engine", "beam", "--beam-option", "runner"), "must be KEY=VALUE"),
    (("--engine", "beam", "--beam-option=--runner=X"), "must be KEY=VALUE"),
])
def test_bad_engine_arguments_are_usage_errors(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_:
        _parse(*EVALUATE, *argv)
    assert exit_.value.code == 2 and expected in capsys.readouterr().err


def _refused(capsys, tmp_path, command, *argv):
    """Run the command with --out in tmp_path; return its one-line error. Nothing is
    written: the refusal comes before any work (the model file does not even exist)."""
    out = tmp_path / "out"
    argv = [str(a) for a in (*command[:-1], out, *argv)]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1, err
    assert not out.exists()
    return err


@pytest.mark.parametrize("command", [EVALUATE, EXPLAIN])
def test_an_engines_option_for_another_engine_is_refused(capsys, tmp_path, command):
    err = _refused(capsys, tmp_path, command, "--ray-address", "auto")
    assert "--ray-address is an option of --engine ray, not of --engine local" in err
    err = _refused(capsys, tmp_path, command, "--engine", "ray", "--beam-option", "a=b")
    assert "--beam-option is an option of --engine beam, not of --engine ray" in err


def test_ray_refuses_the_loading_options_it_cannot_pass(capsys, tmp_path):
    err = _refused(capsys, tmp_path, EVALUATE, "--engine", "ray", "--value-range", "0", "255",
                   "--signature", "serve")
    assert "--signature, --value-range cannot be passed to its workers" in err


@pytest.mark.parametrize("engine, package", [("beam", "apache_beam"), ("ray", "ray")])
@pytest.mark.parametrize("command", [EVALUATE, EXPLAIN])
def test_a_missing_extra_is_one_line_naming_the_pip_command(
    capsys, tmp_path, monkeypatch, engine, package, command
):
    monkeypatch.setitem(sys.modules, package, None)  # import apache_beam/ray fails
    monkeypatch.delitem(sys.modules, f"tf_signsal.{engine}", raising=False)
    err = _refused(capsys, tmp_path, command, "--engine", engine)
    assert f"--engine {engine} needs its extra: pip install 'tf_signsal[{engine}]'" in err


def test_explain_on_an_engine_refuses_targets_and_a_used_folder(capsys, tmp_path, monkeypatch):
    # The refusals that follow the extra's import, with the engine's module stood in for.
    monkeypatch.setitem(sys.modules, "tf_signsal.beam", types.ModuleType("tf_signsal.beam"))
    err = _refused(capsys, tmp_path, EXPLAIN, "--engine", "beam", "--targets", "3")
    assert "--targets is not taken with --engine beam" in err
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    status = main([*EXPLAIN[:-1], str(used), "--engine", "beam"])
    assert status == 1 and "is not empty" in capsys.readouterr().err
    assert [p.name for p in used.iterdir()] == ["notes.txt"]


@pytest.mark.ray
def test_command_line_evaluate_and_explain_on_ray_equal_local(capsys, tmp_path):
    """tf-signsal evaluate/explain --engine ray (a local Ray) give the local results and
    maps. (The Beam twin is in tests/test_beam.py.)"""
    ray = pytest.importorskip("ray")
    import numpy as np

    import tf_signsal
    from conftest import assert_stored_maps_equal, small_conv_net, write_image_tree
    from tf_signsal._io import read_json

    model_path = tmp_path / "model.keras"
    small_conv_net(num_classes=10, seed=2).save(model_path)
    write_image_tree(str(tmp_path), "photos", (8, 8), np.random.default_rng(4))
    photos = tmp_path / "photos"

    def run(*argv):
        status = main([str(a) for a in argv])
        assert status == 0, capsys.readouterr().err

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        common = ["--model", model_path, "--data", photos, "--batch-size", 6]
        run("evaluate", *common, "--out", tmp_path / "local")
        run("evaluate", *common, "--out", tmp_path / "ray", "--engine", "ray")
        explain = ["explain", "--model", model_path, "--images", photos, "--batch-size", 4]
        run(*explain, "--out", tmp_path / "maps_local")
        run(*explain, "--out", tmp_path / "maps_ray", "--engine", "ray")
    finally:
        ray.shutdown()
    local, engine = (read_json(tmp_path / out / "results.json") for out in ("local", "ray"))
    assert engine["run"]["parameters"]["engine"] == "ray"
    for record in (local, engine):
        del record["run"]
    assert engine == local
    expected = np.load(tmp_path / "maps_local" / "maps.npz")
    stored = tf_signsal.read_maps(tmp_path / "maps_ray")
    assert_stored_maps_equal(stored, expected)
