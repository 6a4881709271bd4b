"""Remote dataset sources - Hugging Face Hub datasets and files at pinned URLs - and a local mirror.

Every dataset the paper's configuration reads lives somewhere remote: a Hub dataset repository
(``TIGER-Lab/MMLU-Pro``) or a file at a pinned URL (the authors' CoT traces on GitHub). The loaders
in :mod:`hrsa.data.probe` and :mod:`hrsa.data.contrastive` read them only through this module, so
one switch - ``data_mirror`` in the config - points every one of them at local copies in the same
schema without changing any other code path. That is how the rehearsal of ``config/paper.yaml``
(:mod:`hrsa.rehearsal`) runs offline, and how a site without internet on its submit node can
stage the data by hand.

Mirror layout (``<mirror>`` is the configured directory):

* Hub dataset with ``data_files``:  ``<mirror>/hf/<repo id>/<data_files>``
* Hub dataset without:              ``<mirror>/hf/<repo id>/<config or "default">/<split>.jsonl``
  (``.jsonl``, ``.jsonl.gz`` or ``.parquet``)
* URL ``https://host/a/b.jsonl``:     ``<mirror>/url/host/a/b.jsonl``

Mirrored files are read with ``datasets.load_dataset("json"|"parquet", ...)``, so the rows have the
types the Hub copy has (lists stay lists, nested records stay dicts).
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from pathlib import Path

from ..atomic import atomic_path
from ..errors import DataError

MIRROR_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


def hub_mirror_file(
    mirror: str | os.PathLike,
    repo: str,
    *,
    name: str | None = None,
    split: str = "train",
    data_files: str | None = None,
) -> Path:
    """Where ``mirror`` holds the Hub dataset ``repo`` (see the module docstring); must exist."""
    root = Path(mirror) / "hf" / repo
    if data_files:
        candidates = [root / data_files]
    else:
        stem = root / (name or "default") / split
        candidates = [stem.with_name(stem.name + s) for s in MIRROR_SUFFIXES]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(
        f"data mirror {mirror}: no local copy of the Hub dataset {repo!r} "
        f"(config {name!r}, split {split!r}); expected {candidates[0]}"
    )


def url_mirror_file(mirror: str | os.PathLike, url: str) -> Path:
    """``<mirror>/url/<host>/<path>`` for ``url``."""
    parts = urllib.parse.urlsplit(url)
    if not parts.netloc:
        raise DataError(f"not a URL: {url!r}")
    return Path(mirror) / "url" / parts.netloc / parts.path.lstrip("/")


def _read_file(path: Path):
    from datasets import load_dataset

    kind = "parquet" if path.suffix == ".parquet" else "json"
    try:
        return load_dataset(kind, data_files=str(path), split="train")
    except Exception as exc:  # pyarrow / json errors have many types
        raise DataError(f"{path}: cannot read as {kind} ({exc})") from exc


def load_hub_dataset(
    repo: str,
    *,
    name: str | None = None,
    split: str = "train",
    data_files: str | None = None,
    revision: str | None = None,
    mirror: str | os.PathLike | None = None,
    what: str = "dataset",
):
    """A ``datasets.Dataset``: the Hub dataset ``repo`` (from the cache or the Hub) or its mirror.

    ``what`` names the dataset in errors (e.g. ``training dataset 'nq'``).
    """
    if mirror:
        return _read_file(
            hub_mirror_file(mirror, repo, name=name, split=split, data_files=data_files)
        )
    from datasets import load_dataset

    kwargs = {"data_files": data_files} if data_files else {}
    try:
        return load_dataset(repo, name, split=split, revision=revision, **kwargs)
    except Exception as exc:  # ConnectionError, FileNotFoundError, DatasetNotFoundError ...
        raise DataError(
            f"{what}: cannot load {repo!r} (config {name!r}, split {split!r}, revision "
            f"{revision!r}) from the Hub or its cache ({exc}). Prefetch it on a node with "
            "internet (`snakemake prefetch`), or set data_mirror to local copies."
        ) from exc


def hub_file(
    repo: str,
    data_files: str,
    *,
    revision: str | None = None,
    mirror: str | os.PathLike | None = None,
    what: str = "dataset",
) -> Path:
    """A local copy of one file of the Hub dataset ``repo``: from the mirror, else the Hub (or
    its cache). For files ``datasets`` cannot read as a table (e.g. one JSON array per line)."""
    if mirror:
        return hub_mirror_file(mirror, repo, data_files=data_files)
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, data_files, repo_type="dataset", revision=revision))
    except Exception as exc:  # offline, not found, HTTP errors ...
        raise DataError(
            f"{what}: cannot fetch {data_files!r} of {repo!r} (revision {revision!r}) from the "
            f"Hub or its cache ({exc}). Prefetch it on a node with internet (`snakemake "
            "prefetch`), or set data_mirror to local copies."
        ) from exc


def fetch_url(
    url: str,
    *,
    cache_dir: str | os.PathLike,
    mirror: str | os.PathLike | None = None,
    offline: bool | None = None,
    timeout: float = 60.0,
) -> Path:
    """A local copy of the file at ``url``: from the mirror, else from ``cache_dir`` (downloading
    it there atomically the first time). ``offline`` (default: ``HF_HUB_OFFLINE`` is set) forbids
    the download, so compute jobs fail at once naming the file instead of hanging."""
    if mirror:
        path = url_mirror_file(mirror, url)
        if not path.is_file():
            raise DataError(f"data mirror {mirror}: no local copy of {url} (expected {path})")
        return path
    path = url_mirror_file(cache_dir, url)
    if path.is_file():
        return path
    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
    if offline:
        raise DataError(
            f"{url} is not in the cache {cache_dir} and downloads are off (HF_HUB_OFFLINE); "
            "run `snakemake prefetch` on a node with internet first"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                while chunk := response.read(1 << 20):
                    fh.write(chunk)
    except OSError as exc:  # URLError, HTTPError, timeouts
        raise DataError(f"cannot download {url}: {exc}") from exc
    return path


def read_jsonl_url(url: str, **kwargs):
    """The rows of a JSONL file at ``url`` (see :func:`fetch_url`) as a ``datasets.Dataset``."""
    return _read_file(fetch_url(url, **kwargs))


def read_jsonl_file(path: str | os.PathLike):
    """The rows of a local JSONL file as a ``datasets.Dataset``, read as a downloaded copy is
    (:func:`read_jsonl_url`): the generated CoT traces go through the same reader as the
    published ones."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return _read_file(path)
