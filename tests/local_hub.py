"""A Hub-compatible server on localhost for the Hub round-trip tests: olah for reading, a small front for writing.

``olah`` (PyPI) serves git repositories under ``mirrors/{models,spaces}/ORG/NAME`` as a read-only Hub
mirror in offline mode. No installable server accepts uploads, so the front below implements the few
endpoints ``huggingface_hub`` uploads through (create repo, preupload, LFS batch with the basic
transfer, the NDJSON commit) by writing commits and LFS objects into those same repositories, the way
git and git-lfs lay them out, and passes every other request on to olah. Offline olah resolves only
commit shas from mirrors, so the front turns branch names (``main``) into the branch's commit first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response

REPO_TYPES = {"models": "models", "spaces": "spaces", "datasets": "datasets", "model": "models", "space": "spaces"}
# Where a revision sits in the paths huggingface_hub reads: /api/{type}s/ORG/NAME/{kind}/{revision}/...
# and /[{type}s/]ORG/NAME/resolve/{revision}/FILE.
API_PATH = re.compile(r"^/api/(models|spaces|datasets)/([^/]+)/([^/]+)(?:/(revision|tree|paths-info|commits)/([^/]+))?")
RESOLVE_PATH = re.compile(r"^/(?:(spaces|datasets)/)?([^/]+)/([^/]+)/resolve/([^/]+)/")
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".png", ".gz")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def commit_all(repo: Path, message: str) -> None:
    """Commit everything in the work tree (even nothing) as the hub's own user."""
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=hub", "-c", "user.email=hub@localhost", "commit", "-q", "--allow-empty", "-m", message)


