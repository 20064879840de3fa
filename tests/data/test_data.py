"""Broken dataset files stop with one line naming the file and what is wrong."""
import gzip
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from multinet.data import DataConfig, load_data, load_images


def _idx(path, arr, gz=False):
    arr = np.asarray(arr, dtype=np.uint8)
    data = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def _folder(tmp_path, images=None, labels=None):
    images = np.zeros((6, 4, 4)) if images is None else images
    labels = np.arange(6) % 3 if labels is None else labels
    _idx(tmp_path / "t-images-idx3-ubyte", images)
    _idx(tmp_path / "t-labels-idx1-ubyte", labels)
    return DataConfig(name="idx", root=str(tmp_path), batch_size=2)


def test_a_good_idx_folder_loads(tmp_path):
    data = load_data(_folder(tmp_path), torch.device("cpu"), 0)
    assert data.shape == (1, 4, 4) and data.num_classes == 3


@pytest.mark.parametrize("breakage,msg", [
    (lambda p: (p / "t-images-idx3-ubyte").write_bytes(b""), "not an IDX file (0 bytes)"),
    (lambda p: (p / "t-images-idx3-ubyte").write_bytes(b"\x00\x00"), "not an IDX file (2 bytes)"),
    (lambda p: (p / "t-images-idx3-ubyte").write_bytes((p / "t-images-idx3-ubyte").read_bytes()[:40]),
     "truncated IDX file"),
    (lambda p: _idx(p / "t-labels-idx1-ubyte", np.arange(4)), "6 images but 4 labels"),
    (lambda p: _idx(p / "t-images-idx3-ubyte", np.zeros(6)), "expected N × rows × columns images"),
    (lambda p: _idx(p / "t-labels-idx1-ubyte", [0, 1, 2, 255, 0, 1]), "label 255 out of range"),
])
def test_broken_idx_files_are_one_line(tmp_path, breakage, msg):
    cfg = _folder(tmp_path)
    breakage(tmp_path)
    with pytest.raises(ValueError, match=re.escape(msg)):
        load_data(cfg, torch.device("cpu"), 0)


def test_a_truncated_gz_is_one_line(tmp_path):
    _idx(tmp_path / "t-images-idx3-ubyte.gz", np.random.randint(0, 255, (50, 8, 8)), gz=True)
    _idx(tmp_path / "t-labels-idx1-ubyte", np.arange(50) % 10)
    raw = (tmp_path / "t-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "t-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"t-images-idx3-ubyte.gz: unreadable IDX file"):
        load_data(DataConfig(name="idx", root=str(tmp_path)), torch.device("cpu"), 0)


def test_the_bundled_digits_are_scikit_learns_without_importing_it():
    from sklearn.datasets import load_digits
    x, y = load_images(DataConfig(name="digits"))
    d = load_digits()
    assert torch.equal(x, torch.from_numpy(d.images.astype(np.float32) * (255.0 / 16.0))[:, None])
    assert torch.equal(y, torch.from_numpy(d.target.astype(np.int64)))
    # A short run on the default should not pay for scikit-learn's (and SciPy's) import.
    code = ("import sys; from multinet.data import DataConfig, load_images; "
            "x, _ = load_images(DataConfig(name='digits')); print(tuple(x.shape), 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["(1797,", "1,", "8,", "8)", "False"]


@pytest.mark.parametrize("content,msg", [  # ids from bytes: the same in every test process
    (b"\x1f\x8b\x08\x00garbage", "unreadable"),
    (gzip.compress(b"1,2,3\n4,5,6\n", mtime=0), "expected 64 pixels and a label per row, got 3 columns"),
])
def test_a_damaged_digits_file_is_one_line(tmp_path, monkeypatch, content, msg):
    import importlib.machinery
    import importlib.util
    (tmp_path / "datasets" / "data").mkdir(parents=True)
    (tmp_path / "datasets" / "data" / "digits.csv.gz").write_bytes(content)
    spec = importlib.machinery.ModuleSpec("sklearn", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "sklearn" else None)
    with pytest.raises(ValueError, match=re.escape(msg)) as e:
        load_images(DataConfig(name="digits"))
    assert "digits.csv.gz" in str(e.value) and "\n" not in str(e.value)
