"""The kubelet's part: pods, their projected token volumes behind `..data`, refreshed at 80 %."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import os
import re
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from domain.ports import Clock

__all__ = [
    "DEFAULT_PODS",
    "NODE_NAME",
    "Kubelet",
    "Pod",
    "PodSpec",
    "ProjectedToken",
    "parse_pod_spec",
    "schedule_pod",
    "write_private",
    "write_projected_volume",
]

NODE_NAME = "devcluster-node"
# pkg/kubelet/token/token_manager.go: refresh at 80% of the TTL, or after 24 h.
REFRESH_FRACTION = 0.8
MAX_TOKEN_AGE_SECONDS = 24 * 60 * 60
DATA_DIR = "..data"
DATA_DIR_TMP = "..data_tmp"
# k8s.io/apimachinery/pkg/util/rand: the alphabet of generated name suffixes.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


@dataclass(frozen=True)
class PodSpec:
    """A pod to run: `<app>-<suffix>` in `namespace` as `service_account`, with extra
    projected tokens for `extra_audiences` (one volume `<audience>-token` each)."""

    app: str
    service_account: str
    namespace: str = "default"
    extra_audiences: tuple[str, ...] = ()


DEFAULT_PODS = (
    PodSpec("be", "be-sa", extra_audiences=("be2",)),
    PodSpec("be2", "be2-sa"),
)


def parse_pod_spec(text: str) -> PodSpec:
    """`[namespace/]app:service-account[:audience,...]`, e.g. `default/be:be-sa:be2`."""
    head, _, rest = text.partition(":")
    namespace, _, app = head.rpartition("/")
    service_account, _, audiences = rest.partition(":")
    spec = PodSpec(
        app=app,
        service_account=service_account,
        namespace=namespace or "default",
        extra_audiences=tuple(a for a in audiences.split(",") if a),
    )
    for value in (spec.app, spec.service_account, spec.namespace):
        if not _NAME.match(value) or len(value) > 63:
            raise ValueError(f"pod spec {text!r}: {value!r} is not a valid Kubernetes name")
    return spec


@dataclass
class ProjectedToken:
    """One `serviceAccountToken` projection the kubelet keeps fresh in a volume."""

    volume: Path
    audiences: tuple[str, ...]
    expiration_seconds: int
    issued_at: float = 0.0
    # What TokenRequest's status.expirationTimestamp said: the requested, unextended time.
    expires_at: float = 0.0

    def refresh_at(self) -> float:
        # token_manager.go requiresRefresh: older than 80% of its TTL, or than 24 h.
        ttl = self.expires_at - self.issued_at
        return self.issued_at + min(ttl * REFRESH_FRACTION, MAX_TOKEN_AGE_SECONDS)


@dataclass
class Pod:
    """A pod on our node and the projected tokens the kubelet keeps in its volumes."""

    namespace: str
    name: str
    service_account: str
    node: str
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    volume: Path = Path()
    projections: list[ProjectedToken] = field(default_factory=list)
    # metav1 deletionTimestamp (whole seconds): set by a graceful delete, the pod still exists.
    deletion_timestamp: int | None = None

    @property
    def token_file(self) -> Path:
        return self.volume / "token"


def schedule_pod(
    spec: PodSpec, pods_dir: Path, api_audiences: Sequence[str], token_ttl: int
) -> Pod:
    """A new pod for `spec` on our node, its volumes under `pods_dir` (not written yet)."""
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
    name = f"{spec.app}-{suffix}"
    base = pods_dir / spec.namespace / name
    pod = Pod(spec.namespace, name, spec.service_account, NODE_NAME, volume=base / "serviceaccount")
    # The kube-api-access volume: API audience, 3607 s as the admission plugin sets it.
    pod.projections.append(ProjectedToken(pod.volume, tuple(api_audiences), token_ttl))
    for audience in spec.extra_audiences:
        volume = base / f"{re.sub(r'[^a-z0-9.-]+', '-', audience.lower()).strip('-.')}-token"
        pod.projections.append(ProjectedToken(volume, (audience,), token_ttl))
    return pod


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `path` created with `mode` from the start (never readable by others meanwhile)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    # Exactly `mode`, whatever the umask (atomic_writer.go chmods each file it writes).
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def write_projected_volume(
    volume: Path, payload: Mapping[str, bytes], modes: Mapping[str, int] | None = None
) -> bool:
    """Publish `payload` in `volume` the way the kubelet's AtomicWriter does.

    pkg/volume/util/atomic_writer.go: the files go into a new `..<timestamp>.<random>`
    directory; the symlink `..data_tmp` -> that directory is renamed over `..data` (one atomic
    step), the user-visible names are symlinks `name` -> `..data/name`, and the previous
    timestamped directory is removed. A reader that opens `token` sees the old or the new
    file, never a mix. Returns False when the payload is unchanged (nothing written).
    """
    volume.mkdir(parents=True, exist_ok=True)
    data_link = volume / DATA_DIR
    old_dir: Path | None = None
    with contextlib.suppress(FileNotFoundError, OSError):
        old_dir = volume / os.readlink(data_link)
    if old_dir is not None and old_dir.is_dir():
        current = {
            name: (old_dir / name).read_bytes() for name in payload if (old_dir / name).exists()
        }
        if current == dict(payload) and set(os.listdir(old_dir)) == set(payload):
            return False
    stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
    new_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=volume))
    new_dir.chmod(0o755)
    for name, content in payload.items():
        write_private(new_dir / name, content, (modes or {}).get(name, 0o644))
    tmp_link = volume / DATA_DIR_TMP
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    os.symlink(new_dir.name, tmp_link)
    os.replace(tmp_link, data_link)
    for name in payload:
        visible = volume / name
        if not visible.is_symlink():
            os.symlink(f"{DATA_DIR}/{name}", visible)
    if old_dir is not None and old_dir != new_dir:
        shutil.rmtree(old_dir, ignore_errors=True)
    return True


# A TokenRequest for one projection of a pod: the token and status.expirationTimestamp.
TokenRequester = Callable[[Pod, ProjectedToken], tuple[str, float]]


class Kubelet:
    """The node agent: writes each pod's projected tokens and rewrites them when due."""

    def __init__(
        self,
        pods: Mapping[tuple[str, str], Pod],
        request_token: TokenRequester,
        ca_pem: bytes,
        counters: collections.Counter[str],
        clock: Clock,
    ) -> None:
        self.pods = pods
        self.request_token = request_token
        self.ca_pem = ca_pem
        self.counters = counters
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def write(self, pod: Pod, projection: ProjectedToken) -> None:
        """Request a fresh token for `projection` and publish it with the CA and namespace."""
        token, expires_at = self.request_token(pod, projection)
        projection.issued_at = self.clock()
        projection.expires_at = expires_at
        # Every file 0644, as in kube-api-access (the admission plugin's defaultMode): a
        # container running as any non-root UID can read its own pod's token.
        write_projected_volume(
            projection.volume,
            {
                "token": token.encode(),
                "ca.crt": self.ca_pem,
                "namespace": pod.namespace.encode(),
            },
        )
        self.counters["token_writes"] += 1

    def refresh_tokens(self, *, force: bool = False) -> int:
        """Rewrite every projected token due for refresh (all with `force`); return how many."""
        now = self.clock()
        written = 0
        for pod in list(self.pods.values()):
            for projection in pod.projections:
                if force or now >= projection.refresh_at():
                    self.write(pod, projection)
                    written += 1
        return written

    def next_refresh(self) -> float | None:
        due = [p.refresh_at() for pod in self.pods.values() for p in pod.projections]
        return min(due) if due else None

    async def _run(self) -> None:
        while True:
            self.refresh_tokens()
            due = self.next_refresh()
            delay = 1.0 if due is None else min(max(due - self.clock(), 0.01), 1.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def wake(self) -> None:
        """Look again now (the clock moved): due tokens are rewritten without waiting."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
