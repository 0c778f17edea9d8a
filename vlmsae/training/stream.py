"""Endless, seeded, resumable streams of training rows read from a zarr store block by block.

Only one buffer of rows is in memory at a time, so training works on stores larger than memory.
Each epoch visits the blocks (runs of consecutive items, aligned with the store's chunks) in a
seeded random order, a few blocks per buffer; a buffer's rows are shuffled and served in order.
Every permutation is a pure function of (seed, stream id, epoch, buffer), so the position
(epoch, buffer, offset) is the whole state: a resumed stream reads exactly what an uninterrupted
one would have. When one buffer holds every item, the rows are read once and kept: each epoch
only shuffles them again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vlmsae.stores.embedding_store import ROW_CHUNK, EmbeddingStore

Loader = Callable[[np.ndarray], tuple[np.ndarray, ...]]


class BlockStream:
    def __init__(
        self,
        n_items: int,
        load: Loader,
        seed: int,
        stream_id: int,
        buffer_items: int,
        block_items: int = ROW_CHUNK,
    ):
        if n_items == 0:
            raise ValueError("cannot stream from an empty set of rows")
        self.n_items, self.load, self.seed, self.stream_id = n_items, load, seed, stream_id
        self.block_items = min(block_items, n_items)
        self.n_blocks = -(-n_items // self.block_items)
        self.blocks_per_buffer = max(1, buffer_items // self.block_items)
        self.epoch, self.buffer_index, self.offset = 0, 0, 0
        self._buffer: tuple[np.ndarray, ...] | None = None
        self._every_item: tuple[np.ndarray, ...] | None = None  # when one buffer holds them all

    @property
    def buffers_per_epoch(self) -> int:
        return -(-self.n_blocks // self.blocks_per_buffer)

    def _fill(self) -> None:
        order = np.random.default_rng([self.seed, self.stream_id, self.epoch]).permutation(
            self.n_blocks
        )
        blocks = np.sort(
            order[
                self.buffer_index * self.blocks_per_buffer : (self.buffer_index + 1)
                * self.blocks_per_buffer
            ]
        )
        items = np.concatenate(
            [
                np.arange(b * self.block_items, min((b + 1) * self.block_items, self.n_items))
                for b in blocks
            ]
        )
        shuffle = np.random.default_rng(
            [self.seed, self.stream_id, self.epoch, self.buffer_index]
        ).permutation(len(items))
        if self.buffers_per_epoch > 1:
            self._buffer = tuple(array[shuffle] for array in self.load(items))
            return
        # Every epoch reads the same rows (all of them, in item order): decompressing them once
        # saves about a tenth of a small training run.
        if self._every_item is None:
            self._every_item = self.load(items)
        self._buffer = tuple(array[shuffle] for array in self._every_item)

    def take(self, count: int) -> tuple[np.ndarray, ...]:
        """The next `count` items, as one array per loaded field."""
        parts = []
        while count > 0:
            if self._buffer is None:
                self._fill()
            chunk = tuple(array[self.offset : self.offset + count] for array in self._buffer)
            taken = len(chunk[0])
            parts.append(chunk)
            self.offset += taken
            count -= taken
            if self.offset == len(self._buffer[0]):
                self._buffer, self.offset = None, 0
                self.buffer_index += 1
                if self.buffer_index == self.buffers_per_epoch:
                    self.epoch, self.buffer_index = self.epoch + 1, 0
        return tuple(np.concatenate(fields) for fields in zip(*parts, strict=True))

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "buffer_index": self.buffer_index, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.buffer_index, self.offset = (
            state["epoch"],
            state["buffer_index"],
            state["offset"],
        )
        self._buffer = None
        if self.offset:
            # Rebuild the buffer the position points into; `offset` rows of it were served.
            offset, self.offset = self.offset, 0
            self._fill()
            self.offset = offset


def modality_stream(
    store: EmbeddingStore, modality: str, seed: int, stream_id: int, buffer_items: int
) -> BlockStream:
    """Stream of one modality's train rows: items yield (rows [n, d],)."""
    rows = store.split_rows(modality, "train")
    return BlockStream(
        len(rows), lambda items: (store.rows(modality, rows[items]),), seed, stream_id, buffer_items
    )


def pair_stream(store: EmbeddingStore, seed: int, stream_id: int, buffer_items: int) -> BlockStream:
    """Stream of aligned train pairs: items yield (image rows [n, d], text rows [n, d])."""
    pairs = store.split_pairs("train")
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]

    def load(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return store.rows("image", pairs[items, 0]), store.rows("text", pairs[items, 1])

    return BlockStream(len(pairs), load, seed, stream_id, buffer_items)
