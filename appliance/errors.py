"""Errors that carry their HTTP status and a public one-line message. A leaf module."""

from __future__ import annotations


class ApplianceError(Exception):
    """Base of every error the appliance reports to a client."""

    status: int = 500

    def __init__(self, public_message: str) -> None:
        super().__init__(public_message)
        self.public_message = public_message


class TranscodeError(ApplianceError):
    """The image could not be transcoded."""

    status = 422


class UnsupportedImageError(TranscodeError):
    """Not an image format (or a feature of one) that we decode."""

    status = 415


class CorruptImageError(TranscodeError):
    """Damaged or truncated image data."""

    status = 422


class ImageTooLargeError(TranscodeError):
    """The source or the requested output is over a configured limit."""

    status = 413
