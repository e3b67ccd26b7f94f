"""Stand-ins for Google Drive and the Hub: a local HTTP server and tiny official-format checkpoints.

``FileServer`` serves bytes from memory on 127.0.0.1 with range requests (so resuming is real),
can drop a connection midway, throttle, or announce a size it never sends. ``official_files``
writes tiny checkpoints in the official DreamPose format (``torch.save`` of state dicts with the
``module.`` prefix of DDP, the VAE with diffusers < 0.14 attention names) and tiny Stable Diffusion
and CLIP folders laid out like their hub repositories.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

OLD_VAE_NAMES = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


@dataclass
class _Behaviour:
    drop_after: int | None = None  # send this many body bytes, then cut the connection (once)
    bytes_per_second: float | None = None  # throttle
    announce: int | None = None  # a Content-Length to claim instead of the real one


@dataclass
class FileServer:
    files: dict[str, bytes] = field(default_factory=dict)
    behaviour: dict[str, _Behaviour] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)

    def add(self, name: str, data: bytes, **behaviour) -> str:
        self.files[name] = data
        self.behaviour[name] = _Behaviour(**behaviour)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> FileServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/").split("?")[0]
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404, "Not Found")
                    return
                data, how = server.files[name], server.behaviour[name]
                etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
                start = 0
                wanted = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if wanted and (if_range is None or if_range == etag):
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(how.announce or len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("ETag", etag)
                self.end_headers()
                limit = len(body)
                if how.drop_after is not None:
                    limit, how.drop_after = min(limit, how.drop_after), None
                sent = 0
                step = 4096 if how.bytes_per_second else 65536
                while sent < limit:
                    block = body[sent : min(sent + step, limit)]
                    try:
                        self.wfile.write(block)
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    sent += len(block)
                    if how.bytes_per_second:
                        time.sleep(len(block) / how.bytes_per_second)
                if sent < len(body) or how.announce:
                    self.close_connection = True  # cut it short: the client sees an incomplete body

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def ranges(self, name: str) -> list[str | None]:
        return [r for n, r in self.requests if n == name]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- official-format files
@dataclass
class OfficialFiles:
    sd: Path  # tiny Stable Diffusion folder (vae/, unet/, scheduler/ like the hub repo)
    clip: Path  # tiny CLIP folder (config, weights, preprocessor)
    unet: bytes  # official unet_epoch_N.pth
    adapter: bytes  # official adapter_N.pth
    vae: bytes  # official vae_N.pth (old attention names)
    unet_state: dict


def checkpoint_bytes(state: dict, prefix: str = "module.") -> bytes:
    buffer = io.BytesIO()
    torch.save({prefix + k: v for k, v in state.items()}, buffer)
    return buffer.getvalue()


def official_files(root: Path, seed: int = 0) -> OfficialFiles:
    from dreampose.model.adapter import adapter_for
    from dreampose.model.tiny import tiny_stable_diffusion
    from dreampose.model.unet import widen_conv_in

    parts = tiny_stable_diffusion(seed)
    for name in ("vae", "unet", "scheduler"):
        parts[name].save_pretrained(root / "sd" / name)
    parts["image_encoder"].save_pretrained(root / "clip")
    parts["feature_extractor"].save_pretrained(root / "clip")

    torch.manual_seed(seed + 11)  # "trained": every weight moved, pose channels included
    unet = widen_conv_in(parts["unet"], 5)
    adapter = adapter_for(parts["image_encoder"], parts["vae"], unet, (640, 512))
    vae = parts["vae"]
    with torch.no_grad():
        for model in (unet, adapter, vae):
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.05)
    vae_state = {}
    for key, value in vae.state_dict().items():
        for new, old in OLD_VAE_NAMES.items():
            if f"attentions.0.{new}." in key:
                key = key.replace(f".{new}.", f".{old}.")
        vae_state[key] = value
    unet_state = {k: v.clone() for k, v in unet.state_dict().items()}
    return OfficialFiles(
        root / "sd",
        root / "clip",
        checkpoint_bytes(unet_state),
        checkpoint_bytes(adapter.state_dict()),
        checkpoint_bytes(vae_state, prefix=""),
        unet_state,
    )


def zip_bytes(members: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    """A zip of ``members`` (name -> bytes); ``links`` adds symlink entries (name -> target)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16) | 0x20  # S_IFLNK
            z.writestr(info, target)
    return buffer.getvalue()


def official_pose_zip(frames: int = 3, height: int = 40, width: int = 32) -> bytes:
    """``frame_N_densepose.npy`` files (2 x H x W, U and V in [0, 1]) zipped in a folder."""
    rng = np.random.default_rng(0)
    members = {}
    for i in range(frames):
        uv = np.zeros((2, height, width), dtype=np.float32)
        uv[:, 8:36, 8 + i : 24 + i] = rng.uniform(0.05, 1.0, size=(2, 28, 16))
        buffer = io.BytesIO()
        np.save(buffer, uv)
        members[f"poses/frame_{i}_densepose.npy"] = buffer.getvalue()
    return zip_bytes(members)
