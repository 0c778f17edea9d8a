import numpy as np
import pytest

from vlmsae.training.stream import BlockStream, modality_stream, pair_stream


def _stream(n=100, buffer_items=20, block_items=10, seed=0):
    data = np.arange(n)
    return BlockStream(n, lambda items: (data[items],), seed, 0, buffer_items, block_items)


def test_every_item_once_per_epoch_with_a_small_buffer():
    stream = _stream()
    (first,) = stream.take(100)
    (second,) = stream.take(100)
    assert sorted(first) == list(range(100)) and sorted(second) == list(range(100))
    assert not np.array_equal(first, second)
    assert stream.epoch == 2


def test_buffer_bounds_what_is_loaded():
    loaded = []
    data = np.arange(1000)

    def load(items):
        loaded.append(len(items))
        return (data[items],)

    BlockStream(1000, load, 0, 0, buffer_items=64, block_items=32).take(500)
    assert max(loaded) == 64


@pytest.mark.parametrize("cut", [0, 7, 20, 33, 99, 100, 150])
def test_resumed_stream_reads_what_an_uninterrupted_one_would(cut):
    (expected,) = _stream().take(250)
    stream = _stream()
    head = stream.take(cut)[0] if cut else np.array([], dtype=int)
    resumed = _stream()
    resumed.load_state_dict(stream.state_dict())
    (tail,) = resumed.take(250 - cut)
    np.testing.assert_array_equal(np.concatenate([head, tail]), expected)


def test_streams_from_a_store(tiny_store):
    (rows,) = modality_stream(tiny_store, "text", 0, 1, 300).take(5)
    assert rows.shape == (5, tiny_store.dim)
    image, text = pair_stream(tiny_store, 0, 0, 300).take(400)
    # Synthetic pairs are aligned: the true pair of each image row is the same text row.
    train_pairs = tiny_store.split_pairs("train")
    all_image, all_text = tiny_store.rows("image"), tiny_store.rows("text")
    lookup = {all_image[i].tobytes(): t for i, t in train_pairs}
    for i in range(len(image)):
        np.testing.assert_array_equal(all_text[lookup[image[i].tobytes()]], text[i])


def test_store_rows_keep_the_requested_order(tiny_store):
    rows = tiny_store.rows("image", np.array([5, 2, 5, 0]))
    np.testing.assert_array_equal(rows[0], rows[2])
    np.testing.assert_array_equal(rows[3], tiny_store.rows("image", np.array([0]))[0])


def test_rows_that_fit_one_buffer_are_read_once():
    loaded = []
    data = np.arange(100)

    def load(items):
        loaded.append(len(items))
        return (data[items],)

    cached = BlockStream(100, load, 0, 0, buffer_items=100, block_items=10)
    (rows,) = cached.take(350)
    assert loaded == [100]
    # What reading them anew would give: each epoch, every item in its seeded shuffle.
    epochs = [np.random.default_rng([0, 0, epoch, 0]).permutation(100) for epoch in range(4)]
    np.testing.assert_array_equal(rows, np.concatenate(epochs)[:350])
