"""get_file: a file from a URL (or a file:// URL, or a local path) into a cache folder, checked
against its hash and optionally extracted, as keras.utils.get_file. Archives are extracted
safely: members with absolute paths, '..' parts, links or device files are refused; nothing is
ever executed."""

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import uuid
import zipfile
from urllib.request import urlopen

from . import io_utils
from .progbar import Progbar

_CHUNK = 1 << 20


def _hash_file(path, algorithm: str) -> str:
    h = hashlib.sha256() if algorithm == "sha256" else hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _algorithm(algorithm: str, file_hash: str) -> str:
    if algorithm not in ("auto", "sha256", "md5"):
        raise ValueError(f"hash_algorithm must be 'auto', 'sha256' or 'md5', got {algorithm!r}")
    if algorithm == "auto":
        return "sha256" if len(file_hash) == 64 else "md5"
    return algorithm


def validate_file(fpath, file_hash: str, algorithm: str = "auto") -> bool:
    """True when the file's md5 or sha256 ('auto': sha256 for a 64-digit hash) is
    `file_hash`."""
    return _hash_file(fpath, _algorithm(algorithm, file_hash)) == str(file_hash).lower()


def _safe_member(name: str, dest: str) -> str:
    """The path a member `name` extracts to, refusing absolute paths and '..'."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or os.path.isabs(name) or ".." in parts or \
            (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"Refusing to extract archive member {name!r}: it is an absolute path "
                         "or leaves the extraction folder")
    target = os.path.realpath(os.path.join(dest, name))
    if os.path.commonpath([target, os.path.realpath(dest)]) != os.path.realpath(dest):
        raise ValueError(f"Refusing to extract archive member {name!r}: it leaves the "
                         "extraction folder")
    return target


def _extract_tar(path, dest) -> None:
    with tarfile.open(path) as tf:
        members = tf.getmembers()
        for m in members:
            _safe_member(m.name, dest)
            if not (m.isfile() or m.isdir()):
                raise ValueError(f"Refusing to extract archive member {m.name!r}: only plain "
                                 "files and folders are extracted (no links or devices)")
        for m in members:
            target = _safe_member(m.name, dest)
            if m.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            src = tf.extractfile(m)
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)


def _extract_zip(path, dest) -> None:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        for info in infos:
            _safe_member(info.filename, dest)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValueError(f"Refusing to extract archive member {info.filename!r}: it is "
                                 "a symbolic link")
        for info in infos:
            target = _safe_member(info.filename, dest)
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)


def extract_archive(file_path, path=".", archive_format="auto") -> bool:
    """Extracts a tar (plain, gz, bz2, xz) or zip archive into `path`, safely (see the module).

    Args:
        archive_format: 'auto' (both), 'tar', 'zip', or a list of them; None extracts nothing.

    Returns:
        True when the file was an archive of an accepted format and was extracted.

    Raises:
        ValueError: a member would land outside `path`, or is a link or a device.
    """
    if archive_format is None:
        return False
    formats = ["tar", "zip"] if archive_format == "auto" else (
        [archive_format] if isinstance(archive_format, str) else list(archive_format))
    file_path, path = os.fspath(file_path), os.fspath(path)
    for fmt in formats:
        is_it = tarfile.is_tarfile(file_path) if fmt == "tar" else zipfile.is_zipfile(file_path)
        if not is_it:
            continue
        parent = os.path.dirname(os.path.abspath(path)) or "."
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".extract-", dir=parent)
        try:
            (_extract_tar if fmt == "tar" else _extract_zip)(file_path, tmp)
            if os.path.isdir(path):
                shutil.rmtree(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True
    return False


def _fetch(origin: str, dest: str) -> None:
    """Copies `origin` (a URL, file:// too, or a local path) to `dest`, with a Progbar."""
    if "://" not in origin:
        origin = "file://" + urllib.parse.quote(os.path.abspath(os.path.expanduser(origin)))
    with urlopen(origin, timeout=60) as response, open(dest, "xb") as out:
        length = response.headers.get("Content-Length") if response.headers else None
        total = int(length) if length and length.isdigit() else None
        bar, done = Progbar(total), 0
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            out.write(chunk)
            done += len(chunk)
            if total is None or done < total:
                bar.update(done)
        bar.update(done, finalize=True)


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None,
             cache_subdir="datasets", hash_algorithm="auto", extract=False,
             archive_format="auto", cache_dir=None, force_download=False):
    """Downloads a file into a cache folder unless it is there already, as keras.utils.get_file.

    The file lands in `cache_dir/cache_subdir/fname` (cache_dir is ~/.pynn). When it exists
    and matches `file_hash`, it is not fetched again; a fetched file that does not match is
    deleted and a ValueError raised. With `extract`, the archive is unpacked into a folder
    beside it, whose path is returned.

    Args:
        fname: the file's name in the cache (no folders); the origin's last path part when None.
        origin: the URL (http(s)://, file://) or a local path.
        untar: deprecated, as extract=True with archive_format='tar'.
        md5_hash: deprecated, as file_hash with hash_algorithm='md5'.
        file_hash: the expected md5 or sha256 hex digest, or None for no check.
        cache_subdir: the folder under cache_dir ('datasets').
        hash_algorithm: 'auto' (sha256 for 64 hex digits, else md5), 'sha256' or 'md5'.
        extract: unpack a tar or zip archive.
        archive_format: 'auto', 'tar', 'zip' or None.
        cache_dir: the cache's root (default ~/.pynn).
        force_download: fetch again even when the file is there.

    Returns:
        The file's path, or the extraction folder's.

    Example:
        >>> path = pynn.utils.get_file(origin="file:///data/flowers.tgz", extract=True)
    """
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if cache_dir is None:
        cache_dir = os.path.join(os.path.expanduser("~"), ".pynn")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    if file_hash is not None:
        hash_algorithm = _algorithm(hash_algorithm, str(file_hash))
    datadir = os.path.join(os.path.expanduser(os.fspath(cache_dir)), cache_subdir)
    os.makedirs(datadir, exist_ok=True)
    provided = fname
    fname = os.fspath(fname) if fname is not None else None
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(f"Can't parse the file name from the origin provided: '{origin}'."
                             "Please specify the `fname` argument.")
    elif os.sep in fname or "/" in fname or fname in (".", ".."):
        raise ValueError("Paths are no longer accepted as the `fname` argument. To specify the "
                         f"file's parent directory, use the `cache_dir` argument. Received: "
                         f"fname={fname}")
    if extract or untar:
        if provided and "." in fname:
            target = os.path.join(datadir, fname)
            fname = fname[:fname.find(".")]
            extraction_dir = os.path.join(datadir, f"{fname}_extracted")
        else:
            extraction_dir = os.path.join(datadir, fname)
            target = os.path.join(datadir, f"{fname}_archive")
    else:
        target = os.path.join(datadir, fname)
    download = force_download or not os.path.exists(target)
    if not download and file_hash is not None and \
            not validate_file(target, file_hash, hash_algorithm):
        io_utils.print_msg("A local file was found, but it seems to be incomplete or outdated "
                           f"because the {hash_algorithm} file hash does not match the original "
                           f"value of {file_hash} so we will re-download the data.")
        download = True
    if download:
        io_utils.print_msg(f"Downloading data from {origin}")
        tmp = os.path.join(datadir, f".{os.path.basename(target)}.{uuid.uuid4().hex}.part")
        try:
            _fetch(origin, tmp)
            if file_hash is not None and not validate_file(tmp, file_hash, hash_algorithm):
                raise ValueError(f"Incomplete or corrupted file detected. The {hash_algorithm} "
                                 f"file hash does not match the provided value of {file_hash}.")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    if extract or untar:
        if download or not os.path.isdir(extraction_dir):
            if not extract_archive(target, extraction_dir, "tar" if untar else archive_format):
                raise ValueError(f"Could not extract {target!r}: it is not a "
                                 f"{'tar' if untar else archive_format} archive")
        return extraction_dir
    return target
