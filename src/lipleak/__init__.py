"""lipleak-fast: lip-sync (LSE-C/LSE-D) and lip-leakage scoring of talking-face videos."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lipleak-fast")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