class LocalHub:
    """Git repositories under ``root/mirrors`` behind olah (reads) and an upload front (writes)."""

    def __init__(self, root: Path):
        self.mirrors = root / "mirrors"
        self.mirrors.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.olah_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def repo(self, repo_type: str, repo_id: str) -> Path:
        return self.mirrors / REPO_TYPES[repo_type] / repo_id

    def create(self, repo_type: str, repo_id: str) -> Path:
        path = self.repo(repo_type, repo_id)
        if not (path / ".git").is_dir():
            path.mkdir(parents=True)
            git(path, "init", "-q", "-b", "main")
            commit_all(path, "init")
        return path

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> str:
        """A branch or tag name as its commit sha; anything else unchanged."""
        path = self.repo(repo_type, repo_id)
        if re.fullmatch(r"[0-9a-f]{40}", revision) or not (path / ".git").is_dir():
            return revision
        try:
            return git(path, "rev-parse", "--verify", f"{revision}^{{commit}}")
        except subprocess.CalledProcessError:
            return revision

    def lfs_object(self, repo_type: str, repo_id: str, oid: str) -> Path:
        return self.repo(repo_type, repo_id) / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid

    def commit(self, repo_type: str, repo_id: str, lines: list[dict]) -> str:
        path = self.repo(repo_type, repo_id)
        header = next(line["value"] for line in lines if line["key"] == "header")
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                target = path / value["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(value["content"]))
            elif line["key"] == "lfsFile":
                target = path / value["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                pointer = (
                    f"version https://git-lfs.github.com/spec/v1\noid sha256:{value['oid']}\nsize {value['size']}\n"
                )
                target.write_text(pointer)
            elif line["key"] in ("deletedFile", "deletedFolder"):
                git(path, "rm", "-r", "-q", "--ignore-unmatch", value["path"])
        message = header.get("summary", "upload") + (
            "\n\n" + header["description"] if header.get("description") else ""
        )
        commit_all(path, message)
        return git(path, "rev-parse", "HEAD")

    def app(self) -> FastAPI:
        app = FastAPI()
        upstream = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.olah_port}", timeout=60)

        @app.post("/api/repos/create")
        async def create_repo(request: Request):
            body = await request.json()
            repo_type = body.get("type") or "model"
            repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
            self.create(repo_type, repo_id)
            prefix = "" if repo_type == "model" else f"{REPO_TYPES[repo_type]}/"
            return {"url": f"{self.endpoint}/{prefix}{repo_id}", "name": repo_id}

        @app.post("/api/validate-yaml")
        async def validate_yaml(request: Request):
            body = await request.json()
            errors = metadata_errors(body["content"], body.get("repoType", "model"))
            return Response(json.dumps({"errors": errors, "warnings": []}), status_code=400 if errors else 200)

        @app.post("/api/{repo_type}/{org}/{name}/preupload/{revision}")
        async def preupload(repo_type: str, org: str, name: str, revision: str, request: Request):
            files = (await request.json())["files"]
            modes = [
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                    "shouldIgnore": False,
                }
                for f in files
            ]
            return {"files": modes}

        @app.post("/{path:path}.git/info/lfs/objects/batch")
        async def lfs_batch(path: str, request: Request):
            repo_type, repo_id = (
                ("space", path.removeprefix("spaces/")) if path.startswith("spaces/") else ("model", path)
            )
            objects = []
            for obj in (await request.json())["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"]}
                if not self.lfs_object(repo_type, repo_id, obj["oid"]).is_file():
                    href = f"{self.endpoint}/_lfs/{repo_type}/{repo_id}/{obj['oid']}"
                    entry["actions"] = {"upload": {"href": href}}
                objects.append(entry)
            return Response(
                json.dumps({"transfer": "basic", "objects": objects}), media_type="application/vnd.git-lfs+json"
            )

        @app.put("/_lfs/{repo_type}/{org}/{name}/{oid}")
        async def lfs_upload(repo_type: str, org: str, name: str, oid: str, request: Request):
            content = await request.body()
            if hashlib.sha256(content).hexdigest() != oid:
                return Response("sha256 mismatch", status_code=400)
            target = self.lfs_object(repo_type, f"{org}/{name}", oid)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            return Response(status_code=200)

        @app.post("/api/{repo_type}/{org}/{name}/commit/{revision}")
        async def commit(repo_type: str, org: str, name: str, revision: str, request: Request):
            lines = [json.loads(line) for line in (await request.body()).decode().splitlines() if line.strip()]
            sha = self.commit(repo_type, f"{org}/{name}", lines)
            prefix = "" if repo_type == "models" else f"{repo_type}/"
            return {
                "commitUrl": f"{self.endpoint}/{prefix}{org}/{name}/commit/{sha}",
                "commitOid": sha,
                "pullRequestUrl": None,
            }

        @app.api_route("/{path:path}", methods=["GET", "HEAD", "POST"])
        async def read(path: str, request: Request):
            url = self.pinned("/" + path)
            response = await upstream.request(
                request.method,
                url,
                params=request.query_params,
                content=await request.body(),
                headers={k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")},
            )
            # httpx already decoded the body; a HEAD answer keeps the length of the body it stands for.
            dropped = ("content-encoding", "transfer-encoding") + (
                () if request.method == "HEAD" else ("content-length",)
            )
            headers = {k: v for k, v in response.headers.items() if k.lower() not in dropped}
            return Response(response.content, status_code=response.status_code, headers=headers)

        return app

    def pinned(self, path: str) -> str:
        """``path`` with a branch name replaced by its commit, which is all offline olah resolves."""
        match = API_PATH.match(path)
        if match:
            repo_type, org, name, kind, revision = match.groups()
            repo_id = f"{org}/{name}"
            if kind is None:  # repo info without a revision reads the main branch
                return (
                    f"/api/{repo_type}/{repo_id}/revision/{self.resolve(repo_type, repo_id, 'main')}"
                    + path[match.end() :]
                )
            if kind in ("revision", "tree", "paths-info", "commits"):
                sha = self.resolve(repo_type, repo_id, revision)
                return path[: match.start(5)] + sha + path[match.end(5) :]
        match = RESOLVE_PATH.match(path)
        if match:
            repo_type, org, name, revision = match.groups()
            sha = self.resolve(repo_type or "models", f"{org}/{name}", revision)
            return path[: match.start(4)] + sha + path[match.end(4) :]
        return path


def metadata_errors(content: str, repo_type: str) -> list[dict[str, str]]:
    """What the Hub would refuse in a README's metadata, checked with huggingface_hub's own card parsing.

    The card must parse strictly (a malformed ``model-index`` raises), ``tags`` and ``datasets`` must be
    lists, and ``base_model`` / ``models`` must name valid repo ids.
    """
    from huggingface_hub import ModelCard, SpaceCard
    from huggingface_hub.utils import validate_repo_id

    card_class = SpaceCard if repo_type == "space" else ModelCard
    try:
        data = card_class(content, ignore_metadata_errors=False).data
    except Exception as error:  # whatever the parser raises is the validation message
        return [{"message": str(error)}]
    errors = []
    for key in ("tags", "datasets", "models"):
        if data.get(key) is not None and not isinstance(data.get(key), list):
            errors.append({"message": f"{key} must be a list"})
    base = data.get("base_model")
    for repo_id in ([base] if isinstance(base, str) else base or []) + list(data.get("models") or []):
        try:
            validate_repo_id(repo_id)
        except ValueError as error:
            errors.append({"message": f"invalid repo id {repo_id!r}: {error}"})
    return errors


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up in {seconds} s")


@contextmanager
def serve(root: Path) -> Iterator[LocalHub]:
    """Run olah and the upload front until the context exits; yields the hub (``hub.endpoint``)."""
    hub = LocalHub(root)
    config = root / "olah.toml"
    config.write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\nport = {hub.olah_port}\n'
        f'repos-path = "{root / "olah-cache"}"\n'
        f'mirrors-path = ["{hub.mirrors}"]\n'
        f'mirror-netloc = "127.0.0.1:{hub.port}"\nmirror-lfs-netloc = "127.0.0.1:{hub.port}"\n'
        "[accessibility]\noffline = true\n"
    )
    server = uvicorn.Server(uvicorn.Config(hub.app(), host="127.0.0.1", port=hub.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    with open(root / "olah.log", "w") as log:
        olah = subprocess.Popen(
            [sys.executable, "-m", "olah.server", "-c", str(config)], cwd=root, stdout=log, stderr=subprocess.STDOUT
        )
        thread.start()
        try:
            wait_for(f"http://127.0.0.1:{hub.olah_port}/")
            wait_for(hub.endpoint + "/")
            yield hub
        finally:
            server.should_exit = True
            olah.terminate()
            olah.wait(timeout=10)
            thread.join(timeout=10)
