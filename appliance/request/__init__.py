"""Pure request handling: URL → canonical Transform, signatures, format negotiation."""
