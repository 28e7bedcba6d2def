"""What a server is configured with, and the rules for binding it (checked before anything loads)."""
from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.images import MAX_PIXELS

ENV_TOKEN = "HASHTAG_API_TOKEN"
ENV_SETTINGS = "HASHTAG_API_SETTINGS"  # how `serve --workers N` hands the settings to each worker process
MAX_IMAGES = 12                   # per request, as on the Predict page
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # per image, uploaded or fetched (the Predict page's URL cap)
RELOAD_EVERY = 5.0                # seconds between the cheap checks for a newer model or vocabulary
MAX_TAGS = 30                     # hashtags=N: the most a word map holds per word is about 30


class UnsafeBind(InputError):
    """Binding this address without a token would expose the API; the message says what to do."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Any address but loopback needs a token: without one, anyone on the network could use the API."""
    if not is_loopback(host) and not token:
        raise UnsafeBind(f"refusing to serve on {host} without a token: anyone who can reach it could use the API. "
                         f"Pass --token T or set {ENV_TOKEN}, or bind 127.0.0.1 (the default).")


def token_from_env() -> str | None:
    return os.environ.get(ENV_TOKEN) or None


@dataclass(frozen=True)
class Settings:
    home: Path
    token: str | None = None
    max_images: int = MAX_IMAGES
    max_image_bytes: int = MAX_IMAGE_BYTES
    reload_every: float = RELOAD_EVERY
    flush_every: float = 1.0      # seconds between writes of the recorded predictions
    max_batch: int = 32           # images the model runs at once (concurrent requests share a batch)
    allow_private: bool | None = None  # URL fetches: None = $HASHTAG_ALLOW_PRIVATE_URLS, as the Predict page
    cors_origins: tuple[str, ...] = ()
    runtime: str = "onnx"
    threads: int | None = None
    run_id: int | None = None     # the `serve` run the recorded predictions name
    # Builds the default zero-shot model when the vocabulary changed (jobs/serve.py passes train's own);
    # None: keep serving the last one built.
    refresh_zero_shot: Callable[[Path], dict] | None = field(default=None, compare=False, repr=False)

    @property
    def max_body(self) -> int:
        """The largest request body accepted: every image at its cap plus room for the form's headers."""
        return self.max_images * self.max_image_bytes + 64 * 1024

    def limits(self) -> dict:
        return {"max_images": self.max_images, "max_image_bytes": self.max_image_bytes, "max_pixels": MAX_PIXELS,
                "max_hashtags": MAX_TAGS}

    def to_env(self) -> str:
        """JSON of the plain settings (not the token, which travels as $HASHTAG_API_TOKEN)."""
        plain = {k: v for k, v in asdict(self).items() if k not in ("token", "refresh_zero_shot")}
        return json.dumps({**plain, "home": str(self.home), "cors_origins": list(self.cors_origins)})

    @classmethod
    def from_env(cls, **extra) -> Settings:
        raw = json.loads(os.environ[ENV_SETTINGS])
        known = {f.name for f in fields(cls)}
        raw = {k: v for k, v in raw.items() if k in known}
        return cls(**{**raw, "home": Path(raw["home"]), "cors_origins": tuple(raw.get("cors_origins", ())),
                      "token": token_from_env(), **extra})
