"""Run by an older huggingface_hub in its own venv (tests/registry/test_hf_compat.py):
the read protocol and an LFS upload, each finding printed as one JSON line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import huggingface_hub
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download, snapshot_download
from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError


def main(endpoint: str, repo: str, gated: str, token: str, folder: str, cache: str) -> None:
    api = HfApi(endpoint=endpoint)
    out: dict[str, object] = {"version": huggingface_hub.__version__}
    path = snapshot_download(repo, endpoint=endpoint, cache_dir=cache)
    out["snapshot_files"] = sorted(
        p.relative_to(path).as_posix() for p in Path(path).rglob("*") if p.is_file()
    )
    out["one_file"] = Path(
        hf_hub_download(repo, "model_index.json", revision="v1", endpoint=endpoint, cache_dir=cache)
    ).name
    info = api.model_info(repo)
    out["sha"] = info.sha
    out["tier_filter"] = sorted(m.id for m in api.list_models(filter="tier:credentialed"))
    out["gated_only"] = sorted(m.id for m in api.list_models(gated=True))
    refs = api.list_repo_refs(repo)
    out["refs"] = [b.name for b in refs.branches] + [t.name for t in refs.tags]
    out["commits"] = [c.commit_id for c in api.list_repo_commits(repo)]
    out["paths_info"] = sorted(i.path for i in api.get_paths_info(repo, ["unet", "README.md"]))
    out["pr_exists"] = api.revision_exists(repo, "refs/pr/1")
    fs = HfFileSystem(endpoint=endpoint)
    out["fs_exists"] = fs.exists(f"{repo}/unet/config.json")
    out["fs_glob"] = sorted(fs.glob(f"{repo}/unet/*.json"))
    out["case_redirect"] = api.model_info(repo.upper()).id
    try:
        hf_hub_download(gated, "model_index.json", endpoint=endpoint, cache_dir=cache)
    except GatedRepoError as error:
        out["gated_error"] = str(error)
    try:
        api.model_info("nobody/nothing")
    except RepositoryNotFoundError:
        out["missing"] = "RepositoryNotFoundError"
    writer = HfApi(endpoint=endpoint, token=token)
    writer.create_repo("mgh/old-hub", exist_ok=True)
    commit = writer.upload_folder(repo_id="mgh/old-hub", folder_path=folder)
    out["uploaded"] = commit.oid
    out["uploaded_files"] = sorted(s.rfilename for s in api.model_info("mgh/old-hub").siblings)
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
