"""The restricted unpickler refuses anything but numpy arrays, and nothing in a refused file runs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from sopdeep._safepickle import UnsafePickleError, load_torch_zip_pickle, restricted_loads
from sopdeep.datasets import load_cifar10
from sopdeep.noise import load_cifar_n, read_cifar_n


class _Payload:
    """Unpickling this object runs ``exec``, which creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _malicious_pt(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "CIFAR-10_human.pt"
    torch.save({"clean_label": np.zeros(4, dtype=np.int64), "worse_label": _Payload(marker)}, path)
    return path, marker


def test_malicious_payload_is_live_under_plain_torch_load(tmp_path):
    # Guards the refusal tests below: the file really runs code when loaded without restrictions.
    path, marker = _malicious_pt(tmp_path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_malicious_torch_zip_is_refused_without_running(tmp_path):
    path, marker = _malicious_pt(tmp_path)
    with pytest.raises(UnsafePickleError, match=r"(builtins|__builtin__)\.exec"):
        load_torch_zip_pickle(path)
    with pytest.raises(ValueError, match="refusing to load global"):
        load_cifar_n(path, "worst")
    assert not marker.exists()


def test_malicious_cifar_batch_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (base / name).write_bytes(pickle.dumps({"data": _Payload(marker), "labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load global"):
        load_cifar10(tmp_path)
    assert not marker.exists()


def test_torch_tensors_are_refused(tmp_path):
    path = tmp_path / "t.pt"
    torch.save({"clean_label": torch.zeros(3, dtype=torch.int64)}, path)
    # torch's tensor-rebuilding global is refused before its storage (a persistent id) is reached
    with pytest.raises(UnsafePickleError, match="torch._utils"):
        read_cifar_n(path)


def test_numpy_arrays_round_trip_through_torch_zip(tmp_path):
    rng = np.random.default_rng(0)
    obj = {"a": rng.integers(0, 10, size=7), "b": rng.random((2, 3)), "c": [1, 2, 3], "d": "text"}
    path = tmp_path / "ok.pt"
    torch.save(obj, path)
    out = load_torch_zip_pickle(path)
    assert set(out) == set(obj)
    np.testing.assert_array_equal(out["a"], obj["a"])
    np.testing.assert_array_equal(out["b"], obj["b"])
    assert out["c"] == obj["c"] and out["d"] == obj["d"]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_pickles_of_arrays_round_trip(protocol):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = restricted_loads(pickle.dumps({"x": arr, "n": np.int64(3)}, protocol=protocol))
    np.testing.assert_array_equal(out["x"], arr)
    assert out["n"] == 3


def test_corrupt_and_non_zip_files_raise_valueerror(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a torch zip"):
        load_torch_zip_pickle(bad)
    with pytest.raises(ValueError, match="corrupt pickle"):
        restricted_loads(pickle.dumps({"x": [1, 2, 3]})[:-5])
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_torch_zip_pickle(tmp_path / "absent.pt")


def test_persistent_ids_are_refused():
    import io

    class _P(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage0" if isinstance(obj, bytearray) else None

    buf = io.BytesIO()
    _P(buf, protocol=2).dump({"x": bytearray(b"abc")})
    with pytest.raises(UnsafePickleError, match="persistent"):
        restricted_loads(buf.getvalue())


def test_payload_hidden_inside_an_object_array_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = 1, _Payload(marker)
    for protocol in (2, 5):
        with pytest.raises(UnsafePickleError, match="exec"):
            restricted_loads(pickle.dumps({"clean_label": arr}, protocol=protocol))
    assert not marker.exists()


@pytest.mark.parametrize("target", ["os.system", "subprocess.Popen", "builtins.eval", "numpy.load", "torch.load"])
def test_every_global_outside_the_allow_list_is_refused(target):
    module, name = target.rsplit(".", 1)
    # protocol-2 GLOBAL opcode naming the callable, then a call with one string argument
    stream = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x04\x00\x00\x00echo\x85R."
    with pytest.raises(UnsafePickleError, match=f"refusing to load global {module}.{name}"):
        restricted_loads(stream)


def test_codecs_encode_is_admitted_only_for_text():
    import codecs

    ok = pickle.dumps(codecs.encode("\xff\x00", "latin1"), protocol=2)  # py2-style bytes: _codecs.encode(str, latin1)
    assert restricted_loads(ok) == b"\xff\x00"
    bad = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R."
    with pytest.raises(UnsafePickleError, match="_codecs.encode is admitted only"):
        restricted_loads(bad)


@given(
    dtype=st.sampled_from(["uint8", "int64", "int32", "float32", "float64", "bool"]),
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=3),
    seed=st.integers(0, 2**32 - 1),
    protocol=st.sampled_from([2, 4, 5]),
)
def test_any_numeric_array_round_trips(dtype, shape, seed, protocol):
    arr = (np.random.default_rng(seed).random(shape) * 100).astype(dtype)
    out = restricted_loads(pickle.dumps({"a": arr, "t": arr.T}, protocol=protocol))
    np.testing.assert_array_equal(out["a"], arr)
    np.testing.assert_array_equal(out["t"], arr.T)
    assert out["a"].dtype == arr.dtype


def test_bytes_is_admitted_only_as_the_empty_bytes_object():
    assert restricted_loads(pickle.dumps(b"", protocol=2)) == b""
    bomb = b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x7f\x85R."  # bytes(2**31 - ...) would allocate 2 GB
    with pytest.raises(UnsafePickleError, match="bytes"):
        restricted_loads(bomb)
