"""Runs that never lie: an --out holds one complete run (never a mix of two, never a half
run), one run at a time writes there, and the callbacks never write over an earlier run's
epoch files silently."""

import json
import os
import re
import signal
import socket

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_conv_net
from tf_signsal import _io, callbacks, demo, plotting
from tf_signsal.cli import main
from tf_signsal.cli.explain import MANIFEST
from tf_signsal.maps import SignedSaliency

# Linux's pid_max is at most 2**22, so no process has this pid.
DEAD_PID = 2**22 + 1


def _pictures(folder, count):
    rng = np.random.default_rng(5)
    paths = []
    for index in range(count):
        paths.append(str(folder / f"{index:02d}.png"))
        os.makedirs(folder, exist_ok=True)
        array = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        tf.io.write_file(paths[-1], tf.io.encode_png(array))
    return paths


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _contents(folder):
    """{relative path: bytes} of every file under `folder`."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                found[os.path.relpath(path, folder)] = file.read()
    return found


def _lock(out):
    return out.parent / f".{out.name}.tf-signsal.lock"


# ----------------------------------------------------------------------------- the commands


def test_two_explain_runs_into_one_out_leave_one_complete_run(capsys, tmp_path, model_file,
                                                              monkeypatch):
    many = _pictures(tmp_path / "in", 9)  # two grids
    out = tmp_path / "maps"
    save_figure, second = plotting.save_figure, {}

    def start_a_second_run(figure, path):  # while the first writes its grids
        if not second:
            second["status"] = main(["explain", "--model", model_file, "--images", many[0],
                                     "--out", str(out), "--methods", "positive"])
            second["err"] = capsys.readouterr().err
        save_figure(figure, path)

    monkeypatch.setattr(plotting, "save_figure", start_a_second_run)
    status, _, err = _run(capsys, "explain", "--model", model_file, "--images", *many,
                          "--out", out, "--methods", "positive")
    assert status == 0, err
    assert second["status"] == 1
    assert (f"--out {out} is being written by another tf-signsal run: explain in process "
            f"{os.getpid()}") in second["err"]
    # One complete run: the first's maps.npz and all its grids, listed.
    names = ["maps.npz", "maps_000.png", "overlays_000.png", "maps_001.png", "overlays_001.png"]
    assert _io.read_json(out / MANIFEST) == {"command": "explain", "files": names}
    assert sorted(os.listdir(out)) == sorted([MANIFEST, *names])
    assert len(np.load(out / "maps.npz")["files"]) == 9
    assert sorted(os.listdir(tmp_path)) == ["in", "maps"]  # no lock, no folder of a run


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError])
def test_an_interrupted_run_leaves_the_previous_complete_run(capsys, tmp_path, model_file,
                                                             monkeypatch, stop):
    many = _pictures(tmp_path / "in", 2)
    out = tmp_path / "maps"
    argv = ["explain", "--model", model_file, "--out", out, "--methods", "positive", "--images"]
    assert _run(capsys, *argv, *many)[0] == 0
    (out / "mine.txt").write_text("the user's")
    before = _contents(out)

    def stopped(figure, path):  # Ctrl-C, or a full disk, once maps.npz is written
        raise stop("stopped while writing the grids")

    monkeypatch.setattr(plotting, "save_figure", stopped)
    argv.append(many[0])
    if stop is KeyboardInterrupt:
        with pytest.raises(KeyboardInterrupt):
            main([str(a) for a in argv])
    else:
        status, _, err = _run(capsys, *argv)
        assert status == 1 and "stopped while writing the grids" in err
    assert _contents(out) == before
    assert sorted(os.listdir(tmp_path)) == ["in", "maps"]  # the lock released, the run removed
    monkeypatch.undo()
    status, _, err = _run(capsys, *argv)  # and the next run is not refused
    assert status == 0, err
    assert len(np.load(out / "maps.npz")["files"]) == 1


@pytest.mark.parametrize("command", ["explain", "evaluate", "sanity", "export", "demo"])
@pytest.mark.parametrize("holder", ["this process", "another process", "another host"])
def test_a_run_into_a_locked_out_is_refused_before_any_work(capsys, tmp_path, command, holder):
    out = tmp_path / "out"
    pid = {"this process": os.getpid(), "another process": os.getppid()}.get(holder, DEAD_PID)
    host = "elsewhere.example" if holder == "another host" else socket.gethostname()
    record = {"pid": pid, "host": host, "command": "evaluate", "started": "2026-01-02T03:04:05"}
    _lock(out).write_text(json.dumps(record))
    absent = tmp_path / "absent.keras"  # would be the error if the lock were not checked
    argv = {
        "explain": ["explain", "--model", absent, "--images", tmp_path / "in", "--out", out],
        "evaluate": ["evaluate", "--model", absent, "--data", "cifar10", "--out", out],
        "sanity": ["sanity", "--model", absent, "--data", "cifar10", "--out", out],
        "export": ["export", "--model", absent, "--out", out],
        "demo": ["demo", "--out", out],
    }[command]
    status, _, err = _run(capsys, *argv)
    assert status == 1 and len(err.strip().splitlines()) == 1, err
    assert (f"--out {out} is being written by another tf-signsal run: evaluate in process "
            f"{pid} on {host}, since 2026-01-02T03:04:05") in err
    assert f"if no such run is alive, remove {_lock(out)}" in err
    assert ("cannot be told from this host" in err) == (holder == "another host")
    assert json.loads(_lock(out).read_text()) == record and not out.exists()


def test_the_api_takes_the_same_lock(tmp_path):
    out = tmp_path / "demo"
    _lock(out).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(FileExistsError, match="is being written by another tf-signsal run"):
        demo.run_demo(out)
    assert sorted(os.listdir(tmp_path)) == [_lock(out).name]


def test_a_stale_lock_is_taken_over_and_a_killed_runs_files_removed(capsys, tmp_path,
                                                                   model_file):
    with pytest.raises(ProcessLookupError):
        os.kill(DEAD_PID, 0)
    image = _pictures(tmp_path / "in", 1)[0]
    out = tmp_path / "parent" / "maps"
    out.parent.mkdir()
    _lock(out).write_text(json.dumps({"pid": DEAD_PID, "host": socket.gethostname()}))
    killed = out.parent / f".maps.tf-signsal-explain.incomplete-{'0' * 32}"
    killed.mkdir()
    (killed / "maps.npz").write_bytes(b"half written")
    status, _, err = _run(capsys, "explain", "--model", model_file, "--images", image,
                          "--out", out, "--methods", "positive")
    assert status == 0, err
    assert (f"tf-signsal: --out {out}: took over the lock {_lock(out)} of process {DEAD_PID}, "
            "which no longer runs") in err
    assert f"removed {killed.name}, the files of a run that was killed while writing" in err
    assert sorted(os.listdir(out.parent)) == ["maps"]
    assert len(np.load(out / "maps.npz")["files"]) == 1


# ----------------------------------------------------------------------------- the policy


def _write(contents):
    def write(folder):
        for name, text in contents.items():
            path = os.path.join(folder, *name.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as file:
                file.write(text)
        return sorted(contents)

    return write


_OWN = re.compile(r"[abc]\.txt|logs/\d\.txt")


def _one_run(out, contents, tell=None):
    names = sorted({name.split("/")[0] for name in contents})
    with _io.locked_output_folder(out, "t", tell=tell):
        earlier = _io.claim_output_folder(out, "t", names, _OWN, tell=tell)
        return _io.write_output_folder(out, "t", names, earlier, _write(contents))


def test_a_run_replaces_only_what_the_earlier_run_wrote(tmp_path):
    out = tmp_path / "out"
    assert _one_run(out, {"a.txt": "1", "b.txt": "1", "logs/1.txt": "1", "logs/2.txt": "1"}) == (
        ["a.txt", "b.txt", "logs/1.txt", "logs/2.txt"], [])
    (out / "logs" / "notes.txt").write_text("the user's")
    with pytest.raises(FileExistsError, match=r"holds logs/notes.txt, which t did not write"):
        _one_run(out, {"a.txt": "2", "logs/1.txt": "2"})
    (out / "logs" / "notes.txt").rename(out / "notes.txt")
    _, stale = _one_run(out, {"a.txt": "2", "logs/1.txt": "2"})
    assert stale == ["b.txt", "logs/2.txt"]
    assert _contents(out) == {".tf-signsal-t.json": (out / ".tf-signsal-t.json").read_bytes(),
                              "a.txt": b"2", "logs/1.txt": b"2", "notes.txt": b"the user's"}
    assert _io.read_json(out / ".tf-signsal-t.json") == {"command": "t",
                                                         "files": ["a.txt", "logs/1.txt"]}


def test_ctrl_c_while_the_files_move_in_waits_until_they_are_in(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _one_run(out, {"a.txt": "old", "b.txt": "old"})
    rename = os.rename

    def interrupted(source, target):  # Ctrl-C as the written run is about to move in
        signal.raise_signal(signal.SIGINT)
        rename(source, target)

    with _io.locked_output_folder(out, "t"):
        earlier = _io.claim_output_folder(out, "t", ["a.txt"], _OWN)
        monkeypatch.setattr(os, "rename", interrupted)
        with pytest.raises(KeyboardInterrupt):
            _io.write_output_folder(out, "t", ["a.txt"], earlier, _write({"a.txt": "new"}))
        monkeypatch.undo()
    assert sorted(os.listdir(out)) == [".tf-signsal-t.json", "a.txt"]
    assert (out / "a.txt").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["out"]


class _Killed(BaseException):
    """The process killed (SIGKILL): no handler runs."""


def test_a_run_killed_while_moving_in_is_completed_by_the_next(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _one_run(out, {"a.txt": "old", "b.txt": "old"})
    replace = os.replace

    def killed_at_c(source, target):
        if os.path.basename(target) == "c.txt":
            raise _Killed
        replace(source, target)

    monkeypatch.setattr(os, "replace", killed_at_c)
    with pytest.raises(_Killed):
        _one_run(out, {"a.txt": "new", "c.txt": "new"})
    monkeypatch.undo()
    # What the kill left: a.txt moved in, c.txt not; the manifest says the run is incomplete.
    assert (out / "a.txt").read_text() == "new" and not (out / "c.txt").exists()
    assert _io.read_json(out / ".tf-signsal-t.json")["incomplete"].startswith(".out.tf-signsal-t.")
    told = []
    with _io.locked_output_folder(out, "t", tell=told.append):
        assert _io.claim_output_folder(out, "t", ["a.txt"], _OWN, tell=told.append) == [
            "a.txt", "c.txt"]
    assert told == [f"`out` {out}: moved in the files of the t run that was killed while "
                    "moving them"]
    assert _contents(out) == {".tf-signsal-t.json": (out / ".tf-signsal-t.json").read_bytes(),
                              "a.txt": b"new", "c.txt": b"new"}
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_an_unreadable_lock_is_refused_while_fresh_and_taken_over_when_old(tmp_path):
    out = tmp_path / "out"
    _lock(out).write_text("")  # a run locking this instant, or killed at that instant
    with pytest.raises(FileExistsError, match="is being locked by another tf-signsal run"):
        _one_run(out, {"a.txt": "1"})
    os.utime(_lock(out), (0, 0))
    told = []
    _one_run(out, {"a.txt": "1"}, tell=told.append)
    assert told == [f"`out` {out}: took over the lock {_lock(out)} of a run killed as it "
                    "locked, which no longer runs"]
    assert sorted(os.listdir(tmp_path)) == ["out"]


# ----------------------------------------------------------------------------- the callbacks


def _fit(callback, initial_epoch, epochs):
    """The hooks `fit(epochs=epochs, initial_epoch=initial_epoch)` calls on `callback`."""
    callback.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {})
    callback.on_train_end()


def _stamps(folder):
    """{name: (inode, mtime)}: a file written again gets a new inode (atomic writes)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture
