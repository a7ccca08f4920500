"""Private: :class:`TorchFeatureModel`, streaming layer-wise extraction from any torch module.

How layers are found: a forward hook on every leaf module (a module without children, or
one with parameters of its own, such as a Conv2d subclass holding a padding module) sees
each call's output. Every call whose output is a floating tensor with the batch as first
dimension is a layer, in call order (a module called twice, such as a shared ReLU, gives two
layers, the second named ``"<module>#2"``). Outputs that are exact duplicates of a layer
already seen (an eval-mode Dropout, an Identity, a Flatten, a pooling to the size it already
has) are dropped: they would repeat the same features. The layer plan (names, sizes,
duplicates) is found once with a probe pass over two fixed noise images, so that relative
depths are known before the first layer is handed over.
"""
from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import warnings
import weakref
from pathlib import Path
from typing import Callable

import numpy as np

from .base import AffineLink, FeatureModel, LayerInfo, check_stimuli

__all__ = ["InputTransform", "TorchFeatureModel"]


#: stimuli with a side under this many pixels (and smaller than the model's input) are refused:
#: resized to the input, they would give numbers without information
MIN_STIMULUS_SIDE = 16


@dataclasses.dataclass(frozen=True)
class InputTransform:
    """How grayscale stimuli become a model's input.

    uint8 grayscale (n, h, w) -> float in [0, 1] -> resized to ``size x size`` (antialiased)
    -> replicated to 3 channels -> ``(x - mean) / std`` per channel.
    """

    size: int
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"

    def describe(self) -> str:
        m = ",".join(f"{v:.4g}" for v in self.mean)
        s = ",".join(f"{v:.4g}" for v in self.std)
        return f"resize{self.size}-{self.interpolation}-mean[{m}]-std[{s}]"

    def __call__(self, stimuli: np.ndarray):
        """Return a float32 tensor of shape (n_stimuli, 3, size, size) on the CPU."""
        import torch
        import torch.nn.functional as F

        h, w = np.shape(stimuli)[-2:]
        smallest = min(self.size, MIN_STIMULUS_SIDE)
        if min(h, w) < smallest:
            raise ValueError(f"the stimuli are {h}x{w} pixels; this model takes {self.size}x{self.size} inputs, and "
                             f"images under {smallest} pixels a side carry too little to be resized to it; give "
                             "larger images")
        x = torch.tensor(np.asarray(stimuli, dtype=np.uint8), dtype=torch.float32).div_(255.0)[:, None]
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode=self.interpolation, antialias=True,
                              align_corners=False)
            if self.interpolation == "bicubic":
                x = x.clamp_(0.0, 1.0)
        x = x.expand(-1, 3, -1, -1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()


@dataclasses.dataclass
class _PlanEntry:
    key: str
    module_type: str
    n_features: int
    affine: AffineLink | None = None


_BATCHNORMS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")


def _batchnorm_affine(module):
    """``(scale, shift)`` per channel of an eval-mode batch norm with running statistics, else None."""
    import torch

    # exact types only: subclasses may do more (timm's BatchNormAct2d adds an activation)
    if type(module) not in (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d) \
            or module.training or module.running_mean is None or module.running_var is None:
        return None
    var = module.running_var.detach().to("cpu", torch.float64)
    scale = 1.0 / torch.sqrt(var + module.eps)
    if module.weight is not None:
        scale = scale * module.weight.detach().to("cpu", torch.float64)
    shift = -module.running_mean.detach().to("cpu", torch.float64) * scale
    if module.bias is not None:
        shift = shift + module.bias.detach().to("cpu", torch.float64)
    return scale.numpy(), shift.numpy()


def _is_affine(source, output, scale, shift) -> bool:
    """Whether ``output`` is ``scale[c] * source + shift[c]`` per channel (dim 1), numerically.

    Guards the link against code that changes the source tensor in place before the batch norm
    reads it (``x = conv(x); x += r; bn(x)``).
    """
    import torch

    if source is None or source.shape != output.shape:
        return False
    view = (1, -1) + (1,) * (output.dim() - 2)
    expect = source.double() * torch.from_numpy(scale).view(view) + torch.from_numpy(shift).view(view)
    tol = 1e-4 * max(1.0, float(expect.abs().max()))
    return bool(torch.allclose(expect, output.detach().double(), rtol=1e-4, atol=tol))


class _LastLayerDone(BaseException):
    """Raised by a hook once the last layer of the plan is delivered: the rest of the forward
    pass (a detection model's proposals and box heads, a classifier's tail of functional ops)
    produces no layer, so it is not computed. A ``BaseException``, so that a model's own
    ``except Exception`` cannot swallow it."""


class _Hooks:
    """Forward hooks on all leaf modules; calls ``sink(key, module_type, output, link)``.

    ``link`` is the key of the previous hooked output when this module is an eval-mode batch
    norm applied to that very tensor (else None).
    """

    def __init__(self, module, n_batch: int, sink):
        self.n_batch = n_batch
        self.sink = sink
        self.calls: dict[str, int] = {}
        self.handles = []
        self._last = None  # (key, weakref to the raw output) of the last hooked module
        for name, sub in module.named_modules():
            leaf = not any(True for _ in sub.children())
            # also modules that compute with their own parameters despite having children,
            # e.g. a Conv2d subclass holding a padding module (EfficientNet "same" padding)
            own = any(True for _ in sub.parameters(recurse=False))
            if name and (leaf or own):
                self.handles.append(sub.register_forward_hook(self._make(name, type(sub).__name__)))

    def _make(self, name, module_type):
        import torch

        def hook(module, inputs, output):
            if not isinstance(output, torch.Tensor) or not output.is_floating_point():
                return
            if output.dim() < 1 or output.shape[0] != self.n_batch:
                return
            k = self.calls.get(name, 0) + 1
            self.calls[name] = k
            key = name if k == 1 else f"{name}#{k}"
            link = None
            if self._last is not None and module_type in _BATCHNORMS and inputs \
                    and inputs[0] is self._last[1]() and output.dim() >= 2:
                link = self._last[0]
            self._last = (key, weakref.ref(output))
            self.sink(key, module_type, output, link)

        return hook

    def close(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def _fingerprint(output):
    import torch

    flat = output.detach().reshape(output.shape[0], -1)
    d = flat.to(torch.float64)
    return (flat.shape[1], float(d.sum()), float((d * d).sum()), float(d[:, :: max(1, flat.shape[1] // 97)].sum()))


class TorchFeatureModel(FeatureModel):
    """A torch module seen as a stack of layers (every leaf module's output).

    Parameters
    ----------
    module : torch.nn.Module
    name : str
        Registry name.
    weights : str
        ``"trained"`` or ``"random"``.
    transform : InputTransform
        Preprocessing of grayscale stimuli.
    device : str, optional
        ``"cpu"``/``"cuda"``; default: ``mbutils.get_config().resolved_device()``.
    input_kind : {"image", "video", "detection"}
        ``"video"``: a clip of ``clip_length`` identical frames (n, 3, T, h, w);
        ``"detection"``: a list of images (torchvision detection models).
    seed : int, optional
        Seed that initialised a random variant (part of :attr:`identity`).
    clip_length : int
        Frames per clip of a video model.
    fingerprint : bool
        Add a digest of the module's structure and of all its parameters and buffers to
        :attr:`identity`, for modules that a name and weights do not pin down (models a user
        registers): the feature cache then never serves features of an edited module.
    """

    def __init__(self, module, name: str, weights: str, transform: InputTransform, device=None,
                 input_kind: str = "image", seed: int | None = None, clip_length: int = 1,
                 fingerprint: bool = False):
        import mbutils

        if input_kind not in ("image", "video", "detection"):
            raise ValueError(f"input_kind={input_kind!r}; expected 'image', 'video' or 'detection'")
        self.name = name
        self.weights = weights
        self.transform = transform
        self.input_kind = input_kind
        self.seed = seed
        self.clip_length = int(clip_length)
        if device is None:
            device = mbutils.get_config().resolved_device()
        elif device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = str(device)
        self.module = module.eval().to(self.device)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._plan: list[_PlanEntry] | None = None
        self.fingerprint = bool(fingerprint)
        self._digest: str | None = None

    @property
    def identity(self) -> str:
        w = self.weights if self.weights != "random" else f"random-seed{self.seed}"
        extra = f"|clip{self.clip_length}" if self.input_kind == "video" else ""
        if self.fingerprint:
            extra += f"|module-{self.module_digest()}"
        return f"{self.name}|{w}|{self.transform.describe()}|{self.input_kind}{extra}"

    def module_digest(self) -> str:
        """SHA-256 (16 hex digits) of the module's ``repr`` and of every parameter and buffer.

        Computed once, when first asked for.
        """
        if self._digest is None:
            import hashlib

            import torch

            h = hashlib.sha256(repr(self.module).encode())
            for key, tensor in self.module.state_dict().items():
                t = tensor.detach().to("cpu").contiguous()
                h.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
                if t.numel():
                    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            self._digest = h.hexdigest()[:16]
        return self._digest

    # -- input -----------------------------------------------------------------------------
    def _inputs(self, stimuli):
        x = self.transform(stimuli).to(self.device)
        if self.input_kind == "video":
            return x[:, :, None].expand(-1, -1, self.clip_length, -1, -1).contiguous()
        if self.input_kind == "detection":
            return list(x)
        return x

    def _forward(self, x):
        import torch

        with torch.inference_mode():
            self.module(x)

    def _forward_to_last_layer(self, x):
        """The forward pass up to the plan's last layer (see :class:`_LastLayerDone`)."""
        try:
            self._forward(x)
        except _LastLayerDone:
            pass

    # -- layer plan ------------------------------------------------------------------------
    def layers(self) -> list[LayerInfo]:
        """The model's layers, in network order (found with a probe pass on two noise images)."""
        plan = self._get_plan()
        n = len(plan)
        return [LayerInfo(e.key, i + 1, (i + 1) / n, e.n_features, e.module_type, affine=e.affine)
                for i, e in enumerate(plan)]

    def _get_plan(self) -> list[_PlanEntry]:
        if self._plan is not None:
            return self._plan
        probe = np.random.default_rng(12345).integers(0, 256, size=(2, 64, 64), dtype=np.uint8)
        plan: list[_PlanEntry] = []
        seen: set = set()

        def sink(key, module_type, output, link):
            previous, last[0] = last[0], output.detach().float().clone()  # two tiny probe images
            fp = _fingerprint(output)
            if fp in seen:
                return
            seen.add(fp)
            affine = None
            if link is not None and plan and plan[-1].key == link and plan[-1].n_features == fp[0]:
                sa = _batchnorm_affine(modules[key.split("#")[0]])
                if sa is not None and len(sa[0]) == output.shape[1] and _is_affine(previous, output, *sa):
                    affine = AffineLink(link, sa[0], sa[1])
            plan.append(_PlanEntry(key, module_type, fp[0], affine))

        last = [None]

        modules = dict(self.module.named_modules())

        hooks = _Hooks(self.module, 2, sink)
        try:
            self._forward(self._inputs(probe))
        finally:
            hooks.close()
        if not plan:
            raise RuntimeError(f"model {self.name!r} produced no layer with a per-stimulus tensor output")
        self._plan = plan
        return plan

    # -- extraction ------------------------------------------------------------------------
    def run(self, stimuli, on_layer: Callable, batch_size=None, progress=None) -> None:
        """Forward all stimuli once and hand each layer to ``on_layer`` as soon as it exists.

        Parameters
        ----------
        stimuli : array of shape (n_stimuli, height, width), uint8
        on_layer : callable ``(LayerInfo, torch.Tensor of shape (n_stimuli, n_features))``
            Called once per layer in network order; the tensor is float32 on ``self.device`` and
            must not be kept (it is freed, or modified in place by the next module). The
            forward pass stops once the last layer is handed over: what a network computes
            after its last per-stimulus output (a detector's proposals and box heads) is not
            computed.
        batch_size : int, optional
            Default: all stimuli in one forward pass, so peak memory is about the two largest
            adjacent activations of the network for all stimuli. With ``batch_size``, the
            forward runs batch by batch and every layer's rows are spilled to temporary files on
            disk (under the cache folder), then handed over one layer at a time: RAM/GPU memory
            falls to a batch's activations plus one layer, at the cost of disk space equal to
            all layers for all stimuli and a second read of each layer.
        progress : bool, optional
            Progress bar over layers (default ``mbutils.get_config().progress``).
        """
        import mbutils

        stimuli = check_stimuli(stimuli)
        n = stimuli.shape[0]
        layers = self.layers()
        by_key = {layer.name: layer for layer in layers}
        if progress is None:
            progress = mbutils.get_config().progress
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(layers), desc=f"{self.name} layers", leave=False)
        try:
            if batch_size is None or batch_size >= n:
                self._run_full(stimuli, by_key, on_layer, bar)
            else:
                if batch_size < 1:
                    raise ValueError(f"batch_size={batch_size!r}; expected a positive int or None")
                self._run_batched(stimuli, by_key, layers, on_layer, bar, int(batch_size))
        finally:
            if bar is not None:
                bar.close()

    def _run_full(self, stimuli, by_key, on_layer, bar):
        import torch

        n = stimuli.shape[0]
        done = []
        last = next(reversed(by_key))

        def sink(key, _module_type, output, link):
            layer = by_key.get(key)
            if layer is None:
                return
            if layer.affine is not None and layer.affine.source != link:
                layer = dataclasses.replace(layer, affine=None)  # not the input seen in the probe
            feats = output.detach().reshape(n, -1)
            if feats.dtype != torch.float32:
                feats = feats.float()
            on_layer(layer, feats)
            done.append(key)
            if bar is not None:
                bar.update(1)
            if key == last:
                raise _LastLayerDone

        x = self._inputs(stimuli)
        hooks = _Hooks(self.module, n, sink)
        try:
            self._forward_to_last_layer(x)
        finally:
            hooks.close()
        self._check_done(by_key, done)

    def _run_batched(self, stimuli, by_key, layers, on_layer, bar, batch_size):
        import torch

        import mbutils

        n = stimuli.shape[0]
        root = Path(mbutils.get_config().cache_dir) / "tmp"
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="layers-", dir=root))
        try:
            maps = {}
            unlinked = set()
            for start in range(0, n, batch_size):
                chunk = stimuli[start:start + batch_size]
                m = chunk.shape[0]

                def sink(key, _module_type, output, link, start=start, m=m):
                    layer = by_key.get(key)
                    if layer is None:
                        return
                    if layer.affine is not None and layer.affine.source != link:
                        unlinked.add(key)
                    if key not in maps:
                        maps[key] = np.lib.format.open_memmap(
                            tmp / f"{layer.index}.npy", mode="w+", dtype=np.float32, shape=(n, layer.n_features))
                    maps[key][start:start + m] = output.detach().reshape(m, -1).float().cpu().numpy()
                    if key == layers[-1].name:
                        raise _LastLayerDone

                hooks = _Hooks(self.module, m, sink)
                try:
                    self._forward_to_last_layer(self._inputs(chunk))
                finally:
                    hooks.close()
            self._check_done(by_key, list(maps))
            for layer in layers:
                if layer.name not in maps:
                    continue
                arr = maps.pop(layer.name)
                arr.flush()
                del arr
                data = np.load(tmp / f"{layer.index}.npy", mmap_mode="r")
                if layer.name in unlinked:
                    layer = dataclasses.replace(layer, affine=None)
                on_layer(layer, torch.from_numpy(np.array(data)).to(self.device))
                del data
                (tmp / f"{layer.index}.npy").unlink()
                if bar is not None:
                    bar.update(1)
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)

    def _check_done(self, by_key, done):
        missing = [k for k in by_key if k not in set(done)]
        if missing:
            warnings.warn(
                f"{self.name}: {len(missing)} layer(s) of the probe pass did not occur in this pass "
                f"(e.g. {missing[:3]}); they were skipped", RuntimeWarning, stacklevel=3)
