import json

import numpy as np
import pytest
import torch

from genmodels import load, save
from genmodels._validation import as_tensor, check_data_matrix
from genmodels.cli import main
from genmodels.data import available_datasets, load_dataset, load_file
from genmodels.io import SavableModule, atomic_write_text


@pytest.mark.parametrize(
    ("name", "shape"),
    [("digits", (1797, 64)), ("iris", (150, 4)), ("wine", (178, 13)),
     ("breast_cancer", (569, 30)), ("nile", (100, 1))],
)
def test_bundled_real_datasets(name, shape):
    ds = load_dataset(name)
    assert tuple(ds.X.shape) == shape and ds.X.dtype == torch.float64
    assert torch.isfinite(ds.X).all()


def test_nile_matches_the_published_series():
    ds = load_dataset("nile")
    assert ds.index[0] == 1871 and ds.index[-1] == 1970
    assert ds.X[0, 0] == 1120.0 and ds.X.mean() == pytest.approx(919.35, abs=0.01)


def test_sample_photograph_as_pixels():
    ds = load_dataset("china")
    h, w, c = ds.image_shape
    assert ds.X.shape == (h * w, c) and 0.0 <= ds.X.min() and ds.X.max() <= 1.0


def test_files_by_path(tmp_path):
    arr = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "a.npy", arr)
    (tmp_path / "b.csv").write_text("x,y,label\n1,2,0\n3,4,1\n")
    assert torch.equal(load_dataset(str(tmp_path / "a.npy")).X, torch.as_tensor(arr))
    ds = load_file(tmp_path / "b.csv", target_column=2)
    assert ds.feature_names == ["x", "y"] and ds.target_name == "label"
    assert ds.y.tolist() == [0.0, 1.0] and ds.X.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    first = load_file(tmp_path / "b.csv", target_column=-3)
    assert first.feature_names == ["y", "label"] and first.target_name == "x"
    with pytest.raises(ValueError, match=r"target_column must be .* \[-3, 3\)"):
        load_file(tmp_path / "b.csv", target_column=3)
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("no-such-data")
    with pytest.raises(ValueError, match="does not exist"):
        load_file(tmp_path / "missing.csv")


def test_synthetic_seeds():
    from genmodels.data import synthetic

    class Noise:
        def sample(self, n, generator=None):
            return torch.randn(n, 2, generator=generator)

    model = Noise()
    a, b = synthetic(model, 50, seed=4), synthetic(model, 50, seed=4)
    assert torch.equal(a.X, b.X)
    torch.manual_seed(0)  # seed=None must not fall back to a fixed seed
    c, d = synthetic(model, 50, seed=None), synthetic(model, 50, seed=None)
    assert not torch.equal(c.X, d.X)
    assert not torch.equal(c.X, synthetic(model, 50, seed=0).X)


def test_validation_messages():
    with pytest.raises(ValueError, match=r"NaN at index \(1, 0\)"):
        as_tensor(np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match="2-dimensional"):
        check_data_matrix(np.zeros(3))
    with pytest.raises(ValueError, match="at least 5"):
        check_data_matrix(np.zeros((3, 2)), min_samples=5)
    with pytest.raises(ValueError, match="numeric"):
        as_tensor(np.array(["a", "b"]))
    import pandas as pd

    assert as_tensor(pd.DataFrame({"a": [1, 2]})).dtype == torch.float64


class Tiny(SavableModule):
    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.config = {"k": k}
        self.register_buffer("w", torch.zeros(k))


def test_save_load_round_trip(tmp_path, monkeypatch):
    m = Tiny(4)
    m.w = torch.arange(4.0)
    save(m, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["config"] == {"k": 4}
    with pytest.raises(ValueError, match="outside genmodels"):
        load(tmp_path / "m")
    back = load(tmp_path / "m", allow_external=True)
    assert torch.equal(back.w, m.w)
    with pytest.raises(ValueError, match="not a saved genmodels model"):
        load(tmp_path)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_text(tmp_path / "f.txt", "one")
    atomic_write_text(tmp_path / "f.txt", "two")
    assert (tmp_path / "f.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_cli_lists_models_and_data(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in available_datasets())


def test_bars_and_stripes_are_all_distinct_patterns():
    from genmodels.data import bars_and_stripes

    X = bars_and_stripes(3)
    assert X.shape == (14, 9)
    assert len({tuple(r.tolist()) for r in X}) == 14
    images = X.reshape(-1, 3, 3)
    rows_constant = (images == images[:, :, :1]).all(dim=(1, 2))
    cols_constant = (images == images[:, :1, :]).all(dim=(1, 2))
    assert bool((rows_constant | cols_constant).all())
    with pytest.raises(ValueError, match="side must be a positive integer"):
        bars_and_stripes(0)
