"""Batch inputs (files, folders, globs, lists), pairing and output naming."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from segtools.errors import InputError, OutputError
from segtools.io.batch import Item, check_output_dir, expand_inputs, output_path, pair_items, pairing_key
from segtools.io.parallel import pmap


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_folder_is_recursive_sorted_and_filtered(tmp_path):
    touch(tmp_path, "b.png", "a/c.png", "a/d.npy", "notes.txt", ".hidden.png", ".git/x.png")
    items = expand_inputs([str(tmp_path)])
    assert [it.rel for it in items] == ["a/c.png", "a/d.npy", "b.png"]


def test_glob_list_and_file(tmp_path):
    touch(tmp_path, "p/x/1.png", "p/x/2.png", "p/y/3.png")
    items = expand_inputs([str(tmp_path / "p" / "**" / "*.png")])
    assert [it.rel for it in items] == ["x/1.png", "x/2.png", "y/3.png"]
    listing = tmp_path / "list.txt"
    listing.write_text("# masks\np/x/2.png  extra-column\n\np/y/3.png\n")
    assert [it.rel for it in expand_inputs([f"@{listing}"])] == ["p/x/2.png", "p/y/3.png"]
    assert expand_inputs([str(tmp_path / "p/x/1.png")]) == [Item(str(tmp_path / "p/x/1.png"), "1.png")]


@pytest.mark.parametrize("spec, message", [
    ("missing.png", "no such file"), ("*.nothing", "matches no file"), ("@nolist.txt", "no such list"),
])
def test_bad_specs(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=message):
        expand_inputs([spec])


def test_empty_folder_and_bad_list_entry(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no png"):
        expand_inputs([str(tmp_path / "empty")])
    (tmp_path / "l.txt").write_text("gone.png\n")
    with pytest.raises(InputError, match=r"l.txt:1: gone.png"):
        expand_inputs([f"@{tmp_path / 'l.txt'}"])


def test_pairing_key_strips_dataset_suffixes():
    assert pairing_key("munster/munster_000001_000019_leftImg8bit.png") == "munster/munster_000001_000019"
    assert pairing_key("munster/munster_000001_000019_gtFine_labelIds.png") == "munster/munster_000001_000019"
    assert pairing_key("0016E5_07959_L.png") == "0016E5_07959"
    assert pairing_key("x.npy") == "x"


def test_pairing_by_path_then_stem(tmp_path):
    pred = [Item("p/a/1.png", "a/1.png"), Item("p/a/2_pred.png", "a/2_pred.png"), Item("p/3.png", "3.png")]
    gt = [Item("g/a/1.png", "a/1.png"), Item("g/a/2_gt.png", "a/2_gt.png"), Item("g/b/3.png", "b/3.png")]
    pairing = pair_items(pred, gt)
    assert [(p.path, g.path) for p, g in pairing.pairs] == [
        ("p/a/1.png", "g/a/1.png"), ("p/a/2_pred.png", "g/a/2_gt.png"), ("p/3.png", "g/b/3.png")]


def test_pairing_reports_missing_unless_allowed():
    pred = [Item("p/1.png", "1.png"), Item("p/9.png", "9.png")]
    gt = [Item("g/1.png", "1.png"), Item("g/2.png", "2.png")]
    with pytest.raises(InputError, match=r"1 prediction\(s\) without ground truth: p/9.png.*--allow-missing"):
        pair_items(pred, gt)
    pairing = pair_items(pred, gt, allow_missing=True)
    assert len(pairing.pairs) == 1 and pairing.only_left[0].path == "p/9.png" and pairing.only_right[0].path == "g/2.png"


def test_pairing_refuses_ambiguous_ground_truth():
    gt = [Item("g/1.png", "1.png"), Item("g/1.npy", "1.npy")]
    with pytest.raises(InputError, match="two ground truth"):
        pair_items([Item("p/1.png", "1.png"), Item("p/2.png", "2.png")], gt)


def test_output_naming(tmp_path):
    assert output_path(Item("x", "a/b.jpg"), tmp_path, ".png") == tmp_path / "a" / "b.png"
    with pytest.raises(OutputError):
        output_path(Item("x", "../evil.png"), tmp_path)
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="not a directory"):
        check_output_dir(tmp_path / "f")


def _square(x: int) -> int:
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


@pytest.mark.parametrize("processes", [True, False])
def test_pmap_keeps_order_and_raises(processes):
    items = list(range(23))
    assert list(pmap(_square, items, jobs=2, processes=processes)) == [x * x for x in items]
    with pytest.raises(ValueError, match="three"):
        list(pmap(_fail_on_three, items, jobs=2, processes=processes))


def _kernel_threads(_: int) -> int:
    import cv2

    from segtools.io.parallel import kernel_threads

    cv2.getNumThreads()  # touching OpenCV's pool in a forked worker must not hang
    return kernel_threads(1 << 30)


def test_pmap_workers_run_segtools_kernels_single_threaded():
    """Workers already fill the cores; threads inside each would oversubscribe them. The
    parent has used OpenCV's thread pool first: a worker must not hang on it."""
    import cv2

    cv2.setNumThreads(2)
    cv2.resize(np.zeros((512, 512), np.float32), (1024, 1024))  # OpenCV's pool has run
    assert set(pmap(_kernel_threads, list(range(4)), jobs=2)) == {1}


