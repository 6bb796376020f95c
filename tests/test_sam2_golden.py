"""segtools' SAM 2.1 image predictor equals the official ``sam2`` (fixtures by tools/make_sam2_golden.py).

A small Hiera with SAM 2.1's full-size neck, prompt encoder and mask decoder, every tensor
filled by key (tests/golden_util.py) in both implementations, run by the official
``SAM2ImagePredictor`` there and by :class:`Sam2Runner` here: the preprocessing (also of a
large image, the antialiased downscaling), image embedding, high-resolution features,
low-res logits, IoU predictions, object scores, full-size logits and masks must agree to
1e-4 for every prompt case. The published layouts are checked key for key and shape for
shape, and the variant is read back off them.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import golden_util  # noqa: E402
from segtools.errors import InputError  # noqa: E402
from segtools.inference.sam import best_masks  # noqa: E402
from segtools.inference.sam2 import Sam2Runner  # noqa: E402
from segtools.models.sam2.model import (VARIANTS, VIDEO_KEYS, Sam2Config, build_sam2, image_state,  # noqa: E402
                                        load_sam2, sam2_config)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FIXTURES = golden_util.GOLDEN_DIR / "sam2"
TOL = 1e-4
META = json.loads((FIXTURES / "predictor.json").read_text())


def tiny_config() -> Sam2Config:
    t = META["tiny"]
    return Sam2Config(embed_dim=t["embed_dim"], num_heads=t["num_heads"], stages=tuple(t["stages"]),
                      global_blocks=tuple(t["global_blocks"]), window_spec=tuple(t["window_spec"]),
                      pos_size=tuple(t["pos_size"]))


def big_image() -> np.ndarray:  # the generator's large picture, rebuilt the same way
    rng = np.random.default_rng(20240610)
    h, w, _ = META["big_shape"]
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([(xx // 7 % 2) * 200.0, yy * 255 / h, (xx * yy) % 251], axis=-1) + rng.normal(0, 10, (h, w, 3))
    return image.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_runner():
    torch.manual_seed(0)
    model = build_sam2(tiny_config())
    golden_util.fill_deterministic(model)
    runner = Sam2Runner(model)
    return runner, runner.encode(golden_util.sam_golden_image())


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(FIXTURES / "predictor.npz"))


def _keys(variant: str) -> list:
    with gzip.open(FIXTURES / f"keys-{variant}.json.gz", "rt") as f:
        return json.load(f)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_keys_and_shapes_equal_the_official_image_path(variant):
    official = _keys(variant)
    with torch.device("meta"):
        model = build_sam2(variant)
    ours = sorted([key, list(value.shape)] for key, value in model.state_dict().items())
    image_path = sorted([key, shape] for key, shape in official if not key.startswith(VIDEO_KEYS))
    assert ours == image_path
    # what is left out is exactly the video parts, and the variant is read back off the full layout
    assert all(key.startswith(VIDEO_KEYS) for key, _ in official if [key, _] not in image_path)
    state = {key: torch.empty(shape, device="meta") for key, shape in official}
    assert sam2_config(state) == VARIANTS[variant]
    assert sam2_config(state).variant == variant


def test_preprocessing_equals_reference(tiny_runner, golden):
    runner, _ = tiny_runner
    x = runner.preprocess(big_image())[0].numpy()
    np.testing.assert_allclose(x[:, ::32, ::32], golden["big_input_sample"], atol=TOL, rtol=0)
    np.testing.assert_allclose(x.sum(axis=(1, 2), dtype=np.float64) / x[0].size,
                               golden["big_input_sum"] / x[0].size, atol=1e-6, rtol=0)


def test_image_embedding_and_high_res_features_equal_reference(tiny_runner, golden):
    _, embedding = tiny_runner
    assert embedding.original_size == (150, 200) and embedding.input_size == (1024, 1024)
    features = embedding.features.numpy()
    s0, s1 = (f.numpy() for f in embedding.high_res)
    assert features.shape == (1, 256, 64, 64) and s0.shape == (1, 32, 256, 256) and s1.shape == (1, 64, 128, 128)
    for name, value, step in (("features", features, 8), ("s0", s0, 16), ("s1", s1, 8)):
        np.testing.assert_allclose(value[:, :, ::step, ::step], golden[f"{name}_sample"], atol=TOL, rtol=0)
        area = value.shape[2] * value.shape[3]
        np.testing.assert_allclose(value.sum(axis=(2, 3), dtype=np.float64) / area, golden[f"{name}_sum"] / area,
                                   atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", list(META["cases"]))
def test_prompt_outputs_equal_reference(tiny_runner, golden, case):
    runner, embedding = tiny_runner
    spec = META["cases"][case]
    mask_input = None
    if "mask_from" in spec:  # the official low-res logits of the best candidate of another case
        source = spec["mask_from"]
        previous = runner.predict(embedding, META["cases"][source].get("points"),
                                  META["cases"][source].get("labels"), multimask=True)
        mask_input = previous.low_res[0, int(np.argmax(previous.iou[0]))][None]
    result = runner.predict(embedding, spec.get("points"), spec.get("labels"), spec.get("boxes"), mask_input,
                            multimask=spec["multimask"], return_logits=True)
    np.testing.assert_allclose(result.iou, golden[f"{case}_iou"], atol=TOL, rtol=0)
    np.testing.assert_allclose(result.object_score, golden[f"{case}_object_score"], atol=TOL, rtol=0)
    np.testing.assert_allclose(result.low_res[..., ::8, ::8], golden[f"{case}_low_res_sample"], atol=TOL, rtol=0)
    assert result.low_res.shape[-2:] == (256, 256) and np.abs(result.low_res).max() <= 32.0
    np.testing.assert_allclose(result.low_res.sum(axis=(-2, -1), dtype=np.float64) / 256 ** 2,
                               golden[f"{case}_low_res_sum"] / 256 ** 2, atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.logits[..., ::8, ::8], golden[f"{case}_logits_sample"], atol=TOL, rtol=0)
    expected = np.unpackbits(golden[f"{case}_masks"], axis=-1, count=embedding.original_size[1]).astype(bool)
    assert result.masks.shape == expected.shape
    differ = result.masks != expected
    assert not differ[np.abs(result.logits) > TOL].any()  # only logits within 1e-4 of 0 may flip
    assert differ.sum() <= 2


def test_best_mask_is_the_highest_predicted_iou(tiny_runner):
    runner, embedding = tiny_runner
    result = runner.predict(embedding, [[[60.0, 45.0]]], [[1]], multimask=True)
    masks, iou, index = best_masks(result)
    assert masks.shape == (1, 150, 200) and index[0] == int(np.argmax(result.iou[0]))
    assert ((0 < result.iou) & (result.iou < 1)).all()  # sigmoid-squashed, as SAM 2 predicts them


def test_unstable_single_mask_falls_back_to_the_best_candidate(tiny_runner):
    decoder = tiny_runner[0].model.sam_mask_decoder
    masks = torch.zeros(2, 4, 8, 8)
    masks[0, 0] = 5.0  # stable: every logit far from 0
    masks[1, 0] = 0.01  # unstable: all within the ±0.05 band
    masks[:, 2] = 7.0
    iou = torch.tensor([[0.1, 0.2, 0.9, 0.3], [0.1, 0.2, 0.9, 0.3]])
    chosen, chosen_iou = decoder._stable_single(masks, iou)
    assert torch.equal(chosen[0, 0], masks[0, 0]) and chosen_iou[0, 0] == pytest.approx(0.1)
    assert torch.equal(chosen[1, 0], masks[1, 2]) and chosen_iou[1, 0] == pytest.approx(0.9)


def test_loads_a_published_layout_with_its_video_parts_and_refuses_others(tiny_runner):
    runner, _ = tiny_runner
    state = dict(runner.model.state_dict())
    with pytest.raises(InputError, match="not a published variant"):
        load_sam2(state)  # the tiny golden layout is not a published one: its sizes must be given
    again = load_sam2({**state, "maskmem_tpos_enc": torch.zeros(7, 1, 1, 64),
                       "memory_attention.layers.0.norm1.weight": torch.ones(256)}, config=runner.model.config)
    assert again.config == runner.model.config
    assert "maskmem_tpos_enc" not in again.state_dict()
    with pytest.raises(InputError, match="1 unexpected"):
        load_sam2({**state, "surprise.weight": torch.zeros(1)}, config=runner.model.config)
    broken = dict(state)
    broken.pop("sam_mask_decoder.obj_score_token.weight")
    with pytest.raises(InputError, match="1 missing"):
        load_sam2(broken, config=runner.model.config)
    with pytest.raises(InputError, match="not a SAM 2 checkpoint"):
        load_sam2({k: v for k, v in state.items() if not k.startswith("image_encoder.trunk.")})
    tiny = {key: torch.empty(shape, device="meta") for key, shape in _keys("sam2.1-hiera-tiny")}
    with pytest.raises(InputError, match="is a sam2.1-hiera-tiny checkpoint, not sam2.1-hiera-large"):
        load_sam2(image_state(tiny), expect="sam2.1-hiera-large")


def test_segment_everything_runs_on_the_sam2_runner(tiny_runner):
    """The automatic generator (SAM's algorithm) takes the SAM 2.1 runner: the masks it keeps
    are candidates the runner predicts at their grid points, with those IoUs."""
    from segtools.inference.sam_auto import EverythingOptions, generate_masks

    runner, embedding = tiny_runner
    image = golden_util.sam_golden_image()
    found = generate_masks(runner, image, EverythingOptions(points_per_side=3, pred_iou_thresh=0.3,
                                                            stability_thresh=0.5, stability_offset=0.05, box_nms=1.0))
    assert len(found) > 0 and found.masks.shape[1:] == image.shape[:2]
    assert (found.iou > 0.3).all() and (found.stability >= 0.5).all()
    some = np.linspace(0, len(found) - 1, min(4, len(found))).astype(int)  # first, last and two between
    again = runner.predict(embedding, found.points[some, None, :], np.ones((len(some), 1)), multimask=True)
    pick = np.abs(again.iou - found.iou[some, None]).argmin(axis=1)
    rows = np.arange(len(some))
    np.testing.assert_allclose(again.iou[rows, pick], found.iou[some], atol=1e-5)
    assert (again.masks[rows, pick] == found.masks[some]).mean(axis=(1, 2)).min() > 0.999