def probe():
    return np.random.default_rng(2).random((2, 8, 8, 3), dtype=np.float32)


def _maps_callback(probe, folder, model, formats=("npz",), **kwargs):
    callback = callbacks.SaliencyMapsCallback(probe, folder, methods=["positive"],
                                              formats=formats, **kwargs)
    callback.set_model(model)
    return callback


def test_a_second_fit_of_the_maps_callback_is_refused_unless_overwrite(tmp_path, probe):
    folder = tmp_path / "maps"
    first = _maps_callback(probe, folder, small_conv_net(num_classes=3, seed=0),
                           formats=("npz", "png"))
    _fit(first, 0, 3)
    before = _stamps(folder)
    assert sorted(before) == [f"epoch_{e:04d}.{x}" for e in range(4) for x in ("npz", "png")]
    for again in (first, _maps_callback(probe, folder, first.model)):
        with pytest.raises(FileExistsError) as refused:
            _fit(again, 0, 1)
        assert str(refused.value) == (
            f"SaliencyMapsCallback: `log_dir` {folder} holds the epoch files of an earlier run "
            "(epochs 0 to 3), and this fit starts at epoch 0: it would write over them. Pass a "
            "new `log_dir`, overwrite=True to replace that run, or initial_epoch=3 to `fit` to "
            "continue it"
        )
        assert _stamps(folder) == before
    other = small_conv_net(num_classes=3, seed=7)
    _fit(_maps_callback(probe, folder, other, overwrite=True), 0, 1)
    assert sorted(os.listdir(folder)) == ["epoch_0000.npz", "epoch_0001.npz"]  # png too gone
    with np.load(folder / "epoch_0001.npz") as logged:  # the new run's
        np.testing.assert_array_equal(
            logged["logits"], SignedSaliency(other).explain(probe).logits.numpy()
        )


