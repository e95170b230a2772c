"""ProjectedTokenFile edge cases: kubelet `..data` swaps, identity checks, bad files, fallbacks."""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path

import pytest

from adapters.projected_token_file import ProjectedTokenFile
from domain.errors import TokenUnavailable

NOW = 1_800_000_000.0


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _segment(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def make_token(exp: float | None = NOW + 3600, name: str = "be-sa") -> str:
    claims: dict[str, object] = {
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": f"system:serviceaccount:default:{name}",
    }
    if exp is not None:
        claims["exp"] = exp
    return f"{_segment({'alg': 'RS256', 'kid': 'k'})}.{_segment(claims)}.c2lnbmF0dXJl"


class Volume:
    """Writes a projected volume the way the kubelet's atomic writer does: files are symlinks
    into `..data`, which points at a timestamped directory, swapped by renaming `..data_tmp`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        root.mkdir(parents=True, exist_ok=True)

    @property
    def token_path(self) -> Path:
        return self.root / "token"

    def write(self, content: bytes | str) -> None:
        self.generation += 1
        data_dir = self.root / f"..2026_01_01_00_00_{self.generation:02d}.{os.getpid()}"
        data_dir.mkdir()
        raw = content.encode() if isinstance(content, str) else content
        (data_dir / "token").write_bytes(raw)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(data_dir.name)
        os.rename(tmp, self.root / "..data")
        if not self.token_path.is_symlink():
            self.token_path.symlink_to("..data/token")


@pytest.fixture
def volume(tmp_path: Path) -> Volume:
    return Volume(tmp_path / "serviceaccount")


def test_reads_the_token_through_the_symlinks(volume: Volume) -> None:
    token = make_token()
    volume.write(token)
    assert ProjectedTokenFile(volume.token_path, FakeClock()).current_token() == token


def test_a_trailing_newline_is_not_part_of_the_token(volume: Volume) -> None:
    token = make_token()
    volume.write(token + "\n")
    assert ProjectedTokenFile(volume.token_path, FakeClock()).current_token() == token


def test_rotation_by_data_swap_is_seen_at_once(volume: Volume) -> None:
    clock = FakeClock()
    source = ProjectedTokenFile(volume.token_path, clock)
    first, second = make_token(name="first"), make_token(name="second")
    volume.write(first)
    assert source.current_token() == first
    volume.write(second)
    # No time has passed: the resolved path changed, so the file is read again.
    assert source.current_token() == second


def test_an_in_place_rewrite_with_the_same_identity_is_seen_within_the_recheck_bound(
    volume: Volume,
) -> None:
    clock = FakeClock()
    source = ProjectedTokenFile(volume.token_path, clock)
    first, second = make_token(name="aaaa"), make_token(name="bbbb")
    assert len(first) == len(second)
    volume.write(first)
    assert source.current_token() == first
    target = volume.token_path.resolve()
    stat = target.stat()
    target.write_text(second)
    # Same path, size and mtime: indistinguishable until the periodic re-read.
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert source.current_token() == first
    clock.now += 10
    assert source.current_token() == second


def test_the_file_is_not_read_again_while_its_identity_is_unchanged(volume: Volume) -> None:
    clock = FakeClock()
    token = make_token()
    volume.write(token)
    source = ProjectedTokenFile(volume.token_path, clock)
    assert source.current_token() == token
    target = volume.token_path.resolve()
    stat = target.stat()
    target.write_text("x" * len(token))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    clock.now += 9
    # Garbage of the same size with the old mtime is not read yet: the identity is unchanged.
    assert source.current_token() == token


def test_never_readable_raises_token_unavailable_naming_path_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "token"
    with pytest.raises(TokenUnavailable) as caught:
        ProjectedTokenFile(path, FakeClock()).current_token()
    assert str(path) in caught.value.detail
    assert "No such file or directory" in caught.value.detail


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"not-a-jwt", "three base64url segments"),
        (b"a.b", "three base64url segments"),
        (b"a.b.c.d", "three base64url segments"),
        (b"a+b.c/d.e=f", "three base64url segments"),
        (b"\xff\xfe", "not ASCII"),
        (b"abc.%%%.def", "three base64url segments"),
        (b"e30.bm90LWpzb24.c2ln", "header is not valid"),
        (b"eyJhbGciOiJSUzI1NiJ9.bm90LWpzb24.c2ln", "claims: not valid JSON"),
        (b"eyJhbGciOiJSUzI1NiJ9.e30.", "no signature"),
    ],
)
def test_garbled_files_are_refused(volume: Volume, content: bytes, reason: str) -> None:
    volume.write(content)
    with pytest.raises(TokenUnavailable) as caught:
        ProjectedTokenFile(volume.token_path, FakeClock()).current_token()
    assert reason in caught.value.detail
    assert str(volume.token_path) in caught.value.detail


def test_a_token_over_16_kib_is_refused(volume: Volume) -> None:
    token = make_token()
    header, payload, _ = token.split(".")
    volume.write(f"{header}.{payload}.{'A' * (16 * 1024)}")
    with pytest.raises(TokenUnavailable, match="larger than 16384 bytes"):
        ProjectedTokenFile(volume.token_path, FakeClock()).current_token()


@pytest.mark.parametrize("breakage", ["missing", "empty", "garbled", "directory"])
def test_the_last_good_token_is_kept_while_unexpired(
    volume: Volume, breakage: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    token = make_token(exp=NOW + 600)
    volume.write(token)
    source = ProjectedTokenFile(volume.token_path, clock)
    assert source.current_token() == token
    if breakage == "missing":
        (volume.root / "..data").unlink()
    elif breakage == "empty":
        volume.write("")
    elif breakage == "garbled":
        volume.write("garbage")
    else:
        # A directory where the file should be: open() fails with EISDIR, even for root.
        volume.write("placeholder")
        target = volume.token_path.resolve()
        target.unlink()
        target.mkdir()
    with caplog.at_level(logging.WARNING, logger="adapters.projected_token_file"):
        assert source.current_token() == token
        clock.now = NOW + 599
        assert source.current_token() == token
    assert "keeping the last good token" in caplog.text
    assert token not in caplog.text
    clock.now = NOW + 600
    with pytest.raises(TokenUnavailable) as caught:
        source.current_token()
    assert str(volume.token_path) in caught.value.detail


def test_recovery_after_a_failure(volume: Volume) -> None:
    clock = FakeClock()
    source = ProjectedTokenFile(volume.token_path, clock)
    volume.write("")
    with pytest.raises(TokenUnavailable):
        source.current_token()
    token = make_token()
    volume.write(token)
    assert source.current_token() == token


def test_a_token_without_exp_is_kept_indefinitely(volume: Volume) -> None:
    clock = FakeClock()
    token = make_token(exp=None)
    volume.write(token)
    source = ProjectedTokenFile(volume.token_path, clock)
    assert source.current_token() == token
    volume.write("")
    clock.now += 10 * 365 * 86400
    assert source.current_token() == token


def test_no_file_descriptor_is_left_open(volume: Volume) -> None:
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc")
    token = make_token()
    volume.write(token)
    source = ProjectedTokenFile(volume.token_path, FakeClock())
    source.current_token()
    target = str(volume.token_path.resolve())
    open_targets = set()
    for entry in fd_dir.iterdir():
        try:
            open_targets.add(os.readlink(entry))
        except OSError:
            continue
    assert target not in open_targets
