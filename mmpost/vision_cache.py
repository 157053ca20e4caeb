"""Per-step reuse of frozen vision (and audio) tower features, and a count of encoder calls.

A GRPO step runs the same images through the encoder many times: `generate` with `num_return_sequences=G`
repeats each prompt's pixels G times, then the old-policy, reference and update passes each encode every row's
media again. With a frozen tower all of those give the same features, so inside `reuse_vision_features` each
distinct image/video (or audio clip) is encoded once and its features are served from memory afterwards, to the
policy and to a reference copy whose tower weights are identical.

Items are keyed by content (a BLAKE2 hash of the item's pixels plus its grid), not by tensor identity: passes
that collate their prompts anew give the encoder new tensor objects. When a pass hands the encoder the very tensor
an earlier call had (the shared-prefix passes reuse one collation per step), unchanged since (`_version`), the
earlier call's features are served without hashing or comparing the pixels again.
A trainable tower is never cached (its features need a graph, and its weights change within a step), nor is a sharded
one (FSDP2 / ZeRO-3: every rank must take part in every forward); their calls are still counted.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

# Attribute names transformers uses for the media encoder of a multimodal model.
TOWER_NAMES = ("visual", "vision_tower", "vision_model", "audio_tower", "audio_encoder")


@dataclass
class EncoderCounter:
    """What the encoders did inside one `reuse_vision_features` block.

    `calls`: forward calls that actually ran an encoder (the metric `perf/vision_encodes`);
    `items_encoded`: images/videos/clips encoded; `items_reused`: items served from the cache instead.
    """

    calls: int = 0
    items_encoded: int = 0
    items_reused: int = 0
    stores: list = field(default_factory=list, repr=False)

    def metrics(self) -> dict[str, float]:
        return {"perf/vision_encodes": float(self.calls), "perf/vision_items_encoded": float(self.items_encoded),
                "perf/vision_items_reused": float(self.items_reused)}


def find_media_towers(model: nn.Module) -> list[nn.Module]:
    """The media encoders inside `model` (through DDP/PEFT wrappers), outermost first, none nested in another."""
    towers: list[nn.Module] = []
    prefixes: list[str] = []
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] not in TOWER_NAMES:
            continue
        if any(name.startswith(p + ".") for p in prefixes):
            continue
        towers.append(module)
        prefixes.append(name)
    return towers


def tower_is_frozen(tower: nn.Module) -> bool:
    return not any(p.requires_grad for p in tower.parameters())


def tower_is_sharded(tower: nn.Module) -> bool:
    """FSDP2 (DTensor) or DeepSpeed ZeRO-3 (`ds_id`) parameters: every rank must run every tower forward, since each
    one gathers the weights collectively, so a per-rank cache hit would leave the other ranks waiting."""
    from mmpost.distributed import is_sharded

    return is_sharded(tower)


def _has_active_dropout(tower: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in tower.modules())


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    """True when two towers compute the same function: same class and bit-identical parameters and buffers."""
    if type(a) is not type(b):
        return False
    state_a, state_b = a.state_dict(), b.state_dict()
    if state_a.keys() != state_b.keys():
        return False
    try:
        return all(x.dtype == state_b[k].dtype and x.shape == state_b[k].shape and
                   (x.data_ptr() == state_b[k].data_ptr() or torch.equal(x, state_b[k])) for k, x in state_a.items())
    except (RuntimeError, TypeError):  # sharded (DTensor) parameters: do not share
        return False


FINGERPRINT_SAMPLES = 4096


def content_key(item: torch.Tensor, extra: tuple = ()) -> tuple:
    """A cheap lookup key for one media item: BLAKE2b of up to 4,096 evenly strided elements, shape, dtype, `extra`.

    Hashing every pixel of a 448 x 448 image costs about as much as encoding it with a small tower, so the key
    samples; a key match is then confirmed with `torch.equal` on the whole item (`_FeatureStore.find`), which
    keeps reuse exact: two images that differ only where the key does not look are still told apart.
    """
    flat = item.detach().reshape(-1)
    if flat.numel() > FINGERPRINT_SAMPLES:
        flat = flat[:: -(-flat.numel() // FINGERPRINT_SAMPLES)]
    flat = flat.contiguous()
    if flat.device.type != "cpu":
        flat = flat.cpu()
    digest = hashlib.blake2b(flat.view(torch.uint8).numpy(), digest_size=16).hexdigest()
    return (digest, tuple(item.shape), str(item.dtype)) + tuple(extra)


class _FeatureStore:
    """Key -> [(the item's tensors, its encoder output fields)]; a hit needs equal keys and equal tensors."""

    def __init__(self) -> None:
        self.entries: dict[tuple, list[tuple[tuple[torch.Tensor, ...], Any]]] = {}
        # The arguments of the last encoder call through this store (weakly held) and its per-item features: a pass
        # that hands the towers sharing this store the same tensors again is served without hashing them.
        self.last: tuple | None = None

    def find(self, key: tuple, item: tuple[torch.Tensor, ...]) -> Any | None:
        for stored, payload in self.entries.get(key, ()):
            if all(torch.equal(a, b) for a, b in zip(stored, item)):
                return payload
        return None

    def add(self, key: tuple, item: tuple[torch.Tensor, ...], payload: Any) -> None:
        # A copy, so the store does not keep a whole collated batch alive through a view.
        self.entries.setdefault(key, []).append((tuple(t.detach().clone() for t in item), payload))

    def clear(self) -> None:
        self.entries.clear()
        self.last = None


def _split_field(value: Any, sizes: Sequence[int], total: int) -> list | None:
    """Per-item pieces of one encoder output field whose dim 0 stacks the items (`sizes` rows each, `total` in all)."""
    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == total:
        return list(value.split(list(sizes)))
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
        parts = [_split_field(v, sizes, total) for v in value]
        if any(p is None for p in parts):
            return None
        return [type(value)(p[i] for p in parts) for i in range(len(sizes))]
    return None


def _join_field(pieces: list) -> Any:
    if isinstance(pieces[0], torch.Tensor):
        return torch.cat(pieces)
    return type(pieces[0])(torch.cat([p[j] for p in pieces]) for j in range(len(pieces[0])))


class _CachedTower:
    """Replaces one tower's `forward` while the context is open: counts calls, serves frozen features from `store`."""

    def __init__(self, tower: nn.Module, store: _FeatureStore, counter: EncoderCounter, enabled: bool) -> None:
        self.tower = tower
        self.original: Callable = tower.forward
        self.store = store
        self.counter = counter
        self.enabled = enabled
        self.unsupported = tower_is_sharded(tower)
        parameters = list(inspect.signature(self.original).parameters)
        # Qwen-VL towers take flattened patches of all items plus a [n, 3] grid; others take a batch (dim 0 = items).
        self.grid_argument = next((p for p in parameters if p.endswith("grid_thw")), None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Dropout active in training mode draws new noise per call: reusing one draw would change the computation.
        if (not self.enabled or self.unsupported or not tower_is_frozen(self.tower)
                or (self.tower.training and _has_active_dropout(self.tower))):
            self.counter.calls += 1
            return self.original(*args, **kwargs)
        try:
            return self._cached(args, kwargs)
        except _Uncacheable:
            self.unsupported = True
            self.counter.calls += 1
            return self.original(*args, **kwargs)

    # -- keyed encoding ----------------------------------------------------------------------------
    def _identity(self, args: tuple, kwargs: dict) -> tuple | None:
        """The arguments as (weak reference, version) of each tensor plus every other value; None if any is not
        hashable. Equal identities mean the same tensor objects, not written to since, so the same features."""
        parts: list = []
        for value in list(args) + [kwargs[k] for k in sorted(kwargs)]:
            if isinstance(value, torch.Tensor):
                parts.append((weakref.ref(value), value._version, tuple(value.shape), value.stride(), value.storage_offset()))
            elif value is None or isinstance(value, (bool, int, float, str)):
                parts.append(value)
            else:
                return None
        return (tuple(sorted(kwargs)), tuple(parts))

    @staticmethod
    def _same_identity(a: tuple, b: tuple) -> bool:
        if a[0] != b[0] or len(a[1]) != len(b[1]):
            return False
        for x, y in zip(a[1], b[1]):
            if isinstance(x, tuple) and isinstance(y, tuple) and isinstance(x[0], weakref.ref):
                if x[0]() is None or x[0]() is not y[0]() or x[1:] != y[1:]:
                    return False
            elif x != y:
                return False
        return True

    def _cached(self, args: tuple, kwargs: dict) -> Any:
        identity = self._identity(args, kwargs)
        last = self.store.last
        if identity is not None and last is not None and self._same_identity(last[0], identity):
            payloads = last[1]
            self.counter.items_reused += len(payloads)
            return self._assemble(payloads)
        output, payloads = self._cached_by_content(args, kwargs)
        self.store.last = (identity, payloads) if identity is not None else None
        return output

    def _cached_by_content(self, args: tuple, kwargs: dict) -> tuple[Any, list]:
        if self.grid_argument is not None:
            keys, items, sizes, encode = self._grid_items(args, dict(kwargs))
        else:
            keys, items, sizes, encode = self._batch_items(args, kwargs)
        payloads: list[Any] = [self.store.find(k, x) for k, x in zip(keys, items)]
        # Items missing from the store, each distinct one once (generate-style batches repeat an image G times).
        first_of: dict[int, int] = {}
        for i, payload in enumerate(payloads):
            if payload is None:
                first_of[i] = next((j for j in first_of if first_of[j] == j and keys[j] == keys[i]
                                    and all(torch.equal(a, b) for a, b in zip(items[j], items[i]))), i)
        distinct = [i for i, j in first_of.items() if i == j]
        if distinct:
            fresh = self._split_output(encode(distinct), [sizes[i] for i in distinct])
            self.counter.calls += 1
            self.counter.items_encoded += len(distinct)
            for i, payload in zip(distinct, fresh):
                self.store.add(keys[i], items[i], payload)
                payloads[i] = payload
            for i, j in first_of.items():
                payloads[i] = payloads[j]
        self.counter.items_reused += len(keys) - len(distinct)
        return self._assemble(payloads), payloads

    def _grid_items(self, args: tuple, kwargs: dict):
        """Qwen-VL layout: patches of all items stacked along dim 0, item i owning prod(grid[i]) rows."""
        args = list(args)
        inputs = args.pop(0) if args else kwargs.pop("hidden_states", None)
        grid = args.pop(0) if args else kwargs.pop(self.grid_argument, None)
        if not isinstance(inputs, torch.Tensor) or not isinstance(grid, torch.Tensor) or args:
            raise _Uncacheable()
        sizes = [int(s) for s in grid.prod(-1).tolist()]
        if sum(sizes) != inputs.shape[0]:
            raise _Uncacheable()
        items = [(x,) for x in inputs.split(sizes)]
        keys = [content_key(x[0], tuple(g.tolist())) for x, g in zip(items, grid)]

        def encode(indices: list[int]) -> Any:
            chosen = torch.cat([items[i][0] for i in indices])
            return self.original(chosen, **{self.grid_argument: grid[indices]}, **kwargs)

        return keys, items, sizes, encode

    def _batch_items(self, args: tuple, kwargs: dict):
        """Batched layout (audio towers, SigLIP-like encoders): dim 0 of every tensor argument indexes the items."""
        if any(not isinstance(a, torch.Tensor) for a in args):
            raise _Uncacheable()
        tensors = list(args) + [v for v in kwargs.values() if isinstance(v, torch.Tensor)]
        if not tensors:
            raise _Uncacheable()
        batch = tensors[0].shape[0] if tensors[0].ndim else -1
        if batch < 1 or any(t.ndim == 0 or t.shape[0] != batch for t in tensors):
            raise _Uncacheable()
        tensor_kwargs = sorted(k for k, v in kwargs.items() if isinstance(v, torch.Tensor))
        other_kwargs = tuple(sorted((k, repr(v)) for k, v in kwargs.items() if k not in tensor_kwargs))
        items = [tuple(a[i] for a in args) + tuple(kwargs[k][i] for k in tensor_kwargs) for i in range(batch)]
        keys = [tuple(content_key(t) for t in item) + tuple(tensor_kwargs) + other_kwargs for item in items]

        def encode(indices: list[int]) -> Any:
            index = torch.tensor(indices, device=tensors[0].device)
            return self.original(*[a.index_select(0, index) for a in args],
                                 **{k: (v.index_select(0, index) if k in tensor_kwargs else v) for k, v in kwargs.items()})

        return keys, items, [1] * batch, encode

    def _split_output(self, output: Any, sizes: list[int]) -> list[tuple[type, dict]]:
        """Each output field per item; a field's rows are split in proportion to the items' input rows
        (a 2x2 patch merger gives a quarter of the rows, still item by item)."""
        fields = dict(output.items()) if hasattr(output, "items") else {"__tensor__": output}
        total_in = sum(sizes)
        per_item: list[dict] = [dict() for _ in sizes]
        for name, value in fields.items():
            if value is None:
                continue
            lead = value[0] if isinstance(value, (list, tuple)) and value else value
            if not isinstance(lead, torch.Tensor) or lead.ndim == 0:
                raise _Uncacheable()
            rows = lead.shape[0]
            if any(s * rows % total_in for s in sizes):
                raise _Uncacheable()
            pieces = _split_field(value, [s * rows // total_in for s in sizes], rows)
            if pieces is None:
                raise _Uncacheable()
            for slot, piece in zip(per_item, pieces):
                slot[name] = _detach(piece)
        return [(type(output), slot) for slot in per_item]

    def _assemble(self, payloads: list[tuple[type, dict]]) -> Any:
        output_type, first = payloads[0]
        joined = {name: _join_field([p[1][name] for p in payloads]) for name in first}
        if "__tensor__" in joined:
            return joined["__tensor__"]
        return output_type(**joined)


class _Uncacheable(Exception):
    """An encoder call whose inputs or outputs cannot be split per item; the tower then runs uncached."""


def _detach(piece: Any) -> Any:
    if isinstance(piece, torch.Tensor):
        return piece.detach()
    return type(piece)(p.detach() for p in piece)


@contextlib.contextmanager
def reuse_vision_features(models: Sequence[nn.Module | None], enabled: bool = True) -> Iterator[EncoderCounter]:
    """Within the block, frozen media towers of `models` encode each distinct item once; yields the call counter.

    models: the policy model and, if any, the reference model (None entries are skipped); towers with identical
    frozen weights (a reference copy) share one store. enabled=False only counts encoder calls.
    Trainable towers and models without a tower behave exactly as without the context.
    """
    counter = EncoderCounter()
    towers: list[nn.Module] = []
    for model in models:
        if model is None:
            continue
        for tower in find_media_towers(model):
            if all(tower is not seen for seen in towers):
                towers.append(tower)
    wrappers: list[_CachedTower] = []
    stores: list[tuple[nn.Module, _FeatureStore]] = []
    try:
        for tower in towers:
            store = next((s for other, s in stores if enabled and tower_is_frozen(tower) and tower_is_frozen(other)
                          and _same_weights(tower, other)), None)
            if store is None:
                store = _FeatureStore()
                stores.append((tower, store))
                counter.stores.append(store)
            wrapper = _CachedTower(tower, store, counter, enabled)
            tower.forward = wrapper
            wrappers.append(wrapper)
        yield counter
    finally:
        for wrapper in wrappers:
            if wrapper.tower.__dict__.get("forward") is wrapper:
                del wrapper.tower.forward
        for store in counter.stores:
            store.clear()