def test_a_resumed_fit_continues_the_maps_callbacks_epochs(tmp_path, probe):
    folder = tmp_path / "maps"
    model = small_conv_net(num_classes=3, seed=0)
    _fit(_maps_callback(probe, folder, model), 0, 2)
    before = _stamps(folder)
    _fit(_maps_callback(probe, folder, model), 2, 4)  # initial_epoch=2: the earlier run's end
    after = _stamps(folder)
    assert sorted(after) == [f"epoch_{e:04d}.npz" for e in range(5)]
    assert {name: after[name] for name in before} == before  # epoch 2 kept, not written again
    assert [e for e, _ in callbacks.logged_epochs(folder)] == [0, 1, 2, 3, 4]


def test_a_second_fit_of_the_allegiance_callback(tmp_path, probe):
    folder = tmp_path / "curves"
    model = small_conv_net(num_classes=3, seed=0)

    def allegiance(**kwargs):
        callback = callbacks.AllegianceCallback(probe, pairs=[("positive", "black")],
                                                fractions=[0.0, 0.5], save_dir=folder, **kwargs)
        callback.set_model(model)
        return callback

    callback = allegiance()
    _fit(callback, 0, 2)
    before = _stamps(folder)
    with pytest.raises(FileExistsError, match=re.escape(
        f"AllegianceCallback: `save_dir` {folder} holds the epoch files of an earlier run "
        "(epochs 1 to 2), and this fit starts at epoch 0"
    )):
        _fit(callback, 0, 1)
    assert _stamps(folder) == before
    _fit(callback, 2, 3)
    assert sorted(os.listdir(folder)) == ["epoch_0001.json", "epoch_0002.json", "epoch_0003.json"]
    assert {name: _stamps(folder)[name] for name in before} == before
    _fit(allegiance(overwrite=True), 0, 1)
    assert sorted(os.listdir(folder)) == ["epoch_0001.json"]


@pytest.mark.slow
def test_the_callbacks_across_fits(tmp_path, probe):
    """The documented flow with Keras's own fit: a second fit refused before its first
    step, a resumed one continuing the numbering."""
    rng = np.random.default_rng(0)
    x = rng.random((16, 8, 8, 3), dtype=np.float32)
    y = rng.integers(0, 3, 16)
    model = small_conv_net(num_classes=3, seed=0)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    maps_cb = callbacks.SaliencyMapsCallback(probe, tmp_path / "maps", formats=("npz",))
    model.fit(x, y, epochs=2, callbacks=[maps_cb], verbose=0)
    weights = [w.numpy() for w in model.weights]
    with pytest.raises(FileExistsError, match="initial_epoch=2 to `fit`"):
        model.fit(x, y, epochs=2, callbacks=[maps_cb], verbose=0)
    for kept, now in zip(weights, model.weights):  # refused before any training step
        np.testing.assert_array_equal(kept, now.numpy())
    model.fit(x, y, epochs=3, initial_epoch=2, callbacks=[maps_cb], verbose=0)
    assert [e for e, _ in callbacks.logged_epochs(tmp_path / "maps")] == [0, 1, 2, 3]
