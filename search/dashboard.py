"""Ray dashboard settings for the search: loopback only by default, token sign-in kept on.

Ray 2.60 turns token authentication on for a local instance that ``ray.init()`` starts while
``RAY_AUTH_MODE`` is unset (``ray/_private/worker.py``): it sets ``RAY_AUTH_MODE=token`` and
writes a random token to ``~/.ray/auth_token`` when none exists. The dashboard then returns
HTTP 401 to every API request without the token, and its web page requests the token in a
dialog, which stores it in an HttpOnly cookie. Ray looks for the token in ``RAY_AUTH_TOKEN``,
then in the file named by ``RAY_AUTH_TOKEN_PATH``, then in ``~/.ray/auth_token``;
``ray get-auth-token`` prints it.

The search starts the dashboard on 127.0.0.1, so only this machine can reach it; other machines
reach it through an SSH tunnel. Binding to another interface needs ``--dashboard-host``, and
this module rejects that when token authentication is switched off.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
RAY_DEFAULT_PORT = 8265
"""Ray's dashboard port when none is given; Ray tries the next ports when it is taken."""

AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = "~/.ray/auth_token"

_AUTH_MODE_TIMEOUT_S = 2.0


class DashboardConfigError(ValueError):
    """The dashboard host, port or authentication setting is invalid or unsafe."""


def is_loopback(host: str) -> bool:
    """Return whether ``host`` is "localhost" or a loopback IP address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def dashboard_init_kwargs(host: str = DEFAULT_HOST, port: int | None = None) -> dict[str, Any]:
    """Return the ``ray.init`` keyword arguments that start the dashboard on ``host:port``.

    Args:
        host: the interface to listen on. 127.0.0.1 (the default) accepts connections from
            this machine only; any other address makes the dashboard reachable from the
            network, which is logged as a warning.
        port: the TCP port (1-65535), or None for Ray's default, 8265, where Ray moves to a
            free port nearby when 8265 is taken.

    Returns:
        ``{"include_dashboard": True, "dashboard_host": host}``, plus ``"dashboard_port"`` when
        a port is given.

    Raises:
        DashboardConfigError: the host is empty, the port is out of range, or the host is not
            loopback while ``RAY_AUTH_MODE=disabled`` switches token authentication off.
    """
    if not isinstance(host, str) or not host.strip():
        raise DashboardConfigError(
            f"dashboard host must be an interface address such as 127.0.0.1, got {host!r}"
        )
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535
    ):
        raise DashboardConfigError(f"dashboard port must be an integer in 1-65535, got {port!r}")

    auth_disabled = os.environ.get(AUTH_MODE_ENV, "").strip().lower() == "disabled"
    if not is_loopback(host):
        if auth_disabled:
            raise DashboardConfigError(
                f"rejected dashboard host {host}: with {AUTH_MODE_ENV}=disabled, anyone who can "
                f"reach that address could run code on this machine. Unset {AUTH_MODE_ENV} (or "
                f"set it to token), or keep the dashboard on 127.0.0.1 and use an SSH tunnel"
            )
        logger.warning(
            "the Ray dashboard will listen on %s, reachable from other machines; it still "
            "requires the token, but an SSH tunnel to 127.0.0.1 is safer on a shared network",
            host,
        )
    elif auth_disabled:
        logger.warning(
            "%s=disabled: the Ray dashboard on %s will not ask for a token, so every local user "
            "can run code through it",
            AUTH_MODE_ENV,
            host,
        )

    kwargs: dict[str, Any] = {"include_dashboard": True, "dashboard_host": host}
    if port is not None:
        kwargs["dashboard_port"] = port
    return kwargs


def dashboard_address(ray_context: Any) -> str | None:
    """Return the dashboard's "host:port" from the context ``ray.init`` returned, or None.

    Args:
        ray_context: the ``RayContext`` (attribute ``dashboard_url``, else
            ``address_info["webui_url"]``) or an address-info mapping (key ``webui_url``).
    """
    address = getattr(ray_context, "dashboard_url", None)
    if address is None:
        # RayContext is itself a Mapping, but item access on it is deprecated in Ray 2.60.
        info = getattr(ray_context, "address_info", ray_context)
        if isinstance(info, Mapping):
            address = info.get("webui_url")
    return address or None


def query_auth_mode(address: str, timeout_s: float = _AUTH_MODE_TIMEOUT_S) -> str | None:
    """Ask a running dashboard for its authentication mode.

    Args:
        address: the dashboard's "host:port".
        timeout_s: how long to wait for the response, in seconds.

    Returns:
        "token" or "disabled" from the dashboard's public ``/api/authentication_mode``
        endpoint, or None when the request fails (logged at debug level).
    """
    url = f"http://{address}/api/authentication_mode"
    # The dashboard runs on this machine or the cluster's head: bypass any HTTP proxy setting.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            mode = json.load(response).get("authentication_mode")
    except (OSError, ValueError, AttributeError) as error:
        logger.debug("cannot read the dashboard's authentication mode from %s: %s", url, error)
        return None
    return mode if isinstance(mode, str) else None


def token_source() -> str:
    """Describe where Ray reads the token from in this environment, without revealing it."""
    if os.environ.get(TOKEN_ENV):
        return f"the {TOKEN_ENV} environment variable"
    if os.environ.get(TOKEN_PATH_ENV):
        return f"the file {os.environ[TOKEN_PATH_ENV]} ({TOKEN_PATH_ENV})"
    return DEFAULT_TOKEN_FILE


def describe_dashboard(ray_context: Any) -> str:
    """Return lines for the search's log: the dashboard address and how to sign in safely.

    The text names where the token comes from and how to print it (``ray get-auth-token``),
    never the token itself.

    Args:
        ray_context: what ``ray.init`` returned (see :func:`dashboard_address`).
    """
    address = dashboard_address(ray_context)
    if address is None:
        return (
            "Ray dashboard: not running (include_dashboard=False, or it failed to start: "
            "see dashboard.log in Ray's session logs)"
        )

    parts = urlsplit(f"http://{address}")
    host, port = parts.hostname or address, parts.port or RAY_DEFAULT_PORT
    mode = query_auth_mode(address)
    if mode is None:
        mode = os.environ.get(AUTH_MODE_ENV, "unknown").strip().lower() or "unknown"

    lines = [f"Ray dashboard: http://{address}"]
    if mode == "token":
        lines.append(
            f"  sign in: paste Ray's authentication token into the dashboard's dialog; print it on "
            f"this machine with `ray get-auth-token` (read from {token_source()})"
        )
    elif mode == "disabled":
        lines.append(
            f"  WARNING: token authentication is off ({AUTH_MODE_ENV}=disabled), so anyone who can "
            f"reach this port can run code on this machine"
        )
    else:
        lines.append(
            "  sign in: authentication mode unknown; if the page asks for a token, print it "
            "with `ray get-auth-token`"
        )

    if is_loopback(host):
        tunnel = f"ssh -N -L {port}:127.0.0.1:{port} USER@{socket.gethostname()}"
        lines.append(f"  from another machine: {tunnel}, then open http://127.0.0.1:{port} there")
    else:
        lines.append(
            f"  listening on {host}: reachable from the network; prefer --dashboard-host 127.0.0.1 "
            f"with an SSH tunnel on networks you do not control"
        )
    return "\n".join(lines)
