"""Pure request handling: URL → canonical Transform, signatures, format negotiation."""

from __future__ import annotations

from appliance.request.errors import BadParameter, BadSignature, Expired
from appliance.request.negotiate import negotiate, output_format
from appliance.request.options import ParseOptions
from appliance.request.parse import ParsedRequest, parse
from appliance.request.signature import sign_url, verify
from appliance.request.transform import Transform

__all__ = [
    "BadParameter",
    "BadSignature",
    "Expired",
    "ParseOptions",
    "ParsedRequest",
    "Transform",
    "negotiate",
    "output_format",
    "parse",
    "sign_url",
    "verify",
]
