"""Models by name from the Hugging Face hub: downloaded once into the data directory, then used offline.

`hub_snapshot(home, "ORG/NAME")` returns the model's local folder: the copy already under
<data dir>/models/hub/ when there is one (no network at all), else it downloads it there now
through huggingface_hub's `snapshot_download` (which honours `HF_ENDPOINT`, read at call time
here so a test or a mirror can point it elsewhere). Only what transformers needs is fetched:
configs, tokenizer files and safetensors weights (not the TF, Flax or ONNX copies).
Every failure is a HubError with one line saying what happened and what to do.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from hashtag_workbench.core.errors import InputError

HUB_DIR = Path("models") / "hub"
DEFAULT_ENDPOINT = "https://huggingface.co"
WANTED = ["*.json", "*.txt", "*.safetensors"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class HubError(InputError):
    """A model could not be found or fetched from the hub (the message is one line for the user)."""


def is_hub_id(name: str | None) -> bool:
    """Whether `name` reads as a hub id (ORG/NAME) rather than a local folder that exists."""
    return bool(name) and bool(_HUB_ID.match(str(name))) and not Path(str(name)).exists()


def hub_dir(home: Path | str) -> Path:
    """Where hub downloads live: <data dir>/models/hub (huggingface_hub's cache layout)."""
    return Path(home) / HUB_DIR


def _cached(repo_id: str, cache: Path) -> Path | None:
    from huggingface_hub import snapshot_download
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache, allow_patterns=WANTED, local_files_only=True))
    except Exception:  # not there yet, or an incomplete earlier download: fetch it
        return None


def _download(repo_id: str, cache: Path, endpoint: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache, allow_patterns=WANTED, endpoint=endpoint))
    except GatedRepoError:
        raise HubError(f"{repo_id} on the Hugging Face hub ({endpoint}) is gated: accept its terms on the hub and "
                       "log in with `hf auth login`, then run this again") from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise HubError(f"no model {repo_id!r} on the Hugging Face hub ({endpoint}), and no local folder of that "
                       "name: check the id (ORG/NAME, e.g. openai/clip-vit-base-patch32)") from None
    except LocalEntryNotFoundError:
        raise HubError(f"cannot download {repo_id}: no connection to the Hugging Face hub ({endpoint})"
                       f"{' (HF_HUB_OFFLINE is set)' if _offline() else ''} and no copy in {cache} yet; run this "
                       "once with network access (the copy is kept there and used offline afterwards), or pass "
                       "--clip-model PATH to a folder saved with save_pretrained") from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "an error")
        raise HubError(f"the Hugging Face hub ({endpoint}) answered {status} for {repo_id}; try again later") from None
    except Exception as exc:  # a dropped connection mid-download, a full disk ...: one line, the cache stays usable
        raise HubError(f"downloading {repo_id} from {endpoint} failed: {type(exc).__name__}: {exc}") from None


def _offline() -> bool:
    from huggingface_hub import constants
    return bool(constants.is_offline_mode())


def hub_snapshot(home: Path | str, repo_id: str, log=print) -> Path:
    """The local folder of hub model `repo_id`: cached under the data directory, downloaded on first use."""
    if not _HUB_ID.match(repo_id or ""):
        raise HubError(f"{repo_id!r} is neither a local folder nor a hub id (ORG/NAME)")
    cache = hub_dir(home)
    folder = _cached(repo_id, cache)
    if folder is not None:
        log(f"[hub] {repo_id}: using the copy in {folder} (no network needed)")
        return folder
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    log(f"[hub] {repo_id}: downloading from {endpoint} into {cache} (once; later runs use this copy offline)")
    folder = _download(repo_id, cache, endpoint)
    files = [p for p in folder.rglob("*") if p.is_file()]
    if not any(p.suffix == ".safetensors" for p in files):
        raise HubError(f"{repo_id} has no safetensors weights on the hub ({endpoint}); download it yourself and "
                       "pass --clip-model PATH")
    size = sum(p.stat().st_size for p in files)
    log(f"[hub] {repo_id}: {len(files)} files, {size / 1e6:.1f} MB in {folder}")
    return folder
