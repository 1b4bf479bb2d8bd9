"""Writing stores and output files atomically: a reader opening the path sees the old store or
the new one, whole, never a part and never nothing; a failed, interrupted or killed build leaves
the old one as it was, and the next build removes what it left behind.

- JSON: written to ``.NAME.json.XXXXXXXX.tmp`` beside it, fsynced, then ``os.replace``d.
- Parquet: written to a temporary folder, fsynced, renamed to the version folder
  ``.NAME.parquet.vN``; then the link ``NAME.parquet -> .NAME.parquet.vN`` replaces the old link
  with one ``os.replace`` (a store written by an older gcov-index, a real folder, is swapped with
  the link in one ``renameat2(RENAME_EXCHANGE)`` where Linux offers it). The previous version is
  kept for readers still on it; older ones are deleted unless a reader holds them
  (:class:`~gcov_index.store.layout.StoreHandle` share-locks the version it reads).
- A build holds an exclusive lock on ``.NAME.lock`` beside the store while it runs: a second
  build of the same ``--out`` is refused with one line.
- ``--out`` is only ever replaced if it is a gcov-index store: anything else is refused, untouched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import BadInputError
from ..index.tree import VirtualTree
from ..io.access import Access
from ..io.remote import Place, is_remote, place
from . import icechunk as icechunk_store
from .kerchunk import consolidated, expand_templates, record_size, tree_to_refs, with_integrity
from .layout import (
    INTEGRITY,
    STORE_ATTR,
    current_version,
    fcntl,
    file_digest,
    folder_flags,
    pointer_bytes,
    read_pointer,
    store_format,
    version_name,
    versions_of,
)

# Modes: every file and folder gcov-index writes as an output or a store is made with 0o666
# (files) or 0o777 (folders, os.mkdir's default) and the kernel takes the umask off, or applies
# the folder's default ACL: the mode a plain open(path, "w") or mkdir gives. The umask is never
# read, so there is nothing to race with (os.umask is set-and-restore, process-wide) and no
# chmod that would widen a default ACL's mask. A temporary file gets its final mode when it is
# made: it is beside the output, holds the bytes the output will hold and is renamed to it, so
# keeping it private until then would hide nothing. tempfile.mkstemp makes 0600 files whatever
# the umask (and has no mode argument), so it is not used for outputs. The manifest cache
# (index/cache.py) is private per-user data and stays 0600.
FILE_MODE = 0o666
PUTS_IN_FLIGHT = 32  # objects of a Parquet version uploaded at once to a bucket
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _new_file(out: Path, suffix: str = ".tmp") -> Path:
    """A new empty file beside ``out`` (``.NAME.XXXXXXXX.tmp``, or ``suffix``), made with the
    mode ``open(path, "w")`` gives under the umask."""
    for _ in range(100):
        tmp = out.parent / f".{out.name}.{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(tmp, _CREATE, FILE_MODE))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(out))


@contextlib.contextmanager
def atomic_file(out: Path, suffix: str = ".tmp"):
    """Yield a temporary path beside ``out``; it replaces ``out`` only if the block succeeds,
    so a failed or interrupted write leaves any earlier ``out`` as it was. The file has the
    mode a plain ``open(out, "w")`` would give (the umask's), not ``mkstemp``'s 0600."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file(out, suffix)
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _tmp(out: Path) -> Path:
    """A temporary name beside ``out`` (``.NAME.XXXXXXXX.tmp``), which the next build of the
    same ``out`` removes if this one is killed."""
    return out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"


def _link_tmp(out: Path) -> Path:
    return out.parent / f".{out.name}.link.tmp"


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _refuse(out: Path, what: str) -> BadInputError:
    return BadInputError(f"--out {out}: not a gcov-index store ({what}); nothing was changed: "
                         "remove it or choose another --out")


# -- what --out holds ------------------------------------------------------------------------------
def _has_store_attr(attrs) -> bool:
    if isinstance(attrs, str | bytes):
        try:
            attrs = json.loads(attrs)
        except ValueError:
            return False
    return isinstance(attrs, dict) and isinstance(attrs.get(STORE_ATTR), dict)


def _is_json_store(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except (OSError, ValueError, RecursionError):
        return False
    refs = doc.get("refs") if isinstance(doc, dict) else None
    return isinstance(refs, dict) and _has_store_attr(refs.get(".zattrs"))


def _is_parquet_store(folder: Path) -> bool:
    try:
        met = json.loads((folder / ".zmetadata").read_bytes())
        return _has_store_attr(met["metadata"].get(".zattrs"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def check_out(out: Path | str, fmt: str) -> str:
    """What ``--out`` holds: "absent", "store" (a JSON store), "link" (a Parquet store's link
    to its version) or "folder" (a Parquet store written by an older gcov-index). Anything
    else is refused with one line, untouched."""
    if fmt == "icechunk":  # a folder or an s3:// prefix that only Icechunk writes
        return icechunk_store.check_out(out)
    if not os.path.lexists(out):
        return "absent"
    if out.is_symlink():
        if fmt == "parquet" and current_version(out) is not None:
            return "link"
        raise _refuse(out, f"a link to {os.readlink(out)}")
    if fmt == "json":
        if out.is_dir():
            raise _refuse(out, "a folder")
        if not out.is_file():
            raise _refuse(out, "not a regular file")
        if not _is_json_store(out):
            raise _refuse(out, f"a file without the '{STORE_ATTR}' root attribute")
        return "store"
    if not out.is_dir():
        raise _refuse(out, "a file, where a Parquet store is a folder")
    if not _is_parquet_store(out):
        raise _refuse(out, "a folder without gcov-index references")
    return "folder"


# -- the lock --------------------------------------------------------------------------------------
def _lock(out: Path) -> int | None:
    """An exclusive lock on ``.NAME.lock`` beside ``out``, or one line saying who holds it."""
    if fcntl is None:
        return None
    path = _lock_path(out)
    for _ in range(20):
        try:
            fd, writable = _open_lock(path)
        except OSError as e:
            raise BadInputError(f"--out {out}: cannot write in {out.parent} "
                                f"({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise BadInputError(f"--out {out}: another gcov-index build is writing it"
                                f"{f' (pid {holder})' if holder.isdigit() else ''}; wait for it "
                                "to end or choose another --out") from None
        if _same_file(fd, path):
            if writable:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)  # the build that held it just ended and removed it: take the new one
    raise BadInputError(f"--out {out}: its lock {path.name} keeps changing; try again")


def _open_lock(path: Path) -> tuple[int, bool]:
    """The lock file, made with the umask's mode (0o666 less the umask, as ``open`` gives:
    under umask 002 a group sharing the folder can take it). One that a killed build of
    another user left, which we may not write, is opened read-only: ``flock`` needs no write
    access, only the holder's pid is not recorded. Returns the descriptor and whether it
    is writable."""
    flags = getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | flags, FILE_MODE), True
    except PermissionError:
        if not os.path.isfile(path):
            raise
        return os.open(path, os.O_RDONLY | flags), False


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)


def _unlock(out: Path, fd: int | None) -> None:
    if fd is None:
        return
    path = _lock_path(out)
    with contextlib.suppress(OSError):
        if _same_file(fd, path):
            os.unlink(path)  # while still held: a build waiting on it retries on the new one
    os.close(fd)


# -- leftovers -------------------------------------------------------------------------------------
def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _clean(out: Path, fmt: str) -> None:
    """Remove what killed builds of ``out`` left: temporary files and folders, the link being
    made, and old Parquet versions that no reader holds (the current one and the one before it
    are kept)."""
    name = re.escape(out.name)
    pattern = re.compile(rf"\.{name}\.[a-z0-9_]{{8}}\.tmp")
    for entry in os.scandir(out.parent):
        if pattern.fullmatch(entry.name) or entry.name == _link_tmp(out).name:
            _remove(Path(entry.path))
    if fmt == "parquet":
        _prune(out)


def _recover(out: Path, fmt: str) -> None:
    """Put a store back at ``out`` if a build of an older gcov-index (or a kill between two
    renames) left none there: its last complete version, or its ``.NAME.old`` folder. Called
    once :func:`check_out` has found ``out`` absent or a gcov-index store; ``.NAME.old`` is
    only touched if it is a gcov-index Parquet store too."""
    if fmt != "parquet":
        return
    old = out.parent / f".{out.name}.old"  # what gcov-index <= 0.x swapped out
    ours = not old.is_symlink() and old.is_dir() and _is_parquet_store(old)
    if not os.path.lexists(out):
        versions = versions_of(out)
        if versions:
            _point(out, versions[max(versions)])
        elif ours:
            os.rename(old, out)
            return
    if ours and os.path.lexists(out):
        _remove(old)


def _prune(out: Path) -> None:
    current = current_version(out)
    versions = versions_of(out)
    keep = set()
    if current is not None:
        keep.add(current)
        keep.add(max((n for n in versions if n < current), default=-1))
    for n, path in versions.items():
        if n not in keep:
            _remove_version(out, path)


def _remove_version(out: Path, path: Path) -> None:
    """Delete an old version folder, unless a reader holds it (then the next build tries).
    Where folders cannot be locked at all (not POSIX), readers hold none: it is deleted."""
    flags = folder_flags()
    if not flags:
        trash = _tmp(out)
        with contextlib.suppress(OSError):
            os.rename(path, trash)
            shutil.rmtree(trash, ignore_errors=True)
        return
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a reader holds it, or no lock here (NFS: EBADF): keep it
                return
        trash = _tmp(out)
        os.rename(path, trash)  # gone from the versions at once; a kill leaves a .tmp
        shutil.rmtree(trash, ignore_errors=True)
    finally:
        os.close(fd)


# -- renames ---------------------------------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or the file system does not offer it."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):  # no C library by that name (Windows: None)
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(folder: Path) -> None:
    """Make a folder's entries durable, where a folder can be opened (POSIX)."""
    flags = folder_flags()
    if not flags:
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _point(out: Path, version: Path) -> None:
    """Make ``out`` the link to ``version`` in one rename."""
    link = _link_tmp(out)
    _remove(link)
    os.symlink(version.name, link)
    os.replace(link, out)
    _fsync_dir(out.parent)


# -- writing ---------------------------------------------------------------------------------------
class Claim:
    """``--out`` held by one build: locked, checked to be absent or a gcov-index store, its
    leftovers removed. :meth:`write` replaces the store in one step."""

    def __init__(self, out: Path, fmt: str):
        self.out = out
        self.fmt = fmt

    def write(self, tree: VirtualTree, progress: bool = False) -> Path:
        """``progress``: a bar on stderr over the references written (Parquet)."""
        out = self.out
        kind = check_out(out, self.fmt)  # again: the user may have put something there meanwhile
        refs = with_integrity(tree_to_refs(tree))
        try:
            if self.fmt == "json":
                _write_json(out, refs)
            else:
                _write_parquet(out, refs, record_size(tree), legacy=kind == "folder",
                               progress=progress)
        except OSError as e:
            raise BadInputError(f"--out {out}: cannot write ({e.strerror or e})") from None
        return out


class IcechunkClaim:
    """``--out NAME.icechunk`` held by one build: :meth:`write` commits the tree as one
    snapshot on ``main`` (:func:`gcov_index.store.icechunk.write_icechunk`)."""

    fmt = "icechunk"

    def __init__(self, out: str | Path, access: Access | None):
        self.out = out
        self.access = access

    def write(self, tree: VirtualTree, progress: bool = False) -> str | Path:
        icechunk_store.write_icechunk(tree, self.out, self.access or Access.from_env())
        return self.out


@contextlib.contextmanager
def _claim_icechunk(out: str | Path, access: Access | None) -> Iterator[IcechunkClaim]:
    """A local repository is locked as the other formats are (``.NAME.icechunk.lock``; Icechunk
    says its local file system storage is not safe for concurrent commits); on S3, Icechunk's
    commit is a conditional write: a build whose branch moved meanwhile fails in one line."""
    icechunk_store.check_out(out, access)  # what is not a repository is refused untouched
    if icechunk_store.is_remote(out):
        yield IcechunkClaim(str(out), access)
        return
    path = Path(out).expanduser()
    fd = _locked_parent(path)
    try:
        icechunk_store.check_out(path, access)
        yield IcechunkClaim(path, access)
    finally:
        _unlock(path, fd)


def _locked_parent(out: Path) -> int | None:
    """``out``'s folder made if missing (one line if it cannot be), then ``out`` locked."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInputError(f"--out {out}: cannot create {out.parent} ({e.strerror})") from None
    return _lock(out)


@contextlib.contextmanager
def claim(out: str | Path, access: Access | None = None
          ) -> Iterator[Claim | RemoteClaim | IcechunkClaim]:
    """Hold ``out`` for one build (see :class:`Claim`); a second build of it is refused.
    An ``s3://`` JSON or Parquet ``out`` is a store in a bucket (:class:`RemoteClaim`); a
    ``NAME.icechunk`` one an Icechunk repository, local or on S3 (:class:`IcechunkClaim`),
    ``access`` reaching an ``s3://`` one and naming the virtual chunk containers."""
    if icechunk_store.is_icechunk(out):
        with _claim_icechunk(out, access) as c:
            yield c
        return
    if is_remote(str(out)):
        yield remote_claim(str(out))
        return
    out = Path(out)
    fmt = store_format(out)
    if out.suffix.lower() not in (".json", ".parquet"):
        raise BadInputError(f"--out {out}: one version of a Parquet store, which is never "
                            "written again; give the store's name, NAME.parquet")
    fd = _locked_parent(out)
    try:
        try:
            check_out(out, fmt)  # first: what is not ours is refused before anything is touched
            _recover(out, fmt)
            check_out(out, fmt)  # again: what recovery put back
            _clean(out, fmt)
        except OSError as e:
            raise BadInputError(f"--out {out}: cannot write ({e.strerror or e})") from None
        yield Claim(out, fmt)
    finally:
        _unlock(out, fd)


def write_store(tree: VirtualTree, out: str | Path, access: Access | None = None) -> Path:
    """Write the tree to ``out`` (.json, .parquet or .icechunk) in one step; an existing store
    is replaced only once the new one is complete (an Icechunk repository gets a new commit),
    and anything else at ``out`` is refused."""
    with claim(out, access) as c:
        return c.write(tree)


def _write_json(out: Path, refs: dict) -> None:
    tmp = _tmp(out)
    try:
        with open(tmp, "x") as f:
            json.dump(consolidated(refs), f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(out.parent)


class _Counted(dict):
    """References that move a progress bar as kerchunk's ``refs_to_dataframe`` reads each one
    (it has no callback of its own); the bar moves every ``step`` references."""

    def __init__(self, refs: dict, bar, step: int = 10_000):
        super().__init__(refs)
        self.bar, self.step, self.n = bar, step, 0

    def __getitem__(self, key):
        self.n += 1
        if self.n % self.step == 0:
            self.bar.update(self.step)
        return super().__getitem__(key)


def _write_parquet(out: Path, refs: dict, size: int, *, legacy: bool,
                   progress: bool = False) -> None:
    from kerchunk.df import refs_to_dataframe  # pandas and fastparquet: Parquet stores only

    n = max([*versions_of(out), current_version(out) or 0]) + 1
    old = out.parent / version_name(out, n)  # where a legacy folder goes (the previous version)
    n += legacy
    version = out.parent / version_name(out, n)
    tmp = _tmp(out)
    try:
        refs = expand_templates(refs)
        if progress:
            from tqdm import tqdm

            with tqdm(total=len(refs), desc="write", unit="ref", unit_scale=True,
                      file=sys.stderr) as bar:
                refs_to_dataframe(_Counted(refs, bar), str(tmp), record_size=size)
                bar.update(len(refs) - bar.n)
        else:
            refs_to_dataframe(refs, str(tmp), record_size=size)
        _record_files(tmp)
        _fsync_tree(tmp)
        os.rename(tmp, version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(out.parent)
    if not legacy:
        _point(out, version)
    else:  # an older gcov-index's real folder: swap it with the link in one step if we can
        link = _link_tmp(out)
        _remove(link)
        os.symlink(version.name, link)
        if _exchange(link, out):
            os.rename(link, old)  # the link's name now holds the old folder
        else:  # two renames: for an instant the path is empty (the README says so)
            os.rename(out, old)
            try:
                os.replace(link, out)
            except BaseException:
                if not os.path.lexists(out):
                    os.rename(old, out)
                raise
        _fsync_dir(out.parent)
    _prune(out)


def _record_files(folder: Path) -> None:
    """Add the size and digest of every refs file to the integrity record in ``.zmetadata``."""
    zmeta = folder / ".zmetadata"
    met = json.loads(zmeta.read_bytes())
    gi = (met["metadata"].get(".zattrs") or {}).get(STORE_ATTR)
    if not isinstance(gi, dict) or INTEGRITY not in gi:
        return
    gi[INTEGRITY]["files"] = {p.relative_to(folder).as_posix(): file_digest(p)
                              for p in sorted(folder.rglob("refs.*.parq"))}
    zmeta.write_text(json.dumps(met))


# -- a store in a bucket ---------------------------------------------------------------------------
class RemoteClaim:
    """``--out s3://BUCKET/KEY.json|.parquet``: a store written to the team's bucket (the
    standard AWS credentials, ``io/remote.py``), atomic at the key a reader opens.

    - JSON: one PUT of the whole store (S3 replaces an object in one step).
    - Parquet: the version's objects under ``.NAME.parquet.vN/`` beside the key first, then
      the small pointer object at the key (``layout.pointer_bytes``) last; then versions older
      than the previous one are deleted. A reader resolves the pointer once and reads that
      version: the old store or the new one, never a mix.
    - Only a gcov-index store is ever replaced: an object that is not one, or objects under
      ``KEY/``, are refused in one line. The pointer (and a JSON store) is replaced only if it
      is still what this build found (a conditional PUT, where the S3 API offers it): a
      concurrent build of the same key is refused rather than lost.
    """

    def __init__(self, where: Place, fmt: str):
        self.where = where
        self.fmt = fmt
        self.out = where.url
        self.found: dict | None = None  # the head of what was at the key

    def _refuse(self, what: str) -> BadInputError:
        return BadInputError(f"--out {self.out}: not a gcov-index store ({what}); nothing was "
                             "changed: remove it or choose another --out")

    def check(self) -> None:
        """Refuse a key that holds something other than a gcov-index store."""
        w = self.where
        raw = w.get(w.key)
        if raw is None:
            self.found = None
        elif self.fmt == "json":
            try:
                doc = json.loads(raw)
            except (ValueError, RecursionError):
                doc = None
            refs = doc.get("refs") if isinstance(doc, dict) else None
            if not (isinstance(refs, dict) and _has_store_attr(refs.get(".zattrs"))):
                raise self._refuse(f"an object without the '{STORE_ATTR}' root attribute")
            self.found = w.head(w.key)
        else:
            if read_pointer(raw) is None:
                raise self._refuse("an object that is not a Parquet store's pointer")
            self.found = w.head(w.key)
        inside = w.first_under(w.key.rstrip("/") + "/")
        if inside is not None:
            raise self._refuse(f"a prefix holding objects, e.g. {inside}")

    def _mode(self):
        etag = (self.found or {}).get("e_tag")
        if self.found is None:
            return "create"
        return {"e_tag": etag} if etag else "overwrite"

    def _put_last(self, data: bytes) -> None:
        w = self.where
        try:
            w.put(w.key, data, mode=self._mode())
        except Exception as e:
            if type(e).__name__ in ("AlreadyExistsError", "PreconditionError"):
                raise BadInputError(f"--out {self.out}: another build wrote it meanwhile; "
                                    "nothing of this build was published") from None
            raise

    def write(self, tree: VirtualTree, progress: bool = False) -> str:  # no bar (yet)
        self.check()  # again: someone may have put something there meanwhile
        refs = with_integrity(tree_to_refs(tree))
        if self.fmt == "json":
            data = json.dumps(consolidated(refs), separators=(",", ":")).encode()
            self._put_last(data)
            return self.out
        self._write_parquet(refs, record_size(tree))
        return self.out

    def _versions(self) -> dict[int, str]:
        """The version prefixes beside the key (``.NAME.parquet.vN``), by number."""
        w = self.where
        name = w.key.rsplit("/", 1)[-1]
        parent = w.sibling("")
        pattern = re.compile(rf"{re.escape(parent)}\.{re.escape(name)}\.v(\d+)")
        return {int(m.group(1)): f for f in w.folders(parent) if (m := pattern.fullmatch(f))}

    def _write_parquet(self, refs: dict, size: int) -> None:
        from kerchunk.df import refs_to_dataframe  # pandas and fastparquet: Parquet stores only

        w = self.where
        name = w.key.rsplit("/", 1)[-1]
        current = read_pointer(w.get(w.key))
        versions = self._versions()
        n = max(versions, default=0) + 1
        version = f".{name}.v{n}"
        prefix = w.sibling(version)
        if w.first_under(prefix + "/") is not None:  # another build took this number
            raise BadInputError(f"--out {self.out}: another build is writing it; nothing of "
                                "this build was published")
        with tempfile.TemporaryDirectory(prefix=".gcov-index-") as tmp:
            folder = Path(tmp) / "v"
            refs_to_dataframe(expand_templates(refs), str(folder), record_size=size)
            _record_files(folder)
            files = sorted(p for p in folder.rglob("*") if p.is_file())
            # every object of the version first, at once (one refs file per array: ~545 PUTs,
            # 10-30 s one after another at S3's latency), .zmetadata last: a version is whole
            # once it has its .zmetadata (the pointer is written only after it)
            last = [p for p in files if p.name == ".zmetadata"]

            def put(p: Path) -> None:
                w.put(f"{prefix}/{p.relative_to(folder).as_posix()}", p.read_bytes())

            with ThreadPoolExecutor(PUTS_IN_FLIGHT) as pool:
                list(pool.map(put, [p for p in files if p.name != ".zmetadata"]))
            for p in last:
                put(p)
        self._put_last(pointer_bytes(version))
        keep = {n}
        if current is not None:
            keep.add(int(current.rsplit(".v", 1)[1]))
        for m, old in self._versions().items():
            if m not in keep and m < n:
                w.delete(w.list(old + "/"))


def remote_claim(out: str) -> RemoteClaim:
    if not out.lower().startswith("s3://"):
        raise BadInputError(f"--out {out}: a store is written to a path or to s3://BUCKET/KEY "
                            "(https is read only)")
    fmt = store_format(out)
    if re.search(r"\.v\d+$", out):
        raise BadInputError(f"--out {out}: one version of a Parquet store, which is never "
                            "written again; give the store's name, NAME.parquet")
    c = RemoteClaim(place(out), fmt)
    c.check()  # first: what is not ours is refused before anything is scanned
    return c
