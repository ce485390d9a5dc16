import itertools

import numpy as np
import pytest

from pipelines.resolution import (
    MostConfident,
    candidate_sizes,
    mean_confidence,
    resample_image,
    resample_labels,
    rock_cover,
    scale_back,
    working_size,
)
from pipelines.tiling import Segmentation


@pytest.mark.parametrize(
    ("size", "limit", "expected"),
    [
        ((3000, 4000), 1200, (1200, 1600)),  # a 12-megapixel photo: shorter side to the limit
        ((4000, 3000), 1200, (1600, 1200)),
        ((1000, 30000), 1200, (1000, 30000)),  # a long scan under the limit is left alone
        ((1200, 1600), 1200, (1200, 1600)),  # at the limit: unchanged
        ((2401, 999_999), 1200, (1200, 499_791)),
        ((3000, 4000), None, (3000, 4000)),  # no limit: every image at its own size
        ((3000, 4000), 0, (3000, 4000)),
    ],
)
def test_working_size_caps_the_shorter_side_and_keeps_the_aspect(size, limit, expected):
    assert working_size(*size, limit) == expected


def test_a_downscaled_photo_keeps_its_content_where_it_was():
    image = np.zeros((300, 400, 3), np.uint8)
    image[:, 200:] = (200, 150, 100)  # right half tan
    small = resample_image(image, (150, 200))
    assert small.shape == (150, 200, 3) and small.dtype == np.uint8
    assert (small[:, :98] < 5).all() and (np.abs(small[:, 102:].astype(int) - (200, 150, 100)) <= 2).all()
    assert resample_image(image, (300, 400)) is image


def test_scaling_back_gives_the_photo_size_and_never_invents_a_class():
    ids = np.zeros((120, 160), np.uint8)
    ids[30:90, 40:120] = 7
    confidence = np.full((120, 160), 200, np.uint8)
    back = scale_back(Segmentation(ids, confidence), (300, 400))
    assert back.class_ids.shape == back.confidence.shape == (300, 400)
    assert set(np.unique(back.class_ids)) == {0, 7}  # nearest neighbour: no blended class ids
    assert (back.class_ids[75:225, 100:300] == 7).all() and back.class_ids[:70].max() == 0
    assert (back.confidence == 200).all()
    assert resample_labels(ids, (120, 160)) is ids


def test_candidate_sizes_start_at_the_working_size_and_never_shrink_below_the_floor():
    assert candidate_sizes((1200, 1600), [1.0, 0.7, 0.5]) == [(1200, 1600), (840, 1120), (600, 800)]
    assert candidate_sizes((1200, 1600), [0.5, 0.7, 1.0, 0.7]) == [(1200, 1600), (840, 1120), (600, 800)]
    assert candidate_sizes((200, 5000), [1.0, 0.7, 0.5]) == [(200, 5000), (140, 3500)]  # 100 px: too small
    assert candidate_sizes((100, 100), [0.5]) == [(100, 100)]
    assert candidate_sizes((1200, 1600), None) == candidate_sizes((1200, 1600), [2.0, 0]) == [(1200, 1600)]


def test_an_image_is_enlarged_only_within_the_cap():
    # a small photo is also tried enlarged, largest size after the working size
    assert candidate_sizes((600, 800), [1.0, 0.7, 1.4], 1200) == [(600, 800), (840, 1120), (420, 560)]
    assert candidate_sizes((900, 1200), [1.4, 0.7], 1200) == [(900, 1200), (630, 840)]  # 1,260 px: over the cap
    assert candidate_sizes((1200, 1600), [1.4], 1200) == [(1200, 1600)]
    assert candidate_sizes((600, 800), [1.4], None) == [(600, 800)]  # no cap: never enlarged
    assert candidate_sizes((800, 300), [1.4], 1200) == [(800, 300), (1120, 420)]
    assert candidate_sizes((1600, 388), [1.4], 1200) == [(1600, 388)]  # 2,240 px long: over a photo's frame
    assert candidate_sizes((800, 40_000), [1.4], 1200) == [(800, 40_000)]  # a scan is never enlarged


def segmentation(confidence: int, rock_rows: int, width: int = 10) -> Segmentation:
    """10 rows, `rock_rows` of them rock; `width` other than 10 for a pass of another size."""
    ids = np.zeros((10, width), np.uint8)
    ids[:rock_rows] = 5
    return Segmentation(ids, np.full((10, width), confidence, np.uint8))


def test_the_most_confident_segmentation_is_kept_and_ties_go_to_the_first_size():
    chooser = MostConfident()
    first, surer, as_sure = segmentation(200, 4), segmentation(220, 4), segmentation(220, 4)
    for index, candidate in ((2, as_sure), (0, first), (1, surer)):  # offered in any order
        chooser.offer(index, candidate)
    assert chooser.best is surer
    assert rock_cover(surer) == pytest.approx(0.4)


