"""Folders a job may touch: request paths confined to the server's roots.

A job request names its data, store and run folder by paths *relative* to
the roots the server was started with (``--data-root``, ``--store-root``,
``--runs-root``). :func:`confine` turns such a path into an absolute one and
refuses, before anything is read or written, an absolute path, a ``..``
component, or a path whose symbolic links resolve outside the root.
:func:`check_links_inside` extends the check to every entry of a data
folder, so a link planted inside the data root cannot make a job read
``/etc/shadow`` as an image.
"""

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from featpipe.errors import FeatpipeError

STATE_FILE_NAME = "jobs.sqlite3"
"""The job database under ``--state-dir``."""


class PathRefused(FeatpipeError):
    """A request path that is absolute, climbs with ``..`` or leads outside its root."""


class JobFoldersError(FeatpipeError):
    """Job folders given to ``featpipe serve`` that cannot be used."""


JOB_FOLDER_OPTIONS = ("data_root", "store_root", "runs_root", "state_dir")
"""``featpipe serve``'s options naming the job folders, in :class:`JobRoots`' order."""


def job_folders_from(run_dirs, params):
    """The four job folders of ``featpipe serve``'s options, or None when none is given.

    Raises
    ------
    JobFoldersError
        When only some are given, or neither a run folder nor the job folders.
    """
    folders = tuple(params.get(name) for name in JOB_FOLDER_OPTIONS)
    if all(folder is None for folder in folders):
        if not run_dirs:
            raise JobFoldersError("give at least one RUN_DIR, or the job folders (--data-root, --store-root, "
                                  "--runs-root and --state-dir)")
        return None
    if None in folders:
        raise JobFoldersError("jobs need all four folders: --data-root, --store-root, --runs-root and --state-dir")
    return folders


@dataclass(frozen=True)
class JobRoots:
    """The folders of the job service.

    Parameters
    ----------
    data : Path
        Jobs read images only under this folder.
    stores : Path
        Extract jobs write feature stores only under this folder; run jobs read them here.
    runs : Path
        Run jobs write run folders only under this folder.
    state : Path
        The job database, the workers' logs and the run jobs' stage cache.
    """

    data: Path
    stores: Path
    runs: Path
    state: Path

    @classmethod
    def create(cls, data, stores, runs, state):
        """Roots resolved to absolute paths; the store, run and state folders are created."""
        roots = cls(*(Path(folder).expanduser().resolve() for folder in (data, stores, runs, state)))
        if not roots.data.is_dir():
            raise JobFoldersError(f"--data-root {roots.data} is not a folder")
        for folder in (roots.stores, roots.runs, roots.state):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise JobFoldersError(f"cannot create {folder}: {error.strerror or error}") from None
        return roots

    @property
    def database(self):
        """Path of the SQLite job database."""
        return self.state / STATE_FILE_NAME

    @property
    def cache(self):
        """The run jobs' stage cache (joblib.Memory) folder."""
        return self.state / "cache"

    @property
    def logs(self):
        """Folder of one log file per job (its worker's stderr)."""
        return self.state / "logs"


def confine(root, relative, what):
    """``root / relative`` as an absolute path, if it stays inside ``root``.

    Parameters
    ----------
    root : Path
        An absolute, resolved folder.
    relative : str
        The path a request gave.
    what : str
        What the path names (``"data"``, ``"store"``), for the message.

    Returns
    -------
    Path
        The path with every symbolic link resolved; it need not exist.

    Raises
    ------
    PathRefused
        For an empty or absolute path, a ``..`` component, a NUL byte, or
        a path whose links resolve outside ``root``.
    """
    if not isinstance(relative, str) or not relative.strip() or "\x00" in relative:
        raise PathRefused(f"{what} must be a non-empty path relative to its root")
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        raise PathRefused(f"{what} path {relative!r} is not valid text") from None
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or relative.startswith("~"):
        raise PathRefused(f"{what} path {relative!r} must be relative to its root, not absolute")
    if ".." in parts:
        raise PathRefused(f"{what} path {relative!r} must not contain '..'")
    try:
        resolved = (root / relative).resolve()
    except (OSError, RuntimeError) as error:  # a name too long, a link loop
        raise PathRefused(f"{what} path {relative!r} cannot be used: {getattr(error, 'strerror', None) or error}") from None
    if resolved != root and root not in resolved.parents:
        raise PathRefused(f"{what} path {relative!r} leads outside its root through a symbolic link")
    return resolved


def check_links_inside(folder, root, what, _seen=None):
    """Refuse a folder holding a symbolic link (at any depth) that resolves outside ``root``.

    Linked folders inside ``root`` are checked too, each once (so a link
    cycle ends).

    Raises
    ------
    PathRefused
        Naming the first such link, relative to ``root``.
    """
    seen = set() if _seen is None else _seen
    if not folder.is_dir() or folder.resolve() in seen:
        return
    seen.add(folder.resolve())
    for parent, folder_names, file_names in os.walk(folder, followlinks=False):
        for name in folder_names + file_names:
            entry = Path(parent) / name
            if not entry.is_symlink():
                continue
            target = entry.resolve()
            if target != root and root not in target.parents:
                raise PathRefused(f"{what} path {entry.relative_to(root)} is a symbolic link leading outside "
                                  "its root")
            if target.is_dir():
                check_links_inside(target, root, what, seen)
