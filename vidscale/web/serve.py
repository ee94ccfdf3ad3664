"""`vidscale serve`: run the page with uvicorn, on the loopback address unless told otherwise."""

from __future__ import annotations

import ipaddress
import socket
import threading
import webbrowser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from vidscale.errors import UsageError
from vidscale.web.app import create_app
from vidscale.web.guard import LOOPBACK_NAMES
from vidscale.web.jobs import RELEASE_AFTER_S
from vidscale.web.uploads import Limits

GRACEFUL_S = 2  # open event streams do not hold a stop up for longer


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_warning(host: str, allow_remote: bool) -> str | None:
    """None for a loopback address; a warning with --allow-remote; else a usage error."""
    if is_loopback(host):
        return None
    if not allow_remote:
        raise UsageError(f"--host {host} would let other machines reach the page and your files; "
                         "add --allow-remote if that is what you want")
    return (f"the page is reachable from other machines at {host}: anyone who can reach it can upload "
            "files and download every result (there is no login)")


class _Server(uvicorn.Server):
    """Ends the event streams first when asked to stop, so the stop need not wait for them."""

    def __init__(self, config: uvicorn.Config, app: Starlette):
        super().__init__(config)
        self.web_app = app

    def handle_exit(self, sig: int, frame: object) -> None:
        self.web_app.state.events.close()
        super().handle_exit(sig, frame)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.web_app.state.events.close()
        self.should_exit = True


def make_server(host: str, port: int, out_dir: Path, allow_remote: bool = False, limits: Limits = Limits(),
                segment: str | None = None,
                release_after_s: float = RELEASE_AFTER_S) -> tuple[_Server, socket.socket, Starlette]:
    """A configured server, its bound socket (port 0: a free port, read back from the socket) and app."""
    wildcard = host in ("0.0.0.0", "::")
    # the bound address is a name the page is reached by: 127.0.0.2 is loopback, yet not "localhost"
    named = (host,) if not wildcard and (allow_remote or is_loopback(host)) else ()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # after the bind: the app takes the results folder and starts its unfinished jobs
        app = create_app(out_dir, limits, extra_hosts=named, any_ip=allow_remote and wildcard, segment=segment,
                         release_after_s=release_after_s)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    except BaseException:
        sock.close()
        raise
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=GRACEFUL_S, lifespan="on")
    return _Server(config, app), sock, app


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(host: str, port: int, out_dir: Path, open_browser: bool, allow_remote: bool,
          announce: Callable[[str], None] = print, limits: Limits = Limits(),
          segment: str | None = None, release_after_s: float = RELEASE_AFTER_S) -> None:
    """Serve until Ctrl-C."""
    warning = bind_warning(host, allow_remote)
    server, sock, _ = make_server(host, port, out_dir, allow_remote, limits, segment, release_after_s)
    url = url_of(sock)
    if warning:
        announce(f"vidscale: warning: {warning}")
    announce(f"vidscale: serving {url} (results in {Path(out_dir).resolve()}); Ctrl-C stops")
    if open_browser:
        threading.Thread(target=_open_when_started, args=(server, url), daemon=True).start()
    server.run(sockets=[sock])


@contextmanager
def running(out_dir: Path, limits: Limits = Limits(), host: str = "127.0.0.1",
            segment: str | None = None, release_after_s: float = RELEASE_AFTER_S) -> Iterator[tuple[str, Starlette]]:
    """The server in a background thread, for tests and scripts: yields (url, app)."""
    server, sock, app = make_server(host, 0, out_dir, limits=limits, segment=segment,
                                    release_after_s=release_after_s)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the web server did not start")
            threading.Event().wait(0.02)
        yield url_of(sock), app
    finally:
        server.stop()
        thread.join()
        sock.close()


def _open_when_started(server: uvicorn.Server, url: str) -> None:
    while not server.started and not server.should_exit:
        threading.Event().wait(0.05)
    if server.started:
        webbrowser.open(url)
