"""MLflow (local file store) and Weights & Biases (offline) as trackers, with the real libraries."""
import importlib.util

import pytest

from multinet import Runner
from multinet.config import ConfigError, from_dict, load_recipe
from multinet.gan import GanRecipe, GanSystem
from multinet.state.checkpoint import load_checkpoint

pytest.importorskip("mlflow")
pytest.importorskip("wandb")

ITEMS = ["device='cpu'", "train.steps=8", "train.log_every=2", "train.sample_every=4", "train.checkpoint_every=4",
         "train.tensorboard=false", "eval.samples=100", "eval.classifier_epochs=1", "eval.standard_metrics=false",
         "networks.generator.ema=0"]


def test_mlflow_and_wandb_receive_scalars_images_and_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = load_recipe(GanRecipe, "gan_digits", [*ITEMS, "train.trackers=['mlflow', 'wandb']"])
    out = tmp_path / "run"
    assert Runner(GanSystem, cfg, out, progress=False, echo=False, stop_at=4).fit().code == 0
    # A resume logs where it is told now (the trackers given again), never where the checkpoint says.
    assert Runner(GanSystem, cfg, out=out, resume=True, progress=False, echo=False).fit().code == 0

    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    run_id = (out / "mlflow_run_id").read_text().strip()
    runs = client.search_runs([client.get_experiment_by_name("multinet").experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]  # the resumed run logged to the same MLflow run
    steps = [m.step for m in client.get_metric_history(run_id, "loss/discriminator")]
    assert steps == [2, 4, 6, 8]
    run = client.get_run(run_id)
    assert run.data.params["gan.loss"] == "bce" and run.data.params["train.steps"] == "8"
    assert "classifier_is" in run.data.metrics  # the final evaluation too
    assert {a.path for a in client.list_artifacts(run_id)} >= {"images"}

    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2  # one folder per process, one run id
    assert len({p.name.rsplit("-", 1)[1] for p in runs}) == 1
    assert {p.name.rsplit("-", 1)[1] for p in runs} == {(out / "wandb_run_id").read_text().strip()}
    data = b"".join(f.read_bytes() for p in runs for f in p.glob("*.wandb"))
    assert b"loss/discriminator" in data and b"classifier_is" in data and b"gan.loss" in data  # scalars, summary, config
    assert list(out.glob("wandb/offline-run-*/files/media/images/**/*.png"))  # the sample grids


def _listener():
    """A loopback TCP server that counts the connections made to it (none should be)."""
    import socket
    import threading
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    seen, done = [], threading.Event()

    def accept():
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            seen.append(1)
            conn.close()
    threading.Thread(target=accept, daemon=True).start()
    return server, seen, done


def test_a_resume_never_sends_data_where_the_checkpoint_says(tmp_path, capsys):
    from multinet.state.checkpoint import load_checkpoint, save_checkpoint
    server, seen, done = _listener()
    try:
        cfg = load_recipe(GanRecipe, "gan_digits", [*ITEMS, "train.trackers=['mlflow']"])
        out = tmp_path / "run"
        assert Runner(GanSystem, cfg, out, progress=False, echo=False, stop_at=4).fit().code == 0
        ckpt = load_checkpoint(out / "checkpoints" / "last.pt")  # rewritten: the tracker now names a server
        ckpt.pop("format")
        ckpt["config"]["train"].update(mlflow_uri=f"http://127.0.0.1:{server.getsockname()[1]}", wandb_mode="online",
                                       trackers=["mlflow", "wandb"])
        save_checkpoint(ckpt, out / "checkpoints" / "last.pt")
        result = Runner(GanSystem, out=out, resume=True, progress=False).fit()
    finally:
        done.set()
        server.close()
    assert result.code == 0 and seen == []
    err = capsys.readouterr().err
    assert "logged to mlflow; this resume does not" in err and "logged to wandb; this resume does not" in err
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    steps = [m.step for m in client.get_metric_history((out / "mlflow_run_id").read_text().strip(), "loss/discriminator")]
    assert steps == [2, 4]  # nothing more went to the tracker the resume did not name


def test_an_unreachable_tracking_server_is_one_line_within_seconds(tmp_path):
    import socket
    import time
    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = load_recipe(GanRecipe, "gan_digits", [*ITEMS, "train.trackers=['mlflow']",
                                                f"train.mlflow_uri='http://127.0.0.1:{port}'"])
    t = time.monotonic()
    with pytest.raises(ValueError, match=r"train.trackers mlflow: cannot start \(train.mlflow_uri 'http://127.0.0.1"):
        Runner(GanSystem, cfg, tmp_path / "run", progress=False, echo=False).fit()
    assert time.monotonic() - t < 60


def test_tracker_names_and_missing_libraries_are_one_line(monkeypatch):
    with pytest.raises(ConfigError, match=r"train.trackers\[0\]: must be 'mlflow' or 'wandb', got 'neptune'"):
        from_dict(GanRecipe, {"train": {"trackers": ["neptune"]}})
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"'wandb' is not installed: pip install \"multinet\[wandb\]\""):
        from_dict(GanRecipe, {"train": {"trackers": ["wandb"]}})


def test_a_tracker_failing_mid_run_stops_it_in_one_line_and_keeps_the_checkpoint(tmp_path, monkeypatch, capsys):
    from mlflow.exceptions import MlflowException

    from multinet.tracking.backends import MlflowTracker
    sent = []

    def scalars(self, step, values):  # the server goes away after two logged steps (2, 4)
        sent.append(step)
        if len(sent) > 2:
            raise MlflowException("API request to http://tracking:5000 failed: connection refused\n(details)")
    monkeypatch.setattr(MlflowTracker, "scalars", scalars)
    cfg = load_recipe(GanRecipe, "gan_digits", [*ITEMS, "train.trackers=['mlflow']"])
    result = Runner(GanSystem, cfg, tmp_path / "run", progress=False).fit()
    err = capsys.readouterr().err
    assert result.code == 1 and "tracker MlflowTracker: scalars failed (API request to http://tracking:5000" in err
    assert err.count("\n") == 1 and "(during step 7)" in err, err
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["engine"]["iteration"] == 4  # kept


def test_a_tracker_run_id_file_is_checked_as_data(tmp_path):
    cfg = load_recipe(GanRecipe, "gan_digits", [*ITEMS, "train.trackers=['mlflow']"])
    out = tmp_path / "run"
    assert Runner(GanSystem, cfg, out, progress=False, echo=False, stop_at=4).fit().code == 0
    (out / "mlflow_run_id").write_text("../../elsewhere\n")
    with pytest.raises(ValueError, match=r"mlflow_run_id: '../../elsewhere' is not a tracker run id"):
        Runner(GanSystem, cfg, out=out, resume=True, progress=False, echo=False).fit()
