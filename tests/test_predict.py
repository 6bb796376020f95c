"""The predictor (inputs, batching, resize), sliding windows, TTA, and ``segtools predict``."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import assert_one_line_error

torch = pytest.importorskip("torch")

from segtools.errors import UsageError  # noqa: E402
from segtools.inference.predictor import Predictor, Tiling  # noqa: E402
from segtools.inference.sliding import sliding_window  # noqa: E402
from segtools.inference.tta import TTA, parse_tta  # noqa: E402
from segtools.io.masks import read_label_mask, read_score_map  # noqa: E402
from segtools.labels import argmax_scores  # noqa: E402
from segtools.models import build_model  # noqa: E402
from segtools.tiling.blend import ScoreAccumulator  # noqa: E402
from segtools.tiling.grid import tile_grid  # noqa: E402
from segtools.weights.checkpoint import make_checkpoint, save_checkpoint  # noqa: E402

UNIT = {"mean": [0.0] * 3, "std": [1.0] * 3, "scale": 1 / 255}


class CountingConv(torch.nn.Module):
    """A small conv net (not flip-equivariant) that counts its forward calls and batch sizes."""

    def __init__(self, classes: int = 4, kernel: int = 3, symmetric: bool = False) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, classes, kernel, padding=kernel // 2)
        if symmetric:  # mirror-symmetric kernels along x: the model commutes with a left-right flip
            with torch.no_grad():
                self.conv.weight.copy_((self.conv.weight + self.conv.weight.flip(-1)) / 2)
        self.calls: list[int] = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return self.conv(x)


def scores_to_labels(scores: np.ndarray) -> np.ndarray:
    """The reference labels of a C×H×W score map: argmax, or p > 0.5 for one channel."""
    return (scores[0] > 0.5).astype(np.uint8) if scores.shape[0] == 1 else argmax_scores(scores)


def _image(h=24, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_scores_are_probabilities_at_the_input_size():
    predictor = Predictor(CountingConv(), UNIT, device="cpu")
    scores = predictor.predict_scores(_image(17, 23))
    assert scores.shape == (4, 17, 23) and scores.dtype == np.float32
    assert np.allclose(scores.sum(axis=0), 1.0, atol=1e-5)


def test_grey_rgba_and_16_bit_inputs_match_their_rgb_equivalents():
    predictor = Predictor(CountingConv(), UNIT, device="cpu")
    rgb = _image()
    grey = rgb[..., 0]
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    wide = rgb.astype(np.uint16) * 257  # the same intensities in 16 bits
    reference = predictor.predict_scores(rgb)
    assert np.array_equal(predictor.predict_scores(rgba), reference)
    assert np.allclose(predictor.predict_scores(wide), reference, atol=1e-5)
    assert np.allclose(predictor.predict_scores(grey), predictor.predict_scores(np.dstack([grey] * 3)))


def test_same_size_images_are_batched_and_order_is_kept():
    model = CountingConv()
    predictor = Predictor(model, UNIT, device="cpu", batch=3)
    images = [_image(seed=i) for i in range(4)] + [_image(10, 12, seed=9)] + [_image(seed=5)]
    batched = predictor.predict_batch(images)
    assert model.calls == [3, 1, 1, 1]  # 3 + 1 of 24×32, then the 10×12, then the last 24×32
    singles = [Predictor(CountingConv(), UNIT, device="cpu").predict_scores(im) for im in images]
    for got, want in zip(batched, singles):
        assert np.allclose(got, want, atol=1e-5)


def test_labels_without_softmax_equal_the_argmax_of_the_probabilities():
    images = [_image(seed=i) for i in range(3)]
    for model in (CountingConv(), torch.nn.Conv2d(3, 1, 3, padding=1)):
        for tta in (None, parse_tta("flip")):
            predictor = Predictor(model, UNIT, device="cpu", batch=2, tta=tta)
            labels = list(predictor.predict_many(images, labels=True))
            for got, scores in zip(labels, predictor.predict_batch(images)):
                assert got.dtype == np.uint8 and np.array_equal(got, scores_to_labels(scores))


def test_resize_short_runs_smaller_and_restores_the_original_size():
    model = CountingConv()
    seen = []
    model.register_forward_hook(lambda m, inputs, out: seen.append(tuple(inputs[0].shape[-2:])))
    scores = Predictor(model, {**UNIT, "resize_short": 12}, device="cpu").predict_scores(_image(24, 40))
    assert seen == [(12, 20)] and scores.shape == (4, 24, 40)


def test_single_channel_models_give_sigmoid_probabilities_and_binary_labels():
    model = torch.nn.Conv2d(3, 1, 1)
    scores = Predictor(model, UNIT, device="cpu").predict_scores(_image())
    assert scores.shape == (1, 24, 32) and scores.min() >= 0 and scores.max() <= 1
    assert set(np.unique(scores_to_labels(scores))) <= {0, 1}


def test_sliding_window_equals_whole_image_when_one_tile_covers_it():
    model = CountingConv()
    x = torch.randn(2, 3, 20, 30)
    with torch.no_grad():
        assert torch.equal(sliding_window(model, x, tile=(20, 30), overlap=8), model(x))
        assert torch.equal(sliding_window(model, x, tile=64), model(x))


def test_sliding_window_of_a_pointwise_model_equals_the_whole_image():
    model = CountingConv(kernel=1)  # each output pixel depends on its own input pixel only
    x = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        for blend in ("gaussian", "linear", "mean"):
            tiled = sliding_window(model, x, tile=16, overlap=5, blend=blend, batch=7)
            assert torch.allclose(tiled, model(x), atol=1e-5), blend


def test_sliding_window_matches_the_numpy_score_accumulator():
    model = CountingConv()
    x = torch.randn(1, 3, 37, 45)
    tiles = tile_grid(37, 45, 16, overlap=6)
    reference = ScoreAccumulator(4, 37, 45, mode="gaussian", dtype=np.float64)
    with torch.no_grad():
        for t in tiles:
            reference.add(t, model(x[:, :, t.y:t.y1, t.x:t.x1])[0].numpy())
        tiled = sliding_window(model, x, tile=16, overlap=6, blend="gaussian", batch=5)
    assert np.allclose(tiled[0].numpy(), reference.result(), atol=1e-5)


def test_sliding_window_takes_a_custom_window():
    model = CountingConv()
    x = torch.randn(1, 3, 40, 50)
    with torch.no_grad():
        ones = sliding_window(model, x, tile=16, overlap=4, window=np.ones((16, 16)))
        mean = sliding_window(model, x, tile=16, overlap=4, blend="mean")
    assert torch.allclose(ones, mean, atol=1e-6)
    with pytest.raises(UsageError):
        sliding_window(model, x, tile=16, window=np.zeros((16, 16)))


def test_flip_tta_of_a_flip_equivariant_model_changes_nothing():
    model = CountingConv(symmetric=True)
    image = _image()
    plain = Predictor(model, UNIT, device="cpu").predict_scores(image)
    with_tta = Predictor(model, UNIT, device="cpu", tta=parse_tta("flip")).predict_scores(image)
    assert np.allclose(plain, with_tta, atol=1e-6)


def test_flip_tta_averages_the_unflipped_probabilities():
    model = CountingConv()
    image = _image()
    predictor = Predictor(model, UNIT, device="cpu", tta=TTA(("", "h")))
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expected = (torch.softmax(model(x), 1) + torch.softmax(model(x.flip(-1)), 1).flip(-1)) / 2
    got = predictor.predict_scores(image)
    assert np.allclose(got, expected[0].numpy(), atol=1e-5)
    assert not np.allclose(got, Predictor(model, UNIT, device="cpu").predict_scores(image), atol=1e-3)


def test_parse_tta_rejects_unknown_augmentations():
    assert parse_tta("flip,scales=0.5,1").variants == 4
    for bad in ("rotate", "flip=x", "scales=a"):
        with pytest.raises(UsageError):
            parse_tta(bad)


def test_tiled_tta_prediction_keeps_the_size():
    predictor = Predictor(CountingConv(), UNIT, device="cpu", tiling=Tiling(16, 4), tta=parse_tta("flip,scales=0.75,1"))
    assert predictor.predict_scores(_image(30, 41)).shape == (4, 30, 41)


# ------------------------------------------------------------------ the command


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model("unet", 11, depth=2, base_channels=4)
    return save_checkpoint(tmp_path / "camvid-tiny.pt", make_checkpoint(
        "unet", 11, model.state_dict(), classes={"names": [f"class{i}" for i in range(11)], "ignore_index": 11},
        preprocessing=UNIT, arch_options={"depth": 2, "base_channels": 4}))


def _png(image: np.ndarray) -> bytes:
    from segtools.io.images import encode_image

    return encode_image(image, "png")


def test_predict_stdin_to_stdout_writes_a_label_png_with_its_legend(cli, checkpoint):
    result = cli("predict", "-", "--weights", str(checkpoint), input=_png(_image(21, 30)))
    assert result.code == 0, result.stderr
    mask = read_label_mask(result.stdout)
    assert mask.labels.shape == (21, 30) and mask.labels.max() < 11
    assert mask.meta.names[3] == "class3" and len(mask.meta.palette) >= 11


def test_predict_probs_writes_a_score_map(cli, checkpoint, tmp_path):
    (tmp_path / "a.png").write_bytes(_png(_image(19, 26)))
    result = cli("predict", str(tmp_path / "a.png"), "--weights", str(checkpoint), "--probs", "-o", str(tmp_path / "a.npz"))
    assert result.code == 0, result.stderr
    scores = read_score_map(tmp_path / "a.npz")
    assert scores.scores.shape == (11, 19, 26) and np.allclose(scores.scores.sum(0), 1, atol=1e-4)
    assert scores.meta.names[0] == "class0"


def test_predict_batch_keeps_relative_names_and_needs_an_output_folder(cli, checkpoint, tmp_path):
    folder = tmp_path / "in" / "sub"
    folder.mkdir(parents=True)
    for i, size in enumerate([(20, 24), (20, 24), (16, 18)]):
        (folder / f"im{i}.png").write_bytes(_png(_image(*size, seed=i)))
    assert_one_line_error(cli("predict", str(tmp_path / "in"), "--weights", str(checkpoint)), 2)
    result = cli("predict", str(tmp_path / "in"), "--weights", str(checkpoint), "-o", str(tmp_path / "out"),
                 "--tile", "16", "--overlap", "4", "--tta", "flip")
    assert result.code == 0, result.stderr
    outputs = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert outputs == ["sub/im0.png", "sub/im1.png", "sub/im2.png"]
    assert read_label_mask(tmp_path / "out" / "sub" / "im2.png").labels.shape == (16, 18)


def test_predict_glob_of_one_file_is_a_batch_and_one_file_is_not(cli, checkpoint, tmp_path):
    (tmp_path / "only.png").write_bytes(_png(_image(12, 14)))
    assert_one_line_error(cli("predict", str(tmp_path / "*.png"), "--weights", str(checkpoint)), 2)
    result = cli("predict", str(tmp_path / "*.png"), "--weights", str(checkpoint), "-o", str(tmp_path / "out"))
    assert result.code == 0, result.stderr
    assert read_label_mask(tmp_path / "out" / "only.png").labels.shape == (12, 14)
    single = cli("predict", str(tmp_path / "only.png"), "--weights", str(checkpoint), "-o", str(tmp_path / "one.png"))
    assert single.code == 0 and (tmp_path / "one.png").is_file()


def test_predict_bad_inputs_are_one_line_errors(cli, checkpoint, tmp_path):
    (tmp_path / "a.png").write_bytes(_png(_image()))
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    cases = [
        (("predict", str(tmp_path / "junk.png"), "--weights", str(checkpoint)), 1),
        (("predict", str(tmp_path / "a.png"), "--weights", str(checkpoint), "--tta", "spin"), 2),
        (("predict", str(tmp_path / "a.png"), "--weights", str(checkpoint), "--tile", "8", "--blend", "x"), 2),
        (("predict", str(tmp_path / "a.png"), "--weights", str(checkpoint), "--tile", "8x"), 2),
        (("predict", str(tmp_path / "a.png"), "--weights", str(checkpoint), "--device", "tpu"), 2),
        (("predict", str(tmp_path / "a.png"), "--weights", str(checkpoint), "--arch", "nonet"), 2),
        (("predict", str(tmp_path / "a.png"), "--weights", str(tmp_path / "missing.pt")), 1),
        (("predict", str(tmp_path / "a.png"), "--model", "x", "--weights", str(checkpoint)), 2),
    ]
    for args, code in cases:
        result = cli(*args)
        assert_one_line_error(result, code)
        assert result.stdout == b""


def test_predict_on_camvid_images(cli, camvid, checkpoint, tmp_path):
    files = sorted((camvid / "val").glob("*.png"))[:2]
    result = cli("predict", *map(str, files), "--weights", str(checkpoint), "-o", str(tmp_path / "pred"), "--batch", "2")
    assert result.code == 0, result.stderr
    for f in files:
        mask = read_label_mask(tmp_path / "pred" / f.name)
        assert mask.labels.shape == (360, 480)


def test_predict_postprocess_metrics_pipe_through_subprocesses(proc, camvid, checkpoint, tmp_path):
    image = sorted((camvid / "val").glob("*.png"))[0]
    gt = camvid / "valannot" / image.name
    predicted = proc("predict", str(image), "--weights", str(checkpoint))
    assert predicted.code == 0, predicted.stderr
    cleaned = proc("postprocess", "-", input=predicted.stdout)
    assert cleaned.code == 0, cleaned.stderr
    (tmp_path / image.name).write_bytes(cleaned.stdout)
    report = proc("metrics", str(tmp_path / image.name), str(gt), "--classes", "camvid", "--format", "json")
    assert report.code == 0, report.stderr
    import json

    parsed = json.loads(report.stdout)
    assert parsed["num_classes"] == 11 and parsed["images"] == 1 and 0.0 <= parsed["pixel_accuracy"] <= 1.0
    assert io.BytesIO(predicted.stdout).read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("shape", [(2, 21, 33, 17), (1, 3, 5, 5), (1, 256, 4, 4)])
def test_fast_channel_argmax_equals_torch_argmax_with_ties(shape):
    from segtools.inference.predictor import _argmax_labels

    scores = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    scores[0, 1, 0, 0] = scores[0, 2, 0, 0] = 100.0  # a tie: the lower class wins, as in argmax
    labels = _argmax_labels(scores)
    assert labels.dtype == torch.uint8
    assert torch.equal(labels, scores.argmax(dim=1).to(torch.uint8))
    channels_last = scores.contiguous(memory_format=torch.channels_last)
    assert torch.equal(_argmax_labels(channels_last), labels)
