"""The FTP listener's view of its root directory: read-only and confined.

Every client logs in as the same account, whose base path is the resolved
root directory. The path layer follows symbolic links only while they stay
inside that root: a link that leads elsewhere reads as missing, so a link
placed in ``-ftp-dir`` cannot expose the rest of the file system.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioftp

# Text of the 331 reply to USER. Every user name and password is accepted.
LOGIN_MESSAGE = "password required"


class AnyUserManager(aioftp.AbstractUserManager):
    """Accept every user name and password as one shared read-only account.

    One shared :class:`aioftp.User` matters for memory: aioftp keeps a speed
    throttle per distinct ``User`` object for the server's lifetime, so a new
    object per login would grow that table with every connection.
    """

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.account = aioftp.User(
            base_path=root,
            home_path="/",
            permissions=[aioftp.Permission("/", readable=True, writable=False)],
        )

    async def get_user(self, login: str) -> tuple[aioftp.AbstractUserManager.GetUserResponse, aioftp.User, str]:
        return aioftp.AbstractUserManager.GetUserResponse.PASSWORD_REQUIRED, self.account, LOGIN_MESSAGE

    async def authenticate(self, user: aioftp.User, password: str) -> bool:
        return True

    async def notify_logout(self, user: aioftp.User) -> None:
        return None


class ConfinedPathIO(aioftp.PathIO):
    """Local file access that treats anything resolving outside the root as missing.

    The calls block the event loop briefly; they are meant for a local
    directory, as ``-ftp-dir`` is.
    """

    def _root(self) -> Path:
        return Path(self.connection.user.base_path) if self.connection is not None else Path("/")

    def _inside(self, path: Path) -> bool:
        try:
            resolved = Path(os.path.realpath(path))
        except (OSError, ValueError):
            return False
        return resolved.is_relative_to(self._root())

    def _require_inside(self, path: Path) -> None:
        if not self._inside(path):
            raise aioftp.PathIOError(f"{path} is outside the FTP root", reason=None)

    async def exists(self, path: Path) -> bool:
        return self._inside(path) and await super().exists(path)

    async def is_dir(self, path: Path) -> bool:
        return self._inside(path) and await super().is_dir(path)

    async def is_file(self, path: Path) -> bool:
        return self._inside(path) and await super().is_file(path)

    async def stat(self, path: Path) -> os.stat_result:
        self._require_inside(path)
        return await super().stat(path)

    async def _open(self, path: Path, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BytesIO:
        if mode != "rb":
            raise aioftp.PathIOError(f"{path}: the FTP root is read-only", reason=None)
        self._require_inside(path)
        return await super()._open(path, "rb", *args, **kwargs)

    def list(self, path: Path) -> AsyncIterator[Path]:
        return self._list_inside(path)

    async def _list_inside(self, path: Path) -> AsyncIterator[Path]:
        self._require_inside(path)
        async for entry in super().list(path):
            if self._inside(entry):
                yield entry

    async def mkdir(self, path: Path, *, parents: bool = False, exist_ok: bool = False) -> None:
        raise aioftp.PathIOError(f"{path}: the FTP root is read-only", reason=None)

    async def rmdir(self, path: Path) -> None:
        raise aioftp.PathIOError(f"{path}: the FTP root is read-only", reason=None)

    async def unlink(self, path: Path) -> None:
        raise aioftp.PathIOError(f"{path}: the FTP root is read-only", reason=None)

    async def rename(self, source: Path, destination: Path) -> Path:
        raise aioftp.PathIOError(f"{source}: the FTP root is read-only", reason=None)
