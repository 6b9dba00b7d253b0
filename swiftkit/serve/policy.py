"""What is decided before a server starts: the engine, the model names, who may connect, and whether the port
is free.

`swift deploy` moves to the next free port without saying so (DeployArguments.__post_init__ calls
find_free_port), so a port in use is refused here, by name, before anything loads.
"""
from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import socket

from swiftkit.errors import Problem

LOCAL_HOSTS = ("localhost",)


def slug(name: str) -> str:
    """A model name a client can type: lower case, letters, digits, dots and dashes (CJK kept out)."""
    text = re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-.")
    return text or "tuned"


def pick_backend(requested: str | None, env: dict[str, str]) -> tuple[str, str]:
    """swift deploy's engine and why: as asked, or (auto) vLLM where it is installed and the server gets a GPU
    (`env`: the child's environment, whose CUDA_VISIBLE_DEVICES is empty for a CPU recipe), else transformers."""
    if requested in ("transformers", "vllm"):
        return requested, "asked for"
    if importlib.util.find_spec("vllm") is None:
        return "transformers", "auto: vllm is not installed"
    if env.get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES")) == "":
        return "transformers", "auto: vllm needs a GPU and this target runs on the CPU"
    return "vllm", "auto: vllm is installed"


def is_local(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def access_problems(host: str, api_key: str | None, insecure: bool) -> list[Problem]:
    """Binding beyond this machine without an API key lets anyone who can reach the port use the model."""
    if is_local(host) or api_key or insecure:
        return []
    return [Problem(f"--host {host} serves beyond this machine, and no --api-key is set: anyone who can reach the "
                    "port could use the model", key="--host",
                    fix="give --api-key KEY (clients send it as a Bearer token), or --host 127.0.0.1, or say "
                        "--insecure to serve it open on purpose")]


def port_problem(host: str, port: int) -> Problem | None:
    """A port something else listens on, said now (swift deploy would silently take the next one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host if host != "localhost" else "127.0.0.1", port))
        except OSError as err:
            return Problem(f"port {port} on {host} is not free ({err.strerror or err})", key="--port",
                           fix=f"stop what listens there, or give another --port (e.g. {port + 1})")
    return None
