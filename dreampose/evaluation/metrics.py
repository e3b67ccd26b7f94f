"""The quality metrics of `dreampose evaluate`, each computed by a maintained library.

Per frame (prediction against its ground-truth frame, both RGB at the metric size):

- **L1**: ``torchmetrics`` mean absolute error of pixels in [0, 1] (the paper's scale: 0.0256).
- **PSNR**: ``torchmetrics``, data range 1.
- **SSIM** (Wang et al. 2004): ``torchmetrics``, Gaussian window 11, sigma 1.5, K = (0.01, 0.03),
  averaged over the RGB channels.
- **LPIPS** (Zhang et al. 2018, the paper's [53]): the ``lpips`` package, the authors' reference
  implementation, v0.1 linear layers on the AlexNet trunk, as the literature reports it.
- **VGG**: ``lpips`` v0.1 on the VGG16 trunk. The paper cites Johnson et al.'s perceptual
  loss for this column without defining it further; LPIPS-VGG is the standard published
  VGG-feature distance, so it is our reading of that column.

Over the whole test set:

- **FID** (Heusel et al. 2017): ``torchmetrics``' Fréchet distance on the 2048-d pool features of
  ``torch-fidelity``'s Inception v3, which carries the original TensorFlow FID weights (the
  numbers of TTUR and pytorch-fid).
- **FVD** (Unterthiner et al. 2018): the same ``torchmetrics`` Fréchet distance on the 400
  Kinetics logits of ``cd-fvd``'s I3D (the PyTorch port used by TATS and StyleGAN-V), with
  cd-fvd's preprocessing: clips of 16 consecutive frames, bilinearly resized to 224 x 224,
  scaled to [-1, 1].

The pretrained networks download once, on first use, through each library's own mechanism
(torch.hub's cache for the torchvision trunks and Inception; the I3D file is kept in the same
cache folder). Without a network connection, :func:`load_networks` raises
:class:`MetricWeightsUnavailable` saying which file and where it goes. ``pretrained=False``
builds the same networks with random weights (Inception: torchvision's architecture as a
stand-in, because torch-fidelity's always loads its weights), for plumbing checks only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import pickle
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FRAME_METRICS = ("l1", "psnr", "ssim", "lpips", "vgg")
SET_METRICS = ("fid", "fvd")
FVD_CLIP_LENGTH = 16
I3D_FILE = "i3d_pretrained_400.pt"  # the name cd-fvd itself gives the file

# import name -> pip name
LIBRARIES = {
    "torchmetrics": "torchmetrics",
    "torch_fidelity": "torch-fidelity",
    "lpips": "lpips",
    "cdfvd": "cd-fvd",
}
INSTALL_HINT = "pip install -r requirements-eval.txt (or pip install 'dreampose[eval]')"


class MetricWeightsUnavailable(RuntimeError):
    """A metric network's pretrained weights could not be downloaded or read."""


def require_libraries() -> None:
    """Fail with the install command when a metric library is missing."""
    missing = [pip for name, pip in LIBRARIES.items() if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(
            f"dreampose evaluate needs the metric libraries {', '.join(LIBRARIES.values())}; "
            f"missing: {', '.join(missing)}. Install them with: {INSTALL_HINT}"
        )


# =========================================================================== networks
@dataclass
class MetricNetworks:
    """The networks behind the learned metrics, with the interfaces the metrics call.

    - ``lpips``, ``vgg``: (N, 3, H, W) x 2 in [-1, 1] -> (N, 1, 1, 1) distances
    - ``inception``: uint8 (N, 3, H, W) -> (N, d) features (FID)
    - ``i3d``: uint8 clips (B, T, H, W, 3) -> (B, d) features (FVD)
    """

    lpips: torch.nn.Module
    vgg: torch.nn.Module
    inception: torch.nn.Module
    i3d: torch.nn.Module
    pretrained: bool = True

    def to(self, device) -> MetricNetworks:
        for net in (self.lpips, self.vgg, self.inception, self.i3d):
            net.to(device).eval().requires_grad_(False)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.lpips.parameters()).device