def _opencv_threads_inside(_: int) -> tuple[int, int]:
    import cv2

    from segtools.io.parallel import one_opencv_thread

    before = cv2.getNumThreads()
    with one_opencv_thread():  # in a forked worker: left alone, and no hang
        inside = cv2.getNumThreads()
    return before, inside


def test_one_opencv_thread_turns_the_pool_off_for_a_block_and_restores_it():
    import cv2

    from segtools.io.parallel import one_opencv_thread

    cv2.setNumThreads(2)
    cv2.resize(np.zeros((512, 512), np.float32), (1024, 1024))  # OpenCV's pool has run
    with pytest.raises(KeyError):
        with one_opencv_thread():
            assert cv2.getNumThreads() == 1
            raise KeyError("a failure inside still restores the pool")
    assert cv2.getNumThreads() == 2
    assert set(pmap(_opencv_threads_inside, list(range(4)), jobs=2)) == {(2, 2)}


def _policy_threads(_: int) -> int:
    from segtools.io.parallel import kernel_threads

    return kernel_threads(64)


@pytest.mark.parametrize("processes", [True, False])
def test_kernel_threads_is_one_inside_workers(processes, monkeypatch):
    from segtools.io.parallel import kernel_threads, set_kernel_threads

    monkeypatch.setenv("SEGTOOLS_THREADS", "3")
    assert kernel_threads() == 3 and kernel_threads(2) == 2
    set_kernel_threads(5)
    try:
        assert kernel_threads() == 5
    finally:
        set_kernel_threads(None)
    assert set(pmap(_policy_threads, list(range(4)), jobs=2, processes=processes)) == {1}
    assert kernel_threads() == 3  # the caller's own thread is no worker


def test_expanded_inputs_are_protected_before_they_are_read(tmp_path):
    from segtools.errors import OutputError
    from segtools.io.streams import check_output_path, forget_inputs

    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(b"x")
    forget_inputs()
    check_output_path(tmp_path / "masks" / "a.png")  # not an input yet
    expand_inputs([str(tmp_path / "masks")])
    with pytest.raises(OutputError, match="refusing to overwrite an input"):
        check_output_path(tmp_path / "masks" / "a.png")
    check_output_path(tmp_path / "masks" / "a.png", allow_overwrite=True)
    forget_inputs()
    check_output_path(tmp_path / "masks" / "a.png")


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):
        return False


_BUFFERS_LOOP = """
import os, resource, sys
import numpy as np
from segtools.io.parallel import pmap
size = 700_000
a = np.ones(size, np.uint8); del a  # glibc's dynamic thresholds follow this block
def image(_):  # one item's buffers, freed together
    blocks = [np.ones(size, np.uint8) for _ in range(3)]
    return len(blocks)
list(pmap(image, [0]))  # the batch map sets the allocator up, once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
list(pmap(image, list(range(100))))
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not _glibc(), reason="glibc's malloc only")
def test_the_batch_map_keeps_freed_item_buffers_for_the_next_item():
    """glibc trims the heap's top after each item whose buffers exceed its dynamic threshold,
    and the next item faults every page in again; under pmap those pages are reused. With a
    MALLOC_* variable the user's choice (here: glibc's defaults) is left alone."""
    import subprocess
    import sys

    # without any malloc setting of this process's (a Dask LocalCluster started earlier in
    # it sets MALLOC_TRIM_THRESHOLD_ for its workers, in os.environ)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}

    def faults(env: dict) -> int:
        done = subprocess.run([sys.executable, "-c", _BUFFERS_LOOP], env={**clean, **env},
                              capture_output=True, text=True, check=True)
        return int(done.stdout)

    kept = faults({})
    defaults = faults({"MALLOC_ARENA_MAX": "8"})
    assert defaults > 10_000  # ~170 pages trimmed and faulted back per item
    assert kept < defaults / 10