def test_a_segmentation_that_lost_the_rock_is_never_kept_however_sure():
    # a photo shrunk too far: the pieces become background, confidently
    chooser = MostConfident()
    working, shrunk = segmentation(200, 4), segmentation(250, 1)
    chooser.offer(1, shrunk)
    chooser.offer(0, working)
    assert chooser.best is working
    chooser = MostConfident()
    chooser.offer(0, segmentation(200, 4))
    chooser.offer(2, segmentation(190, 8))
    chooser.offer(1, kept := segmentation(210, 5))  # 5/8 of the most rock: still a candidate
    assert chooser.best is kept
    chooser = MostConfident()  # a picture without rock: every candidate counts
    chooser.offer(0, segmentation(200, 0))
    chooser.offer(1, calm := segmentation(240, 0))
    assert chooser.best is calm


def test_a_segmentation_that_lost_a_quarter_of_the_working_sizes_rock_is_kept_only_if_clearly_surer():
    # a photo like the training photos shrunk to a quarter: a little surer, a third of the core gone
    for order in itertools.permutations((0, 1, 2)):
        chooser = MostConfident()
        candidates = {0: (working := segmentation(200, 8)), 1: segmentation(190, 7), 2: segmentation(205, 5)}
        for index in order:
            chooser.offer(index, candidates[index])
        assert chooser.best is working, order
    chooser = MostConfident()
    chooser.offer(0, segmentation(200, 8))
    chooser.offer(1, kept := segmentation(205, 7))  # seven eighths of it: still a candidate
    assert chooser.best is kept
    # a close-up whose working size calls the surroundings rock too: the smaller pass is far surer
    for order in itertools.permutations((0, 1)):
        chooser = MostConfident()
        candidates = {0: segmentation(200, 8), 1: (sure := segmentation(215, 5))}
        for index in order:
            chooser.offer(index, candidates[index])
        assert chooser.best is sure, order


def test_a_pass_smaller_than_the_working_size_is_kept_only_if_clearly_surer_and_an_enlargement_as_it_comes():
    # on photos the folds never saw, reductions a little surer than the working size (0.000-0.007)
    # were worse every time; clearly surer ones (a close-up, 0.05-0.09) better; enlargements of a
    # small photo, a little surer, better too
    a_little, clearly = 200 + round(0.01 * 255), 200 + round(0.05 * 255)
    cases = [
        ({0: segmentation(200, 4), 1: segmentation(a_little, 4, width=7)}, 0),  # a reduction, a little surer: the working size
        ({0: segmentation(200, 4), 1: segmentation(clearly, 4, width=7)}, 1),  # a reduction, clearly surer: kept
        ({0: segmentation(200, 4), 1: segmentation(a_little, 4, width=14)}, 1),  # an enlargement, a little surer: kept
    ]
    for candidates, expected in cases:
        for order in itertools.permutations(candidates):
            chooser = MostConfident()
            for index in order:
                chooser.offer(index, candidates[index])
            assert chooser.best is candidates[expected], (expected, order)


def test_a_segmentation_that_calls_everything_rock_is_never_kept_however_sure():
    # a picture whose core is already small, shrunk further: one texture, all of it "rock"; with
    # the working size out for too little rock beside it, the working size is the answer
    for order in ((0, 1), (1, 0)):
        chooser = MostConfident()
        candidates = {0: (working := segmentation(200, 4)), 1: segmentation(250, 10)}
        for index in order:
            chooser.offer(index, candidates[index])
        assert chooser.best is working
    chooser = MostConfident()
    chooser.offer(0, segmentation(200, 6))
    chooser.offer(1, kept := segmentation(210, 9))  # a quarter of the background: still a candidate
    assert chooser.best is kept
    chooser = MostConfident()  # core filling the picture at every size: every candidate counts
    chooser.offer(0, segmentation(200, 10))
    chooser.offer(1, calm := segmentation(240, 10))
    assert chooser.best is calm


def test_a_segmentation_that_may_still_lose_its_background_beats_none_for_good():
    def covering(confidence: int, rock: float) -> Segmentation:
        ids = np.zeros((100, 100), np.uint8)
        ids.flat[: round(rock * ids.size)] = 5
        return Segmentation(ids, np.full(ids.shape, confidence, np.uint8))

    # the surest calls all but 0.5 % rock, and stays a candidate until the third shows background
    candidates = {0: covering(150, 0.5), 1: covering(200, 0.92), 2: covering(250, 0.995)}
    for order in itertools.permutations(candidates):
        chooser = MostConfident()
        for index in order:
            chooser.offer(index, candidates[index])
        assert chooser.best is candidates[1], order


def test_the_chooser_holds_only_segmentations_it_could_still_keep():
    chooser = MostConfident()
    chooser.offer(0, segmentation(200, 4))
    chooser.offer(1, segmentation(250, 5))  # surer and with more rock: the first can never win
    chooser.offer(2, segmentation(255, 1))  # too little rock, for good
    assert len(chooser._candidates) == 1


def test_mean_confidence_is_the_mean_top_probability():
    confidence = np.array([[255, 0], [255, 0]], np.uint8)
    assert mean_confidence(Segmentation(np.zeros((2, 2), np.uint8), confidence)) == pytest.approx(0.5)
