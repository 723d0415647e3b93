"""A real Mosquitto broker on loopback for tests, benchmarks and the soak script."""

from __future__ import annotations

import _socket
import os
from pathlib import Path
import shutil
import subprocess
import tempfile
import time
from types import TracebackType
from typing import Self


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    # The C-level type, for the same reason as in MosquittoBroker._accepts_connections.
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
    finally:
        sock.close()


def mosquitto_binary() -> str:
    """Path of the mosquitto executable (scripts/setup installs it)."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if found is None:
        raise RuntimeError("mosquitto is not installed: run scripts/setup")
    return found


class MosquittoBroker:
    """A Mosquitto process on 127.0.0.1 that can be stopped and started on the same port.

    With ``users`` it requires a username and password; without, it allows anonymous
    clients. Persistence is off: a restart loses queued messages for offline clients,
    exactly as a broker reboot without a persistence file would.
    """

    host = "127.0.0.1"

    def __init__(self, users: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self._users = users or {}
        self._dir = Path(tempfile.mkdtemp(prefix="smartpbx-mosquitto-"))
        # Mosquitto started as root drops to `nobody`, which must read the password file.
        self._dir.chmod(0o755)
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "max_queued_messages 100000",
            # Without it every round trip stalls ~45 ms on Nagle plus delayed ACK.
            "set_tcp_nodelay true",
        ]
        if self._users:
            password_file = self._dir / "passwords"
            password_file.write_text("".join(f"{u}:{p}\n" for u, p in self._users.items()))
            subprocess.run(
                ["mosquitto_passwd", "-U", str(password_file)], check=True, capture_output=True
            )
            password_file.chmod(0o644)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        (self._dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.running:
            return
        self._process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self._dir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err}")
            if self._accepts_connections():
                return
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def _accepts_connections(self) -> bool:
        # The C-level socket type: pytest-socket (which phcc enables) guards socket.socket,
        # and a session-scoped broker starts before any test has enabled sockets.
        probe = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            probe.settimeout(0.2)
            return probe.connect_ex((self.host, self.port)) == 0
        finally:
            probe.close()

    def stop(self) -> None:
        """Stop the broker (connected clients see the connection drop)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