class I3DFeatures(torch.nn.Module):
    """cd-fvd's I3D behind cd-fvd's own preprocessing: uint8 clips (B, T, H, W, 3) ->
    400 Kinetics logits per clip, the features FVD compares."""

    num_features = 400  # read by torchmetrics' Fréchet distance

    def __init__(self, i3d: torch.nn.Module):
        super().__init__()
        self.i3d = i3d

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        from cdfvd.third_party.i3d.utils import preprocess_i3d

        device = next(self.i3d.parameters()).device
        return self.i3d(preprocess_i3d(clips.cpu().numpy()).to(device))


class InceptionStandIn(torch.nn.Module):
    """torchvision's Inception v3 with random weights, pool features (N, 2048) from uint8
    images: the shape and cost of FID's network, for runs that cannot download it."""

    num_features = 2048

    def __init__(self):
        super().__init__()
        from torchvision.models import inception_v3

        self.net = inception_v3(weights=None, aux_logits=False, init_weights=False)
        self.net.fc = torch.nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(images.float() / 127.5 - 1, size=(299, 299), mode="bilinear")
        return self.net(x)


def load_networks(device: str | torch.device = "cpu", pretrained: bool = True) -> MetricNetworks:
    """The four metric networks on ``device``; pretrained ones download on first use."""
    require_libraries()
    with warnings.catch_warnings():  # lpips 0.1.4 calls torchvision's deprecated `pretrained=`
        warnings.simplefilter("ignore", UserWarning)
        if not pretrained:
            return random_networks().to(device)
        networks = MetricNetworks(
            pretrained_lpips("alex"), pretrained_lpips("vgg"), pretrained_inception(), pretrained_i3d()
        )
    return networks.to(device)


def random_networks(seed: int = 0) -> MetricNetworks:
    """The metric networks with random weights: LPIPS with the library's random trunk
    (``pnet_rand``) and its real linear layers, I3D and an Inception v3 stand-in with
    variance-preserving random weights (default initialisation makes their features vanish
    with depth, so every Fréchet distance would read 0)."""
    import lpips
    from cdfvd.third_party.i3d import pytorch_i3d

    torch.manual_seed(seed)
    inception, i3d = InceptionStandIn(), pytorch_i3d.InceptionI3d(400, in_channels=3)
    for net in (inception, i3d):
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d | torch.nn.Conv3d | torch.nn.Linear):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
    return MetricNetworks(
        lpips.LPIPS(net="alex", pnet_rand=True, verbose=False),
        lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False),
        inception,
        I3DFeatures(i3d),
        pretrained=False,
    )


def pretrained_lpips(trunk: str) -> torch.nn.Module:
    """LPIPS v0.1 on the ``alex`` or ``vgg`` trunk; the trunk downloads via torchvision."""
    import lpips

    name = {"alex": "AlexNet", "vgg": "VGG16"}[trunk]
    with _downloading(f"the LPIPS {name} trunk (torchvision's ImageNet weights)"):
        return lpips.LPIPS(net=trunk, verbose=False)


def pretrained_inception() -> torch.nn.Module:
    """torch-fidelity's Inception v3 (TensorFlow FID weights), 2048-d pool features."""
    with _downloading("the FID Inception v3 weights (torch-fidelity)"):
        from torchmetrics.image.fid import NoTrainInceptionV3

        inception = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
    inception.num_features = 2048  # else torchmetrics probes it with a CPU tensor
    return inception


def pretrained_i3d() -> I3DFeatures:
    """cd-fvd's I3D (Kinetics-400), its file kept in torch.hub's checkpoint folder."""
    from cdfvd.third_party.i3d.utils import load_i3d_model

    path = checkpoint_dir() / I3D_FILE
    with _downloading(f"the FVD I3D weights (cd-fvd, {I3D_FILE})", partial=path):
        return I3DFeatures(load_i3d_model(torch.device("cpu"), str(path)))


