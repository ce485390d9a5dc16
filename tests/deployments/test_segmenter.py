"""The Segmenter's own class, outside Serve: how settings reach the loaded model."""

import pytest

from deployments.segmenter import Segmenter, SegmenterConfig
from deployments.settings import Settings
from pipelines.model import ModelConfig, build_network, save_checkpoint
from tests.conftest import SMALL_MODEL


def loaded_segmenter(settings: Settings, checkpoint: str) -> Segmenter:
    segmenter = Segmenter.func_or_class(settings)
    segmenter.reconfigure(SegmenterConfig(model=checkpoint, niceness=0).model_dump())
    return segmenter


@pytest.mark.parametrize(
    "section,value,attribute",
    [
        ("guided_filter", {"kernel_size": 9, "eps": 0.01, "subsample": 1}, "refine"),
        ("auto_exposure", {"target": 150.0, "max_gain": 2.0, "percentile": 99.0}, "exposure"),
    ],
)
def test_the_checkpoints_section_is_used_unless_its_setting_turns_it_off(tmp_path, section, value, attribute):
    config = ModelConfig(**SMALL_MODEL, **{section: value})
    save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    on = loaded_segmenter(Settings(), str(tmp_path / "ckpt"))
    assert on.info()[section] == value
    off = loaded_segmenter(Settings(**{section: False}), str(tmp_path / "ckpt"))
    assert off.model is not None and getattr(off.model, attribute) is None
    assert off.info()[section] is None


def test_the_background_bias_is_the_checkpoints_unless_a_setting_gives_another(tmp_path):
    config = ModelConfig(**SMALL_MODEL, background_logit_bias=1.0)
    save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    assert loaded_segmenter(Settings(), str(tmp_path / "ckpt")).info()["background_logit_bias"] == 1.0
    overridden = loaded_segmenter(Settings(background_logit_bias=-0.5), str(tmp_path / "ckpt"))
    assert overridden.model is not None and overridden.model.config.background_logit_bias == -0.5
    assert overridden.info()["background_logit_bias"] == -0.5
    with pytest.raises(ValueError, match="less than or equal to 10"):
        Settings(background_logit_bias=50)


def segmenter_with_requests(tmp_path, max_batch_size: int):
    """A loaded Segmenter (the small model, batches of `max_batch_size`) and two requests of
    several tiles each, as the Tiler sends them."""
    import numpy as np

    from deployments.segmenter import TileRequest
    from pipelines.tiling import plan_tiles, tile_cut

    config = ModelConfig(**SMALL_MODEL)
    save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    segmenter = Segmenter.func_or_class(Settings())
    segmenter.reconfigure(SegmenterConfig(model=str(tmp_path / "ckpt"), niceness=0, max_batch_size=max_batch_size).model_dump())
    served = segmenter.models[str(tmp_path / "ckpt")]
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (300, 200, 3), dtype=np.uint8), rng.integers(0, 256, (200, 260, 3), dtype=np.uint8)]
    requests = []
    for image in images:
        plan = plan_tiles(*image.shape[:2], config.tile_size, config.tile_overlap, config.output_stride)
        requests.append(TileRequest(served, image, [tile_cut(tile, plan) for tile in plan.tiles]))
    assert len(requests[0].cuts) > 1 and len(requests[1].cuts) > 1  # several tiles a request
    return segmenter, requests


def run_batch(segmenter, requests):
    """The batch function itself, without `@serve.batch`'s queue (which needs a replica)."""
    import asyncio

    return asyncio.run(Segmenter.func_or_class._predict_batch.__wrapped__(segmenter, requests))


@pytest.mark.parametrize("max_batch_size", [1, 3])
def test_requests_of_several_tiles_answer_each_as_the_model_would_in_order(tmp_path, max_batch_size):
    """The Tiler sends several tiles a request: each comes back, in the order sent, as
    `predict_weighted` gives it in forward passes of at most `max_batch_size` tiles."""
    import numpy as np

    from pipelines.model import predict_weighted

    segmenter, requests = segmenter_with_requests(tmp_path, max_batch_size)
    served = requests[0].served
    tiles = [(request, cut) for request in requests for cut in request.cuts]
    assert len(tiles) > max_batch_size  # several forward passes

    answers = run_batch(segmenter, requests)

    expected = []
    for start in range(0, len(tiles), max_batch_size):  # the batch's tiles in order, max_batch_size a pass
        chunk = tiles[start : start + max_batch_size]
        expected += predict_weighted(served.model, [cut.of(request.image) for request, cut in chunk], [cut.window() for _, cut in chunk])
    assert [len(answer) for answer in answers] == [len(request.cuts) for request in requests]
    for got, want in zip([output for answer in answers for output in answer], expected, strict=True):
        assert np.array_equal(got, want)
    assert segmenter.tiles_done == len(tiles)


def test_a_request_cancelled_while_its_batch_runs_gets_no_more_forward_passes(tmp_path, monkeypatch):
    """The first request is cancelled after the batch's first forward pass (its first tile): the
    rest of its tiles are skipped, the other request's tiles all run, and only the tiles run count."""
    import pipelines.model

    segmenter, requests = segmenter_with_requests(tmp_path, 1)
    real = pipelines.model.predict_weighted
    passes = []

    def predict_then_cancel(model, tiles, windows):
        passes.append(len(tiles))
        requests[0].cancelled.set()  # as `predict` does when Serve cancels the call
        return real(model, tiles, windows)

    monkeypatch.setattr(pipelines.model, "predict_weighted", predict_then_cancel)
    answers = run_batch(segmenter, requests)
    assert [len(answer) for answer in answers] == [1, len(requests[1].cuts)]
    assert sum(passes) == segmenter.tiles_done == 1 + len(requests[1].cuts)


def test_a_cancelled_call_flags_its_request_for_the_batch(tmp_path):
    """Cancelling `predict` (what Serve does to a request whose caller went away) sets the
    request's `cancelled`, which the batch reads between forward passes."""
    import asyncio

    segmenter, requests = segmenter_with_requests(tmp_path, 1)
    seen = []

    async def main():
        queued = asyncio.Event()

        async def waiting_batch(request):  # stands in for @serve.batch's queue: the call waits there
            seen.append(request)
            queued.set()
            await asyncio.Event().wait()

        segmenter._predict_batch = waiting_batch
        call = asyncio.create_task(segmenter.predict(requests[0].image, requests[0].cuts))
        await queued.wait()
        assert not seen[0].cancelled.is_set()
        call.cancel()
        try:
            await call
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the cancelled call returned")

    asyncio.run(main())
    assert seen[0].cancelled.is_set()