def checkpoint_dir() -> Path:
    """torch.hub's checkpoint folder ($TORCH_HOME/hub/checkpoints): where all four live."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def _downloading(what: str, partial: Path | None = None) -> Iterator[None]:
    """Turn a failed download (or a truncated file from an earlier one) into one clear error."""
    try:
        yield
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        if partial is not None and partial.is_file():
            partial.unlink()  # cd-fvd writes whatever it received; never keep a bad file
        first_line = str(e).splitlines()[0][:200] if str(e) else ""
        cause = f"{e.__class__.__name__}: {first_line}".rstrip(": ")
        raise MetricWeightsUnavailable(
            f"could not download {what} ({cause}). The metric networks download once, on first use, "
            f"into {checkpoint_dir()}: run once with internet access, or copy that folder from a "
            "machine that has them (set TORCH_HOME to use another place). "
            "--random-metric-networks checks the plumbing without them (its numbers are not comparable)."
        ) from e


# =========================================================================== metrics
def _pixels(frames: np.ndarray, device) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    return (
        torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).contiguous().float()
        / 255
    )


@torch.no_grad()
def frame_metrics(
    ours: np.ndarray, truth: np.ndarray, networks: MetricNetworks, batch_size: int = 16
) -> dict[str, np.ndarray]:
    """L1, PSNR, SSIM, LPIPS, VGG of each predicted frame against its ground truth.

    ``ours`` and ``truth``: uint8 (N, H, W, 3) of one size. Returns one float64 array of N
    values per metric (PSNR is ``inf`` for identical frames).
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
    from torchmetrics.functional.regression import mean_absolute_error

    if ours.shape != truth.shape or ours.ndim != 4 or ours.shape[-1] != 3:
        raise ValueError(f"predictions {ours.shape} and ground truth {truth.shape} must both be (N, H, W, 3)")
    scores: dict[str, list[float]] = {name: [] for name in FRAME_METRICS}
    for start in range(0, len(ours), batch_size):
        p = _pixels(ours[start : start + batch_size], networks.device)
        t = _pixels(truth[start : start + batch_size], networks.device)
        scores["l1"] += [float(mean_absolute_error(a, b)) for a, b in zip(p, t, strict=True)]
        psnr = peak_signal_noise_ratio(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3))
        scores["psnr"] += psnr.tolist()
        scores["ssim"] += structural_similarity_index_measure(p, t, data_range=1.0, reduction="none").tolist()
        scores["lpips"] += networks.lpips(p * 2 - 1, t * 2 - 1).flatten().tolist()
        scores["vgg"] += networks.vgg(p * 2 - 1, t * 2 - 1).flatten().tolist()
    return {name: np.asarray(values, dtype=np.float64) for name, values in scores.items()}


@torch.no_grad()
def frechet_distance(
    extractor: torch.nn.Module, real: Iterable[np.ndarray], fake: Iterable[np.ndarray], to_input
) -> float:
    """torchmetrics' Fréchet distance between the ``extractor`` features of two sets.

    ``real`` and ``fake`` yield uint8 batches; ``to_input`` makes the extractor's input
    tensor of one batch. Needs at least two items on each side.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=extractor, reset_real_features=True).to(_device_of(extractor))
    counts = {True: 0, False: 0}
    for is_real, batches in ((True, real), (False, fake)):
        for batch in batches:
            metric.update(to_input(batch).to(_device_of(extractor)), real=is_real)
            counts[is_real] += len(batch)
    if min(counts.values()) < 2:
        raise ValueError(
            f"a Fréchet distance needs at least 2 items per side; got {counts[True]} and {counts[False]}"
        )
    return float(metric.compute())


def fid(real: Iterable[np.ndarray], fake: Iterable[np.ndarray], networks: MetricNetworks) -> float:
    """FID between batches of uint8 frames (N, H, W, 3)."""
    return frechet_distance(
        networks.inception,
        real,
        fake,
        lambda b: torch.from_numpy(np.ascontiguousarray(b)).permute(0, 3, 1, 2),
    )


def fvd(real: Iterable[np.ndarray], fake: Iterable[np.ndarray], networks: MetricNetworks) -> float:
    """FVD between batches of uint8 clips (B, T, H, W, 3)."""
    return frechet_distance(networks.i3d, real, fake, lambda b: torch.from_numpy(np.ascontiguousarray(b)))


def clips(frames: np.ndarray, length: int = FVD_CLIP_LENGTH) -> np.ndarray:
    """Non-overlapping clips of ``length`` consecutive frames: (N, H, W, 3) -> (N // length, length, H, W, 3)."""
    usable = len(frames) // length * length
    return frames[:usable].reshape(-1, length, *frames.shape[1:])


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device
